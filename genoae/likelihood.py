"""ADMIXTURE's binomial log-likelihood and its EM update: the one place genoae scores Q and P.

Shared by training (refinement), cross-validation, projection and comparison.  With ``g`` the A2 allele count of
individual ``i`` at SNP ``j`` and ``h = (Q Pᵀ)_ij`` the expected A2 frequency,

    ℓ = Σ_{observed (i, j)} g log h + (2 − g) log(1 − h)

in natural log, not averaged: the number ADMIXTURE prints.  Missing calls are masked out, never imputed.

Tensors: ``counts`` float (n_samples, n_variants) with any value where missing; ``observed`` bool of the same
shape; ``Q`` (n_samples, K) rows on the simplex; ``P`` (n_variants, K) A2 frequencies.  Work is done in blocks of
variants so that memory stays bounded by ``n_samples × block`` temporaries.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from genoae.genotypes import unpack_calls

# ADMIXTURE clamps P (and h) to [1e-5, 1 - 1e-5]; the same bounds keep log() finite here.
FREQ_MIN = 1e-5
FREQ_MAX = 1.0 - 1e-5
Q_MIN = 1e-5
DEFAULT_BLOCK = 4096


def _blocks(n_variants: int, block: int):
    for start in range(0, n_variants, block):
        yield slice(start, min(start + block, n_variants))


def loglik(counts: torch.Tensor, observed: torch.Tensor, Q: torch.Tensor, P: torch.Tensor,
           block: int = DEFAULT_BLOCK) -> float:
    """Binomial log-likelihood ℓ on ADMIXTURE's scale (sum over observed calls, natural log).

    Returns
    -------
    float
        Accumulated in float64 whatever the dtype of the inputs.
    """
    total = torch.zeros((), dtype=torch.float64, device=counts.device)
    for cols in _blocks(counts.shape[1], block):
        total += loglik_terms(counts[:, cols], observed[:, cols], Q, P[cols]).sum(dtype=torch.float64)
    return float(total)


def loglik_terms(counts: torch.Tensor, observed: torch.Tensor, Q: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Per-call log-likelihood terms g log h + (2 − g) log(1 − h), 0 where missing.

    Returns
    -------
    torch.Tensor, shape (n_samples, n_variants)
    """
    h = (Q @ P.T).clamp(FREQ_MIN, FREQ_MAX)
    g = torch.where(observed, counts, torch.zeros((), dtype=counts.dtype, device=counts.device))
    terms = g * torch.log(h) + (2.0 - g) * torch.log1p(-h)
    return torch.where(observed, terms, torch.zeros((), dtype=terms.dtype, device=terms.device))


def em_update(counts: torch.Tensor, observed: torch.Tensor, Q: torch.Tensor, P: torch.Tensor,
              update_q: bool = True, update_p: bool = True, block: int = DEFAULT_BLOCK,
              q_fixed_rows: torch.Tensor | None = None):
    """One EM step (ADMIXTURE's / frappe's multiplicative updates) for Q and P.

    With a = g / h and b = (2 − g) / (1 − h) over observed calls:

        Q_ik ← Q_ik Σ_j [a_ij P_jk + b_ij (1 − P_jk)] / (2 n_i)      (n_i = observed calls of i)
        P_jk ← A_jk / (A_jk + B_jk),  A = P ⊙ (aᵀQ),  B = (1 − P) ⊙ (bᵀQ)

    Parameters
    ----------
    q_fixed_rows : torch.Tensor, bool, shape (n_samples,), optional
        Rows of Q kept as given (supervised individuals).

    Returns
    -------
    (Q_new, P_new) : torch.Tensor, torch.Tensor
    """
    q_num = torch.zeros_like(Q)
    n_obs = torch.zeros(Q.shape[0], dtype=Q.dtype, device=Q.device)
    P_new = P.clone()
    for cols in _blocks(counts.shape[1], block):
        P_block = P[cols]
        obs = observed[:, cols]
        g = torch.where(obs, counts[:, cols], torch.zeros((), dtype=counts.dtype, device=counts.device))
        h = (Q @ P_block.T).clamp(FREQ_MIN, FREQ_MAX)
        obs_f = obs.to(Q.dtype)
        a = g / h * obs_f
        b = (2.0 - g) / (1.0 - h) * obs_f
        if update_q:
            q_num += a @ P_block + b @ (1.0 - P_block)
            n_obs += obs_f.sum(dim=1)
        if update_p:
            A = P_block * (a.T @ Q)
            B = (1.0 - P_block) * (b.T @ Q)
            denom = A + B
            # a SNP with no observed call keeps its frequency
            P_new[cols] = torch.where(denom > 0, A / denom.clamp_min(1e-300), P_block)
    P_new = P_new.clamp(FREQ_MIN, FREQ_MAX)
    if update_q:
        Q_new = torch.where(n_obs[:, None] > 0, Q * q_num / (2.0 * n_obs[:, None]).clamp_min(1e-300), Q)
        Q_new = project_simplex_rows(Q_new)
        if q_fixed_rows is not None:
            Q_new = torch.where(q_fixed_rows[:, None], Q, Q_new)
    else:
        Q_new = Q
    return Q_new, P_new


def project_simplex_rows(Q: torch.Tensor) -> torch.Tensor:
    """Clamp Q to [Q_MIN, 1 − Q_MIN] and renormalise rows to sum to 1 (ADMIXTURE keeps Q off the boundary)."""
    Q = Q.clamp(Q_MIN, 1.0 - Q_MIN)
    return Q / Q.sum(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------------------------------------
# The refinement engine: the same likelihood and EM update as above, on calls held densely (uint8) per variant.
#
# The functions above take float counts and a bool mask in sample-major layout: clear, and the reference that the
# tests check against a naive NumPy version.  The refinement runs the EM update hundreds of times over every call,
# so :class:`CallMatrix` keeps the calls variant-major as one byte each (0, 1, 2 = A2 count, 3 = missing) and walks
# them in blocks of variants small enough to stay in cache.  Per block it forms the two count matrices
# g (A2 copies) and r = 2 − g (A1 copies), both 0 where a call is missing, so that missing calls drop out of every
# sum without a mask: a = g / h and b = r / (1 − h) vanish there, and ℓ = Σ g log h + r log(1 − h).
# ---------------------------------------------------------------------------------------------------------------
MISSING_CODE = 3


class CallMatrix:
    """Genotype calls held as bytes on a torch device, variant-major, for fast repeated EM passes.

    Parameters
    ----------
    codes : torch.Tensor, uint8, shape (n_variants, n_samples)
        A2 allele counts 0/1/2, ``MISSING_CODE`` (3) where missing.
    block : int, optional
        Variants per block.  ~256 keeps a block's temporaries (block × n_samples float32) in cache on a CPU;
        on CUDA larger blocks are faster.
    """

    def __init__(self, codes: torch.Tensor, block: int | None = None):
        if codes.dtype != torch.uint8 or codes.dim() != 2:
            raise ValueError("codes must be a 2-d uint8 tensor (n_variants, n_samples)")
        self.codes = codes
        self.device = codes.device
        if block is None:
            block = 8192 if codes.device.type == "cuda" else max(64, min(1024, (1 << 19) // max(codes.shape[1], 1)))
        self.block = int(block)
        self._has_missing = [bool((codes[cols] == MISSING_CODE).any()) for cols in _blocks(codes.shape[0], self.block)]
        # observed calls per individual, for the Q update's 2 n_i denominator
        self.n_observed = (codes != MISSING_CODE).sum(dim=0)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_genotypes(cls, genotypes, device="cpu", block: int | None = None, chunk: int = 4096) -> "CallMatrix":
        """Decode a :class:`genoae.Genotypes` (packed SNP-major) chunk by chunk straight into the byte matrix."""
        device = torch.device(device)
        codes = torch.empty((genotypes.n_variants, genotypes.n_samples), dtype=torch.uint8, device=device)
        for start in range(0, genotypes.n_variants, chunk):
            counts = unpack_calls(genotypes.packed[start:start + chunk], genotypes.n_samples)  # (b, n) int8, -1
            counts = counts.astype("uint8")
            counts[counts == 255] = MISSING_CODE
            codes[start:start + chunk] = torch.from_numpy(counts).to(device)
        return cls(codes, block)

    @classmethod
    def from_counts(cls, counts: torch.Tensor, observed: torch.Tensor, block: int | None = None) -> "CallMatrix":
        """From the sample-major float counts + mask used by :func:`loglik` / :func:`em_update`."""
        codes = torch.where(observed, counts.round().clamp(0, 2).to(torch.uint8),
                            torch.tensor(MISSING_CODE, dtype=torch.uint8, device=counts.device))
        return cls(codes.T.contiguous(), block)

    @property
    def n_variants(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.codes.shape[1])

    def with_missing(self, mask: torch.Tensor) -> "CallMatrix":
        """A copy with the calls where ``mask`` (variant-major bool, (n_variants, n_samples)) is True set missing."""
        codes = self.codes.clone()
        codes[mask] = MISSING_CODE
        return CallMatrix(codes, self.block)

    def _counts(self, index: int, cols: slice, dtype):
        """g and r = 2 − g of one block as float (block, n_samples), both 0 where missing."""
        codes = self.codes[cols]
        g = codes.to(dtype)
        if self._has_missing[index]:
            missing = codes == MISSING_CODE
            g.masked_fill_(missing, 0.0)
            r = (2.0 - g).masked_fill_(missing, 0.0)
        else:
            r = 2.0 - g
        return g, r

    def blocks(self, dtype=torch.float32):
        """Yield ``(cols, g, r)`` per block of variants (see :meth:`_counts`)."""
        for index, cols in enumerate(_blocks(self.n_variants, self.block)):
            g, r = self._counts(index, cols, dtype)
            yield cols, g, r

    # ----------------------------------------------------------------- likelihood and EM
    def loglik(self, Q: torch.Tensor, P: torch.Tensor) -> float:
        """ℓ on ADMIXTURE's scale, as :func:`loglik` (terms in ``Q.dtype``, accumulated in float64)."""
        QT = Q.T.contiguous()

        def partial(block_indices):
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for index in block_indices:
                cols = slice(index * self.block, min((index + 1) * self.block, self.n_variants))
                g, r = self._counts(index, cols, Q.dtype)
                h = (P[cols] @ QT).clamp_(FREQ_MIN, FREQ_MAX)
                total += (g * torch.log(h)).sum(dtype=torch.float64)
                total += (r * torch.log1p(h.neg_())).sum(dtype=torch.float64)
            return total

        threads = torch.get_num_threads()
        if self.device.type == "cpu" and threads > 1 and self.n_variants >= 2 * threads * self.block:
            return float(sum(self._split_blocks(partial, threads)))  # see _em_pass_threaded
        return float(partial(range(len(self._has_missing))))

    def _split_blocks(self, work, threads: int) -> list:
        """``work(block_indices)`` on ``threads`` contiguous ranges of blocks in parallel Python threads, torch
        single-threaded inside; results in range order (see :meth:`_em_pass_threaded` for why)."""
        from concurrent.futures import ThreadPoolExecutor

        bounds = np.linspace(0, len(self._has_missing), threads + 1).round().astype(int)

        def run(part):
            torch.set_num_threads(1)
            return work(range(bounds[part], bounds[part + 1]))

        try:
            torch.set_num_threads(1)
            with ThreadPoolExecutor(max_workers=threads) as pool:
                return list(pool.map(run, range(threads)))
        finally:
            torch.set_num_threads(threads)

    def em_step(self, Q: torch.Tensor, P: torch.Tensor, update_q: bool = True, update_p: bool = True,
                q_fixed_rows: torch.Tensor | None = None, with_loglik: bool = False):
        """One EM step, the same update as :func:`em_update` (Q and P both from the current Q, P).

        Parameters
        ----------
        Q : torch.Tensor, float, shape (n_samples, K)
        P : torch.Tensor, float, shape (n_variants, K)
        with_loglik : bool
            Also return ℓ at the *input* (Q, P), computed in the same pass over the calls.

        Returns
        -------
        (Q_new, P_new) or (Q_new, P_new, loglik_of_input)
        """
        dtype = Q.dtype
        QT = Q.T.contiguous()
        P_new = P.clone()
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and threads > 1 and self.n_variants >= 2 * threads * self.block:
            q_num, total = self._em_pass_threaded(QT, P, P_new, update_q, update_p, with_loglik, threads)
        else:
            q_num, total = self._em_pass(range(len(self._has_missing)), QT, P, P_new, update_q, update_p,
                                         with_loglik)
        P_new = P_new.clamp_(FREQ_MIN, FREQ_MAX)
        if update_q:
            n_obs = self.n_observed.to(dtype)[:, None]
            Q_new = torch.where(n_obs > 0, Q * q_num.T / (2.0 * n_obs).clamp_min(1e-30), Q)
            Q_new = project_simplex_rows(Q_new)
            if q_fixed_rows is not None:
                Q_new = torch.where(q_fixed_rows[:, None], Q, Q_new)
        else:
            Q_new = Q
        if with_loglik:
            return Q_new, P_new, float(total)
        return Q_new, P_new

    def _em_pass_threaded(self, QT, P, P_new, update_q, update_p, with_loglik, threads):
        """The EM pass split into ``threads`` contiguous ranges of blocks, one Python thread each, torch ops
        single-threaded inside (they release the GIL).  Why: the blocks' ops are small, and torch's per-op OpenMP
        parallelism on a shared, loaded 2-core machine was 5-20x *slower* than one thread (every op waits at a
        barrier for a descheduled thread), where independent workers degrade at worst to one thread's speed.
        Partial sums are added in a fixed order: the result depends on ``threads`` only through float rounding."""
        parts = self._split_blocks(
            lambda block_indices: self._em_pass(block_indices, QT, P, P_new, update_q, update_p, with_loglik),
            threads)
        q_num, total = parts[0]
        for q_part, total_part in parts[1:]:
            q_num = q_num + q_part
            total = total + total_part
        return q_num, total

    def _em_pass(self, block_indices, QT, P, P_new, update_q, update_p, with_loglik):
        """EM sums over the given blocks: returns (q_num (K, n), ℓ of the input); writes P_new's rows."""
        dtype = QT.dtype
        q_num = torch.zeros_like(QT)  # (K, n)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for index in block_indices:
            cols = slice(index * self.block, min((index + 1) * self.block, self.n_variants))
            g, r = self._counts(index, cols, dtype)
            P_block = P[cols]
            h = (P_block @ QT).clamp_(FREQ_MIN, FREQ_MAX)  # (block, n)
            if with_loglik:
                total += (g * torch.log(h)).sum(dtype=torch.float64)
            a = g.div_(h)                                 # g / h, in place of g
            one_minus_h = h.neg_().add_(1.0)
            if with_loglik:
                total += (r * torch.log(one_minus_h)).sum(dtype=torch.float64)
            b = r.div_(one_minus_h)                       # r / (1 − h)
            if update_q:
                q_num += P_block.T @ a
                q_num += (1.0 - P_block).T @ b
            if update_p:
                # (Qᵀ aᵀ)ᵀ rather than a Q: the same product, but BLAS is ~10x faster with the K-row operand first
                A = P_block * (QT @ a.T).T
                B = (1.0 - P_block) * (QT @ b.T).T
                denom = A + B
                # a SNP with no observed call keeps its frequency
                P_new[cols] = torch.where(denom > 0, A / denom.clamp_min(1e-30), P_block)
        return q_num, total

    def deviance(self, held_out: "CallMatrix", Q: torch.Tensor, P: torch.Tensor) -> tuple[float, int]:
        """Binomial deviance of the calls of ``held_out`` (a CallMatrix of the same shape holding only the held-out
        calls, the rest missing): ADMIXTURE's cross-validation error terms,

            d_ij = g log(g / 2h) + (2 − g) log((2 − g) / (2 − 2h))     (0 log 0 = 0, h = (Q Pᵀ)_ij clamped)

        Returns the summed deviance and the number of held-out calls; ``sum / n`` is on the scale of ADMIXTURE's
        logged ``CV error`` (hapmap3 K=1: 0.5525 here vs 0.55248).  ``self`` is unused beyond the shape check."""
        if held_out.codes.shape != self.codes.shape:
            raise ValueError("held-out calls must have the same shape as the calls")
        QT = Q.T.contiguous()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for cols, g, r in held_out.blocks(torch.float64):
            h = (P[cols].to(torch.float64) @ QT.to(torch.float64)).clamp_(FREQ_MIN, FREQ_MAX)
            first = torch.where(g > 0, g * torch.log(g.clamp_min(1e-300) / (2.0 * h)), torch.zeros_like(g))
            second = torch.where(r > 0, r * torch.log(r.clamp_min(1e-300) / (2.0 - 2.0 * h)), torch.zeros_like(r))
            total += (first + second).sum()
        n = int((held_out.codes != MISSING_CODE).sum())
        return float(total), n


def squarem(calls: CallMatrix, Q: torch.Tensor, P: torch.Tensor, tol: float = 1e-7, max_iter: int = 1000,
            update_q: bool = True, update_p: bool = True, q_fixed_rows: torch.Tensor | None = None,
            check: int = 5, callback=None):
    """Maximise ℓ by EM accelerated with SQUAREM (Varadhan & Roland 2008, scheme S3), as fastmixture does.

    Each iteration takes two EM steps θ1 = EM(θ0), θ2 = EM(θ1), extrapolates along r = θ1 − θ0, v = θ2 − 2θ1 + θ0
    with step α = −‖r‖/‖v‖ (α ≤ −1):  θ' = θ0 − 2αr + α²v, projected back to the constraints (Q rows on the simplex,
    P in [1e-5, 1 − 1e-5]), then one plain EM step from θ' (stabilisation).  Q and P get separate step lengths:
    on hapmap3 (K = 3) Q tolerates α ≈ −10 where P stays near −1.6, and one shared α, held back by P, needs about
    three times as many iterations to come within 1 of the maximum.

    ℓ costs more than an EM step (two logarithms per call), so it is computed every ``check`` iterations, in the
    pass of the stabilisation step.  If ℓ fell since the last check, the iterations since are discarded and the
    next ``check`` iterations run without extrapolation (α = −1: plain EM, which never lowers ℓ), so the returned
    ℓ never decreases.  Stops when ℓ rose by less than ``tol`` × (number of observed calls) between two checks.

    Parameters
    ----------
    tol : float
        Scaled tolerance (per observed call), so that it means the same on small and large data sets.
    check : int
        Iterations between likelihood evaluations.
    callback : callable(iteration, loglik), optional
        Called at each check (progress bars).

    Returns
    -------
    Q, P : torch.Tensor
    trace : list of float
        ℓ at each check (the first entry is ℓ of the starting point).
    """
    em = lambda q, p, **kw: calls.em_step(q, p, update_q=update_q, update_p=update_p, q_fixed_rows=q_fixed_rows,
                                          **kw)
    tol_abs = tol * float(calls.n_observed.sum())
    check = max(1, int(check))
    Q0, P0, ll = em(Q, P, with_loglik=True)
    trace = [ll]
    saved, ll_saved = (Q0, P0), ll
    plain_until = 0
    for iteration in range(1, max_iter + 1):
        Q1, P1 = em(Q0, P0)
        Q2, P2 = em(Q1, P1)
        alpha_q = alpha_p = -1.0
        if iteration > plain_until:
            rQ, rP = Q1 - Q0, P1 - P0
            vQ, vP = Q2 - Q1 - rQ, P2 - P1 - rP
            alpha_q = _step_length(rQ, vQ) if update_q else -1.0
            alpha_p = _step_length(rP, vP) if update_p else -1.0
        if alpha_q < -1.0 or alpha_p < -1.0:
            Qx = project_simplex_rows(Q0 - 2 * alpha_q * rQ + alpha_q * alpha_q * vQ) if update_q else Q0
            if q_fixed_rows is not None:
                Qx = torch.where(q_fixed_rows[:, None], Q0, Qx)
            Px = (P0 - 2 * alpha_p * rP + alpha_p * alpha_p * vP).clamp_(FREQ_MIN, FREQ_MAX) if update_p else P0
        else:
            Qx, Px = Q2, P2
        if iteration % check and iteration != max_iter:
            Q0, P0 = em(Qx, Px)
            continue
        Q3, P3, ll_new = em(Qx, Px, with_loglik=True)
        if ll_new < ll_saved:
            # an extrapolation overshot: back to the last check, plain EM for the next `check` iterations
            Q0, P0 = saved
            plain_until = iteration + check
            continue
        delta = ll_new - ll_saved
        trace.append(ll_new)
        Q0, P0 = Q3, P3
        saved, ll_saved = (Q0, P0), ll_new
        if callback is not None:
            callback(iteration, ll_new)
        if delta < tol_abs:
            break
    return Q0, P0, trace


def _step_length(r: torch.Tensor, v: torch.Tensor) -> float:
    """SQUAREM's S3 step α = −‖r‖ / ‖v‖, at most −1 (−1 means no extrapolation)."""
    v_norm = float(v.square().sum(dtype=torch.float64))
    if v_norm <= 0.0:
        return -1.0
    return min(-math.sqrt(float(r.square().sum(dtype=torch.float64)) / v_norm), -1.0)
