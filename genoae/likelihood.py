"""ADMIXTURE's binomial log-likelihood, its EM and Newton steps, and their accelerator: the one place genoae scores
and maximises Q and P.

Shared by training (refinement), cross-validation, projection and comparison.  The dense functions first
(:func:`loglik`, :func:`em_update`: the readable reference the tests check the fast code against), then
:class:`PackedCalls` (the same quantities over packed 2-bit calls, through :mod:`genoae.kernels`), then
:func:`quasi_newton`.  With ``g`` the A2 allele count of
individual ``i`` at SNP ``j`` and ``h = (Q Pᵀ)_ij`` the expected A2 frequency,

    ℓ = Σ_{observed (i, j)} g log h + (2 − g) log(1 − h)

in natural log, not averaged: the number ADMIXTURE prints.  Missing calls are masked out, never imputed.

Tensors: ``counts`` float (n_samples, n_variants) with any value where missing; ``observed`` bool of the same
shape; ``Q`` (n_samples, K) rows on the simplex; ``P`` (n_variants, K) A2 frequencies.  Work is done in blocks of
variants so that memory stays bounded by ``n_samples × block`` temporaries.

Arrays: the dense reference functions take torch tensors.  :class:`PackedCalls`, :func:`quasi_newton` and
:func:`refine_rows` take Q and P as NumPy arrays or torch tensors and give them back as they came; on the CPU (the
numba kernels) they compute with NumPy and never import torch, on CUDA with torch tensors on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genoae import kernels
from genoae.device import dtype_name, is_cuda, kernel_threads, to_numpy
from genoae.genotypes import pack_calls, take_samples, unpack_calls
from genoae.shard import LOCAL, Shard

# ADMIXTURE clamps P (and h) to [1e-5, 1 - 1e-5]; the same bounds keep log() finite here (defined with the kernels,
# which cannot import this module)
FREQ_MIN, FREQ_MAX = kernels.FREQ_MIN, kernels.FREQ_MAX
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
    import torch

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
    import torch

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
    import torch

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


def project_simplex_rows(Q):
    """Clamp Q to [Q_MIN, 1 − Q_MIN] and renormalise rows to sum to 1 (ADMIXTURE keeps Q off the boundary); a
    NumPy array or a torch tensor, returned as such."""
    Q = Q.clip(Q_MIN, 1.0 - Q_MIN)
    return Q / Q.sum(1)[:, None]


def _namespace(array):
    """NumPy, or torch for a tensor (then already imported by whoever made it)."""
    if isinstance(array, np.ndarray):
        return np
    import torch

    return torch


def _like(array, template):
    """``array`` (NumPy or torch) as the type, dtype and device of ``template``."""
    if isinstance(template, np.ndarray):
        return np.asarray(to_numpy(array), dtype=template.dtype)
    import torch

    return torch.as_tensor(array).to(template.device, template.dtype)


# ---------------------------------------------------------------------------------------------------------------
# The refinement engine: the same likelihood and EM update as above, on the packed 2-bit calls themselves.
#
# The functions above take float counts and a bool mask in sample-major layout: clear, and the reference that the
# tests check against a naive NumPy version.  The refinement runs the EM update hundreds of times over every call,
# so :class:`PackedCalls` works on the SNP-major packed bytes a ``.bed`` holds (no copy on the CPU: a memory-mapped
# file stays mapped), decoding one SNP (numba kernels, :mod:`genoae.kernels`) or one block of SNPs (torch, CUDA) at
# a time into g (A2 copies) and r = 2 − g (A1 copies), both 0 where a call is missing, so that missing calls drop
# out of every sum without a mask: a = g / h and b = r / (1 − h) vanish there, and ℓ = Σ g log h + r log(1 − h).
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Holdout:
    """Which observed calls a pass uses: all (``n_folds == 0``), all but fold ``fold`` (training), or only fold
    ``fold`` (``keep_fold``: scoring).  The fold of a call is a hash of (seed, SNP, individual)
    (:func:`genoae.kernels.fold_of`), so no N × M mask exists."""

    n_folds: int = 0
    fold: int = -1
    seed: int = 0
    keep_fold: bool = False
    offset: int = 0   # first row × n_samples: a SNP-sharded rank hashes its calls by their index among all SNPs

    def array(self) -> np.ndarray:
        # the hash adds seed + j·n + i modulo 2⁶⁴, so the offset is added the same way (as the int64 of its bits)
        start = (self.seed % (1 << 62) + self.offset) % (1 << 64)
        return np.array([self.n_folds, self.fold, start - (1 << 64) if start >= (1 << 63) else start], np.int64)


class PackedCalls:
    """Genotype calls as SNP-major packed PLINK bytes, with the EM and Newton steps, ℓ and the CV deviance over
    them.

    Parameters
    ----------
    packed : ndarray, uint8, shape (n_variants, ceil(n_samples / 4))
        Rows of a ``.bed`` (a NumPy array or a memory map; never copied on the CPU).
    n_samples : int
    device : str
        ``cpu``: numba kernels, one SNP at a time, on NumPy arrays.  ``cuda``: the packed bytes are copied to the
        GPU (2 bits per call) and decoded there one block at a time by torch ops.
    block : int, optional
        SNPs per block for the torch path, :meth:`blocks` and :meth:`centred_blocks`; by default 2²¹ calls
        (16 MB of float64) per block.
    backend : str
        ``auto`` (numba on the CPU, torch on CUDA), or ``torch`` to run the torch path on the CPU (tests).
    holdout : Holdout
        Which calls count (cross-validation folds).
    shard : Shard
        Which variants of a SNP-sharded run ``packed`` holds (:mod:`genoae.shard`): every sum over variants is
        then also summed over the ranks, so ℓ, the Q steps and the deviance are those of all variants; P rows
        stay this rank's.  Default: one process, all variants.
    """

    def __init__(self, packed, n_samples: int, device="cpu", block: int | None = None, backend: str = "auto",
                 holdout: Holdout = Holdout(), shard: Shard = LOCAL):

        if packed.ndim != 2 or packed.dtype != np.uint8 or packed.shape[1] != (n_samples + 3) // 4:
            raise ValueError("packed must be uint8 (n_variants, ceil(n_samples / 4))")
        self.device = str(device)
        self.n_samples = int(n_samples)
        self.n_variants = int(packed.shape[0])
        if backend == "auto":
            backend = "torch" if is_cuda(self.device) else "numba"
        if backend not in ("numba", "torch") or (backend == "numba" and is_cuda(self.device)):
            raise ValueError(f"backend {backend!r} on {self.device}")
        self.backend = backend
        self.packed = packed
        self._packed_device = None
        if backend == "torch":
            import torch

            self._packed_device = torch.from_numpy(np.array(packed)).to(self.device)
        if block is None:
            block = max(16, (1 << 21) // max(self.n_samples, 1))
        self.block = int(block)
        self.holdout = holdout
        self.shard = shard
        self._observed = None

    @classmethod
    def from_genotypes(cls, genotypes, device="cpu", **options) -> "PackedCalls":
        """The calls of a :class:`genoae.Genotypes` as they are (SNP-major packed)."""
        return cls(genotypes.packed, genotypes.n_samples, device, **options)

    @classmethod
    def from_counts(cls, counts, observed, device="cpu", **options) -> "PackedCalls":
        """From the sample-major float counts + mask used by :func:`loglik` / :func:`em_update` (tests)."""
        counts, observed = to_numpy(counts), to_numpy(observed)
        calls = np.where(observed, np.clip(np.rint(counts), 0, 2), -1).astype(np.int8)
        return cls(pack_calls(calls, axis=0), counts.shape[0], device, **options)

    def with_holdout(self, holdout: Holdout) -> "PackedCalls":
        """The same calls, with only those ``holdout`` selects counted (a view: the packed bytes are shared)."""
        other = object.__new__(PackedCalls)
        other.__dict__.update(self.__dict__)
        other.holdout, other._observed = holdout, None
        return other

    def take_samples(self, sample_index: np.ndarray) -> "PackedCalls":
        """The calls of the individuals ``sample_index`` (in that order), packed apart on the same device; their
        observed counts are carried over when already known.  Local calls with no held-out fold only (a call's
        fold hashes its individual's index, and a shard's sums join other ranks' individuals)."""
        if self.shard.sharded or self.holdout.n_folds:
            raise ValueError("only local calls without held-out folds can be split by individual")
        other = PackedCalls(take_samples(self.packed, self.n_samples, sample_index), len(sample_index),
                            self.device)
        if self._observed is not None:
            other._observed = self._observed[np.asarray(sample_index)]
        return other

    def training(self, n_folds: int, fold: int, seed: int) -> "PackedCalls":
        """The calls outside CV fold ``fold``."""
        return self.with_holdout(Holdout(n_folds, fold, seed, keep_fold=False, offset=self._fold_offset()))

    def _fold_offset(self) -> int:
        return (self.shard.start if self.shard.sharded else 0) * self.n_samples

    # ----------------------------------------------------------------- helpers
    def asarray(self, array, dtype=None):
        """``array`` (NumPy or torch) as this backend computes with it: a NumPy array for the numba kernels, a
        torch tensor on the device otherwise; ``dtype`` (a name or a NumPy/torch dtype) casts it."""
        if self.backend == "numba":
            return np.asarray(to_numpy(array), dtype=None if dtype is None else dtype_name(dtype))
        import torch

        tensor = torch.as_tensor(array).to(self.device)
        return tensor if dtype is None else tensor.to(getattr(torch, dtype_name(dtype)))

    def _bounds(self) -> np.ndarray:
        """Row ranges, one per kernel thread (fixed: the result depends on the thread count only)."""
        parts = max(1, min(kernel_threads(), self.n_variants))
        return np.linspace(0, self.n_variants, parts + 1).round().astype(np.int64)

    @property
    def n_observed(self):
        """Observed (and counted, see ``holdout``) calls per individual, int64 (n_samples,): a NumPy array on the
        numba backend, a torch tensor otherwise."""

        if self._observed is None:
            if self.backend == "numba":
                bounds = self._bounds()
                parts = np.zeros((len(bounds) - 1, self.n_samples))
                kernels.observed_pass(self.packed, self.n_samples, parts, bounds, self.holdout.array(),
                                      self.holdout.keep_fold, kernels.BYTE_TO_G, kernels.BYTE_TO_R)
                alleles = self.shard.sum(parts.sum(axis=0))
                self._observed = np.rint(alleles / 2).astype(np.int64)
            else:
                import torch

                total = torch.zeros(self.n_samples, dtype=torch.int64, device=self.device)
                for _, g, r in self.blocks(torch.float32):
                    total += ((g + r) > 0).sum(dim=0)
                self._observed = self.shard.sum(total)
        return self._observed

    def blocks(self, dtype=None):
        """Yield ``(cols, g, r)`` per block of SNPs as torch tensors (block, n_samples) on the device, both 0 where
        a call is missing or not counted (see ``holdout``)."""
        import torch

        dtype = getattr(torch, dtype_name(dtype or "float32"))
        for cols in _blocks(self.n_variants, self.block):
            if self._packed_device is not None:
                rows = self._packed_device[cols]
            else:
                rows = torch.from_numpy(np.array(self.packed[cols]))  # a block-sized copy: a memory map is read-only
            calls = unpack_calls(rows, self.n_samples).to(self.device)
            observed = calls >= 0
            if self.holdout.n_folds > 0:
                in_fold = _folds_torch(self.holdout, cols, self.n_samples, self.device) == self.holdout.fold
                observed &= in_fold if self.holdout.keep_fold else ~in_fold
            g = torch.where(observed, calls.to(dtype), torch.zeros((), dtype=dtype, device=self.device))
            r = torch.where(observed, 2.0 - g, torch.zeros((), dtype=dtype, device=self.device))
            yield cols, g, r

    def centred_blocks(self, mean: np.ndarray, inv_scale: np.ndarray, dtype=None):
        """Yield ``(cols, x)`` per block of SNPs, x = (g − mean) · inv_scale (block, n_samples), 0 where a call is
        missing: the blocks of :func:`genoae.pca.standardized_pca` (``standardized_source``), float64 NumPy
        decoded by a numba kernel on the CPU, torch tensors in ``dtype`` on the device otherwise.  Every observed
        call counts (a PCA ignores ``holdout``)."""
        if self.backend != "numba":
            import torch

            dtype = getattr(torch, dtype_name(dtype or "float64"))
            for cols, g, r in self.blocks(dtype):
                observed = (g + r) > 0
                scale = torch.from_numpy(inv_scale[cols]).to(self.device, dtype)[:, None]
                centre = torch.from_numpy(mean[cols]).to(self.device, dtype)[:, None]
                yield cols, torch.where(observed, (g - centre) * scale, torch.zeros((), dtype=dtype,
                                                                                   device=self.device))
            return
        mean = np.ascontiguousarray(mean, np.float64)
        inv_scale = np.ascontiguousarray(inv_scale, np.float64)
        for cols in _blocks(self.n_variants, self.block):
            out = np.empty((cols.stop - cols.start, self.n_samples))
            kernels.decode_centred(self.packed, cols.start, cols.stop, self.n_samples, mean, inv_scale, out)
            yield cols, out

    def centred_product(self, W: np.ndarray, mean: np.ndarray, inv_scale: np.ndarray) -> np.ndarray:
        """W · X for X = (g − mean) · inv_scale per SNP (0 where a call is missing; every observed call counts):
        a linear layer over the centred calls, float64 NumPy (rows of W, n_samples).  On the CPU one numba pass that
        decodes a few rows at a time and multiplies them with BLAS; elsewhere the sum over :meth:`centred_blocks`.

        Parameters
        ----------
        W : ndarray, float, (r, n_variants)
        """
        W = np.ascontiguousarray(W, np.float64)
        if self.backend != "numba":
            import torch

            W_device = torch.from_numpy(W).to(self.device)
            total = torch.zeros(W.shape[0], self.n_samples, dtype=torch.float64, device=self.device)
            for cols, x in self.centred_blocks(mean, inv_scale, "float64"):
                total += W_device[:, cols] @ x
            return self.shard.sum(total.cpu().numpy())
        bounds = self._bounds()
        parts = np.empty((len(bounds) - 1, W.shape[0], self.n_samples))
        kernels.centred_product_pass(self.packed, self.n_samples, np.ascontiguousarray(mean, np.float64),
                                     np.ascontiguousarray(inv_scale, np.float64), W, parts, bounds)
        return self.shard.sum(parts.sum(axis=0))

    def centred_products(self, mean: np.ndarray, inv_scale: np.ndarray):
        """The products of a PCA pass with the centred calls X (n_samples, n_variants), X_ij = (g_ij − mean_j) ·
        inv_scale_j, 0 where a call is missing, each one fused numba pass decoding a few rows at a time into a
        thread's buffer (no float block of the pass written and read back): ``(times, transposed_times)`` for
        :func:`genoae.pca.standardized_pca`'s ``centred_products``, float64 NumPy.  ``times(right)`` = X right
        (summed over the ranks, :meth:`centred_product`), ``transposed_times(left)`` = Xᵀ left (this rank's
        variants).  None off the CPU, where the PCA takes the products of :meth:`centred_blocks` on the device."""
        if self.backend != "numba":
            return None
        mean = np.ascontiguousarray(mean, np.float64)
        inv_scale = np.ascontiguousarray(inv_scale, np.float64)

        def times(right):
            return self.centred_product(np.ascontiguousarray(right.T), mean, inv_scale).T

        def transposed_times(left):
            out = np.empty((self.n_variants, left.shape[1]))
            kernels.centred_rows_product(self.packed, self.n_samples, mean, inv_scale,
                                         np.ascontiguousarray(left, np.float64), out)
            return out

        return times, transposed_times

    # ----------------------------------------------------------------- likelihood and EM
    def loglik(self, Q, P) -> float:
        """ℓ on ADMIXTURE's scale, as :func:`loglik` (summed in float64)."""

        if self.backend == "numba":
            bounds = self._bounds()
            parts = np.zeros(len(bounds) - 1)
            kernels.loglik_pass(self.packed, self.n_samples, _numpy64(Q.T), _numpy64(P), parts, bounds,
                                self.holdout.array(), self.holdout.keep_fold, kernels.BYTE_TO_G, kernels.BYTE_TO_R)
            return self.shard.sum(float(parts.sum()))
        import torch

        Q, P = self.asarray(Q), self.asarray(P)
        QT = Q.T.contiguous()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for cols, g, r in self.blocks(Q.dtype):
            h = (P[cols] @ QT).clamp_(FREQ_MIN, FREQ_MAX)
            total += (g * torch.log(h)).sum(dtype=torch.float64)
            total += (r * torch.log1p(h.neg_())).sum(dtype=torch.float64)
        return self.shard.sum(float(total))

    def em_step(self, Q, P, update_q: bool = True, update_p: bool = True, q_fixed_rows=None,
                with_loglik: bool = False):
        """One EM step, the same update as :func:`em_update` (Q and P both from the current Q, P).

        Parameters
        ----------
        Q : ndarray or torch.Tensor, float, shape (n_samples, K)
        P : ndarray or torch.Tensor, float, shape (n_variants, K)
            Either kind on either backend (:meth:`asarray` gives the backend's own, which saves a conversion).
        with_loglik : bool
            Also return ℓ at the *input* (Q, P), computed in the same pass over the calls.

        Returns
        -------
        (Q_new, P_new) or (Q_new, P_new, loglik_of_input), of the inputs' type, dtype and device
        """

        if not (update_q or update_p):  # nothing to update: ℓ alone (already summed over the ranks)
            P_kept = P.clip(FREQ_MIN, FREQ_MAX)
            return (Q, P_kept, self.loglik(Q, P)) if with_loglik else (Q, P_kept)
        Q_in, P_in = Q, P
        if self.backend == "numba":
            Q, P = _numpy64(Q), _numpy64(P)
            q_num, P_new, total = self._em_numba(Q, P, update_q, update_p, with_loglik)
        else:
            Q, P = self.asarray(Q), self.asarray(P)
            q_num, P_new, total = self._em_torch(Q, P, update_q, update_p, with_loglik)
        xp = _namespace(Q)
        if update_q:
            q_num, total = self.shard.sum(q_num, total)
        elif with_loglik:
            total = self.shard.sum(total)
        P_new = P_new.clip(FREQ_MIN, FREQ_MAX) if update_p else P.clip(FREQ_MIN, FREQ_MAX)
        if update_q:
            n_obs = _like(self.n_observed, Q)[:, None]
            Q_new = xp.where(n_obs > 0, Q * q_num.T / (2.0 * n_obs).clip(1e-30, None), Q)
            Q_new = project_simplex_rows(Q_new)
            if q_fixed_rows is not None:
                Q_new = xp.where(self.asarray(q_fixed_rows, "bool")[:, None], Q, Q_new)
        else:
            Q_new = Q
        Q_new, P_new = _like(Q_new, Q_in), _like(P_new, P_in)
        if with_loglik:
            return Q_new, P_new, float(total)
        return Q_new, P_new

    def newton_step(self, Q, P, update_q: bool = True, update_p: bool = True, q_fixed_rows=None,
                    with_loglik: bool = False):
        """One block-relaxation step (ADMIXTURE's SQP): every row of Q takes a Newton step of its ℓ on the simplex
        with P fixed, then every row of P a Newton step in [1e-5, 1 − 1e-5] with the new Q fixed.  A row whose
        Newton step would lower its ℓ (the quadratic model overshoots where ℓ bends sharply) takes its EM step
        instead, so no step lowers ℓ; with a P step, only when the Q step overshot (see below), since it costs a
        third pass.  Two passes over the calls (Q sums; P, which also scores each individual's new Q row), a third
        only when some Q row had to fall back to EM.  Same arguments and returns as
        :meth:`em_step` (ℓ at the input from the first pass).  CPU (numba) only; elsewhere it is
        :meth:`em_step`."""
        if self.backend != "numba":
            return self.em_step(Q, P, update_q, update_p, q_fixed_rows, with_loglik)
        Q64, P64 = _numpy64(Q), _numpy64(P)
        total = None
        if update_q:
            q_step = self._newton_q(Q64, P64, q_fixed_rows)
            Q_candidate, total = q_step["newton"], q_step["loglik"]
        else:
            Q_candidate = Q64
        if update_p:
            P_next, ll_p, individual = self._newton_p(Q_candidate, P64)
            total = ll_p if total is None else total
        elif update_q:  # Q alone (projection): score the new Q rows without a P step
            individual = self._individual_loglik(Q_candidate, P64)
        Q_new = Q_candidate
        if update_q:
            # Rows whose ℓ fell take their EM step (and P is redone for the Q finally chosen) when there is no P
            # step, or when the Q step lowered ℓ as a whole or overshot in some row (by over 1e-6 of its ℓ).
            # Otherwise the Newton step is kept: near the maximum a few rows fall by ~1e-9 of their ℓ while ℓ
            # rises, and the P step already taken keeps ℓ(Q_new, P_new) ≥ ℓ(Q_new, P) = Σ individual ≥ Σ before
            # = ℓ(Q, P).
            before = q_step["before"]
            worse = individual < before - np.maximum(1e-9 * np.abs(before), 1e-7)
            overshot = individual < before - np.maximum(1e-6 * np.abs(before), 1e-7)
            if worse.any() and (not update_p or overshot.any() or individual.sum() < before.sum()):
                Q_new = np.where(worse[:, None], q_step["em"](), Q_candidate)
                if update_p:
                    P_next, _, _ = self._newton_p(Q_new, P64)
            if q_fixed_rows is not None:
                Q_new = np.where(to_numpy(q_fixed_rows).astype(bool)[:, None], Q64, Q_new)
            Q_new = _like(Q_new, Q)
        else:
            Q_new = Q
        P_new = _like(P_next.clip(FREQ_MIN, FREQ_MAX), P) if update_p else P.clip(FREQ_MIN, FREQ_MAX)
        if with_loglik:
            return Q_new, P_new, float(total)
        return Q_new, P_new

    def _individual_loglik(self, Q64, P64) -> np.ndarray:
        """Each individual's ℓ at (Q, P), float64 (n_samples,)."""
        return self.candidate_logliks(Q64[None], P64)[0]

    def candidate_logliks(self, candidates: np.ndarray, P64: np.ndarray) -> np.ndarray:
        """Each individual's ℓ at each of C candidate Q matrices, in one pass over the calls (numba only).

        Parameters
        ----------
        candidates : ndarray, float64, (C, n_samples, K)
        P64 : ndarray, float64, (n_variants, K)

        Returns
        -------
        ndarray, float64, (C, n_samples)
        """
        bounds = self._bounds()
        C = candidates.shape[0]
        parts = np.empty((len(bounds) - 1, C, self.n_samples))
        kernels.individual_loglik_pass(self.packed, self.n_samples,
                                       np.ascontiguousarray(np.transpose(candidates, (0, 2, 1))), P64, parts, bounds,
                                       self.holdout.array(), self.holdout.keep_fold, kernels.BYTE_TO_G,
                                       kernels.BYTE_TO_R)
        return self.shard.sum(parts.sum(axis=0))

    def _newton_p(self, Q64, P64):
        """The P half of :meth:`newton_step` from Q: (P_next, ℓ at (Q, P), each individual's share of it)."""
        bounds = self._bounds()
        parts = np.zeros(len(bounds) - 1)
        individual = np.empty((len(bounds) - 1, self.n_samples))
        P_next = np.empty_like(P64)
        kernels.p_newton_pass(self.packed, self.n_samples, Q64, P64, P_next, parts, individual, bounds,
                              self.holdout.array(), self.holdout.keep_fold, kernels.BYTE_TO_G, kernels.BYTE_TO_R)
        loglik, individual = self.shard.sum(float(parts.sum()), individual.sum(axis=0))
        return P_next, loglik, individual

    def _newton_q(self, Q64, P64, q_fixed_rows) -> dict:
        """The Q half of :meth:`newton_step`: each row's Newton step (``newton``), ℓ at the input (``loglik``) and
        each individual's share of it (``before``), and ``em()`` giving the rows' EM step from the same sums."""
        bounds = self._bounds()
        n, K = Q64.shape
        T = len(bounds) - 1
        grad, hess = np.empty((T, K, n)), np.empty((T, K * (K + 1) // 2, n))
        b_sum, before = np.empty((T, n)), np.empty((T, n))
        kernels.q_newton_pass(self.packed, n, np.ascontiguousarray(Q64.T), P64, grad, hess, b_sum, before, bounds,
                              self.holdout.array(), self.holdout.keep_fold, kernels.BYTE_TO_G, kernels.BYTE_TO_R)
        grad, hess, b_sum, before = _sum_q_statistics(self.shard, grad.sum(axis=0), hess.sum(axis=0),
                                                      b_sum.sum(axis=0), before.sum(axis=0))
        fixed = np.zeros(n, np.bool_) if q_fixed_rows is None else to_numpy(q_fixed_rows).astype(np.bool_)
        Q_newton = np.empty_like(Q64)
        kernels.q_newton_solve(Q64, grad, hess, Q_newton, fixed, Q_MIN)

        def em():
            n_obs = to_numpy(self.n_observed).astype(np.float64)[:, None]
            q_num = (grad + b_sum).T  # Σ_j a P + b (1 − P) = Σ_j w1 P + b
            Q_em = np.where(n_obs > 0, Q64 * q_num / np.maximum(2.0 * n_obs, 1e-30), Q64)
            return project_simplex_rows(Q_em)

        return {"newton": project_simplex_rows(Q_newton), "loglik": float(before.sum()),
                "before": before, "em": em, "grad": grad, "hess": hess}

    def _em_numba(self, Q64, P64, update_q, update_p, with_loglik):
        QT = np.ascontiguousarray(Q64.T)
        bounds = self._bounds()
        parts = np.zeros(len(bounds) - 1)
        P_new = np.empty_like(P64)
        q_parts = np.empty((len(bounds) - 1,) + QT.shape if update_q else (len(bounds) - 1, 0, 0))
        kernels.em_pass(self.packed, self.n_samples, QT, P64, P_new, q_parts, parts, bounds, update_q, update_p,
                        with_loglik, self.holdout.array(), self.holdout.keep_fold, kernels.BYTE_TO_G,
                        kernels.BYTE_TO_R)
        return (q_parts.sum(axis=0) if update_q else None), P_new, parts.sum()

    def _em_torch(self, Q, P, update_q, update_p, with_loglik):
        import torch

        QT = Q.T.contiguous()
        q_num = torch.zeros_like(QT)  # (K, n)
        P_new = P.clone()
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for cols, g, r in self.blocks(Q.dtype):
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
        return q_num, P_new, float(total)

    def deviance(self, Q, P, n_folds: int, fold: int, seed: int) -> tuple[float, int]:
        """Binomial deviance of the observed calls in CV fold ``fold``: ADMIXTURE's cross-validation error terms,

            d_ij = g log(g / 2h) + (2 − g) log((2 − g) / (2 − 2h))     (0 log 0 = 0, h = (Q Pᵀ)_ij clamped)

        Returns the summed deviance and the number of held-out calls; ``sum / n`` is on the scale of ADMIXTURE's
        logged ``CV error`` (hapmap3 K=1: 0.5525 here vs 0.55248)."""

        holdout = Holdout(n_folds, fold, seed, keep_fold=True, offset=self._fold_offset())
        if self.backend == "numba":
            bounds = self._bounds()
            parts = np.zeros(len(bounds) - 1)
            counts = np.zeros(len(bounds) - 1, np.int64)
            kernels.deviance_pass(self.packed, self.n_samples, _numpy64(Q.T), _numpy64(P), parts, counts, bounds,
                                  holdout.array(), kernels.BYTE_TO_G, kernels.BYTE_TO_R)
            return self.shard.sum(float(parts.sum()), int(counts.sum()))
        import torch

        held = self.with_holdout(holdout)
        Q, P = self.asarray(Q), self.asarray(P)
        QT = Q.T.contiguous().to(torch.float64)
        total, n = torch.zeros((), dtype=torch.float64, device=self.device), 0
        for cols, g, r in held.blocks(torch.float64):
            h = (P[cols].to(torch.float64) @ QT).clamp_(FREQ_MIN, FREQ_MAX)
            first = torch.where(g > 0, g * torch.log(g.clamp_min(1e-300) / (2.0 * h)), torch.zeros_like(g))
            second = torch.where(r > 0, r * torch.log(r.clamp_min(1e-300) / (2.0 - 2.0 * h)), torch.zeros_like(r))
            total += (first + second).sum()
            n += int(((g + r) > 0).sum())
        return self.shard.sum(float(total), n)


def _sum_q_statistics(shard: Shard, grad, hess, b_sum, before):
    """The Q pass's sums over variants, over the ranks too: one all-reduce (the curvature is already its lower
    triangle, K (K + 1) / 2 rows)."""
    if not shard.sharded:
        return grad, hess, b_sum, before
    return shard.sum(grad, hess, b_sum, before)


def _numpy64(array) -> np.ndarray:
    """A C-contiguous float64 NumPy view (or copy) of an array or a tensor, for the numba kernels."""
    return np.ascontiguousarray(to_numpy(array), np.float64)


def _folds_torch(holdout: Holdout, cols: slice, n_samples: int, device):
    """:func:`genoae.kernels.fold_of` for a block of SNPs, in torch int64 arithmetic (wrapping multiplication;
    logical right shifts by masking), on ``device``: (block, n_samples) int64."""
    import torch

    def signed(value):  # a uint64 constant as the int64 with the same bits
        return value - (1 << 64) if value >= (1 << 63) else value

    def shift_right(z, bits):
        return (z >> bits) & ((1 << (64 - bits)) - 1)

    j = torch.arange(cols.start, cols.stop, dtype=torch.int64, device=device)[:, None]
    i = torch.arange(n_samples, dtype=torch.int64, device=device)[None, :]
    z = (int(holdout.array()[2]) + j * n_samples + i) + signed(0x9E3779B97F4A7C15)
    z = (z ^ shift_right(z, 30)) * signed(0xBF58476D1CE4E5B9)
    z = (z ^ shift_right(z, 27)) * signed(0x94D049BB133111EB)
    z = z ^ shift_right(z, 31)
    # z as unsigned, modulo n_folds: (z mod 2^63 + 2^63 [if the sign bit is set]) mod n
    folds = holdout.n_folds
    low = z & ((1 << 63) - 1)
    return (low % folds + (z < 0).to(torch.int64) * ((1 << 63) % folds)) % folds


def quasi_newton(calls: PackedCalls, Q, P, tol: float = 1e-9, max_iter: int = 1000,
                 update_q: bool = True, update_p: bool = True, q_fixed_rows=None,
                 callback=None, step: str = "newton", history: int = 3):
    """Maximise ℓ by block relaxation (or EM) accelerated by the quasi-Newton scheme of Zhou, Alexander & Lange
    (2011), as ADMIXTURE and ADAMIXTURE do.

    With F the map (``step``: ``newton``, :meth:`PackedCalls.newton_step`, or ``em``, :meth:`PackedCalls.em_step`),
    each iteration takes x1 = F(x), x2 = F(x1), keeps the secants u = x1 − x, v = x2 − x1 of the last ``history``
    iterations as the columns of U and V, and proposes x_qn = x1 − V (Uᵀ(U − V))⁻¹ Uᵀ(x − x1), projected back to the
    constraints (Q rows on the simplex, P in [1e-5, 1 − 1e-5]).  ℓ of x_qn comes with the first pass of the next
    iteration; x_qn is kept when it beats the best ℓ so far, else the iteration restarts from x2 (which the map
    reached without extrapolation).  Stops when an iteration raised ℓ by less than ``tol`` × (number of observed
    calls), or when the unextrapolated map itself failed to raise it (rounding at the maximum).  K = 1: one EM
    step, which sets P to its closed-form maximum.

    Q, P : ndarray or torch.Tensor
        The start; the backend's arrays (:meth:`PackedCalls.asarray`) avoid a conversion per step.
    q_fixed_rows : bool array (n_samples,), optional
        Rows of Q kept as given (supervised individuals).

    Returns
    -------
    Q, P : as the start's type, dtype and device
    trace : list of float   ℓ of the start, then of the point kept at each iteration (never decreasing)
    """
    Q_in, P_in = Q, P
    Q, P = calls.asarray(Q), calls.asarray(P)
    xp = _namespace(Q)
    if q_fixed_rows is not None:
        q_fixed_rows = calls.asarray(q_fixed_rows, "bool")
    update = calls.newton_step if step == "newton" else calls.em_step

    def apply(q, p, with_loglik=False):
        return update(q, p, update_q=update_q, update_p=update_p, q_fixed_rows=q_fixed_rows,
                      with_loglik=with_loglik)

    if Q.shape[1] == 1:
        Q1, P1, ll = calls.em_step(Q, P, update_q=update_q, update_p=update_p, with_loglik=True)
        return _like(Q1, Q_in), _like(P1, P_in), [ll, calls.loglik(Q1, P1)]
    tol_abs = tol * float(calls.n_observed.sum())
    n, K = Q.shape

    def flat(q, p):
        q, p = q.reshape(-1), p.reshape(-1)
        return xp.concatenate([q if update_q else q[:0], p if update_p else p[:0]])

    q_size = n * K if update_q else 0

    def products(A, B):
        # Aᵀ B over the flat (Q, P) vectors: Q is the same on every rank, P rows are the rank's own, so the P
        # part is summed over the ranks (a sharded run takes the same steps as one process)
        if not calls.shard.sharded:
            return A.T @ B
        return A[:q_size].T @ B[:q_size] + calls.shard.sum(A[q_size:].T @ B[q_size:])

    def unflat(x, q_base, p_base):
        q, p = q_base, p_base
        if update_q:
            q = project_simplex_rows(x[:n * K].reshape(n, K))
            if q_fixed_rows is not None:
                q = xp.where(q_fixed_rows[:, None], q_base, q)
        if update_p:
            p = x[q_size:].reshape(-1, K).clip(FREQ_MIN, FREQ_MAX)
        return q, p

    Q1, P1, ll = apply(Q, P, with_loglik=True)
    trace, best = [ll], ll
    x_Q, x_P = Q, P
    secants_u, secants_v = [], []
    for iteration in range(1, max_iter + 1):
        Q2, P2 = apply(Q1, P1)
        x, x1, x2 = flat(x_Q, x_P), flat(Q1, P1), flat(Q2, P2)
        secants_u = (secants_u + [x1 - x])[-history:]
        secants_v = (secants_v + [x2 - x1])[-history:]
        U, V = xp.stack(secants_u, 1), xp.stack(secants_v, 1)
        try:
            coefficients = xp.linalg.solve(products(U, U - V), products(U, x - x1))
            Q_qn, P_qn = unflat(x1 - V @ coefficients, Q1, P1)
        except (RuntimeError, np.linalg.LinAlgError):  # singular secant system: no extrapolation this time
            Q_qn, P_qn = Q2, P2
        Q3, P3, ll_qn = apply(Q_qn, P_qn, with_loglik=True)
        if ll_qn >= best:
            x_Q, x_P, Q1, P1, ll_new = Q_qn, P_qn, Q3, P3, ll_qn
        else:  # the extrapolation overshot: continue from the map's own point
            Q3, P3, ll_new = apply(Q2, P2, with_loglik=True)
            if ll_new < best:
                break  # the map itself no longer raises ℓ: at the maximum up to rounding
            x_Q, x_P, Q1, P1 = Q2, P2, Q3, P3
        gain = ll_new - best
        best = ll_new
        trace.append(ll_new)
        if callback is not None:
            callback(iteration, ll_new)
        if gain < tol_abs:
            break
    return _like(x_Q, Q_in), _like(x_P, P_in), trace


def refine_rows(calls: PackedCalls, Q, P, tol: float = 5e-9, max_iter: int = 1000,
                steps: tuple = (1.0, 0.5, 0.25), callback=None, repack: float = 0.5):
    """Maximise ℓ over Q with P fixed (projection), row by row: each individual's ℓ is its own concave problem
    on the simplex.

    Each iteration takes one pass for every row's gradient, curvature and ℓ (the Newton pass of
    :meth:`PackedCalls.newton_step`).  A row whose full Newton step is a sure ascent by self-concordance
    (:func:`certified_ascent`; nearly every row near the maximum) takes it unscored: its new ℓ comes from the next
    iteration's pass.  The other rows are scored in one more pass at their Newton step of lengths ``steps`` and
    their EM step (:meth:`PackedCalls.candidate_logliks`; only their calls, packed apart, when they are at most
    ``repack`` of the rows); each keeps its best candidate, or stays where it is if none raises its ℓ.  EM is the
    fast move where an individual's ℓ is log-like in one ancestry (alleles private to one population: a Newton
    step only doubles a small q there, and the bound refuses it), a shortened Newton step where the full one
    overshoots; elsewhere the full Newton step converges quadratically.  (Two candidates with a per-row step
    length halved on failure took 56 iterations where these four took 5, on held-out hapmap3.)

    Stops when an iteration raised ℓ by less than ``tol`` × (number of observed calls), or once the Newton
    decrements t put the rows' remaining gain below that (Σ ω(t), a bound where no bound of Q blocks the step):
    then the certified steps are taken and scored in a pass of one candidate, for the exact ℓ.  With a P outside
    [FREQ_MIN, FREQ_MAX] (a file's 0 or 1, where the passes clamp h) nothing is certified and every step is
    scored.  In an iteration where at most ``repack`` of the rows being refined raised their own ℓ by ``tol`` ×
    their observed calls or more, the others are left where they are from then on, and the calls of those that
    did are packed apart so that the passes walk only them (from a uniform start on a held-out hapmap3 cohort, a
    quarter of the rows still moved after 5 of 13 iterations).
    ``repack`` = 0 refines every row to the end, and scores the uncertified rows in passes over all rows.  Calls
    with held-out folds or SNP shards are never packed apart (a call's fold hashes its individual's index).  On
    the torch backend (CUDA) this is :func:`quasi_newton` with P fixed.

    Returns
    -------
    Q : ndarray or torch.Tensor (as the input's type, dtype and device)
    trace : list of float   ℓ at the start and after each iteration (never decreasing, up to rounding)
    """
    if calls.backend != "numba" or Q.shape[1] == 1:
        Q_new, _, trace = quasi_newton(calls, Q, P, tol=tol, max_iter=max_iter, update_p=False, callback=callback)
        return Q_new, trace
    if not 0.0 <= repack < 1.0:
        raise ValueError(f"repack {repack}: expected a share in [0, 1)")
    n_observed = to_numpy(calls.n_observed).astype(np.float64)
    tol_abs = tol * float(n_observed.sum())
    P64 = _numpy64(P)
    current = _numpy64(Q).copy()
    # the rows still refined (``moving``, indices into ``current``) and their calls (``work``)
    moving, work = np.arange(current.shape[0]), calls
    can_repack = not calls.shard.sharded and calls.holdout.n_folds == 0
    row_loglik, trace = None, []
    # ℓ of the moving rows before the last step, while some of them took it unscored (their ℓ after it unknown)
    unscored_before = None

    def finish_step(iteration, before, after):
        """Record the step's ℓ; drop the rows that stopped gaining.  True when the refinement is done."""
        nonlocal moving, work
        row_loglik[moving] = after
        trace.append(float(row_loglik.sum()))
        if callback is not None:
            callback(iteration, trace[-1])
        if trace[-1] - trace[-2] < tol_abs:
            return True, None
        gain = after - before
        still = (gain > 0) & (gain >= tol * n_observed[moving])  # a row without observed calls never moves
        if can_repack and still.sum() <= repack * len(moving):
            if not still.any():  # (the ℓ test above stops first, up to rounding)
                return True, None
            kept = np.flatnonzero(still)
            moving = moving[still]
            work = work.take_samples(kept)
            return False, kept
        return False, None

    # the bound holds for ℓ itself, which the passes compute with h clamped to [FREQ_MIN, FREQ_MAX]: the two agree
    # when P is within those bounds (a model's P is); a P from a file may hold 0 or 1, and then every step is scored
    can_certify = bool(P64.size == 0 or (P64.min() >= FREQ_MIN and P64.max() <= FREQ_MAX))
    iteration = 0
    while True:
        if row_loglik is not None and unscored_before is None and iteration == max_iter:
            break  # the last step was scored: its ℓ is known without another pass
        Q_moving = current[moving]
        q_step = work._newton_q(Q_moving, P64, None)
        before = q_step["before"]
        if row_loglik is None:
            row_loglik = before.copy()
            trace.append(q_step["loglik"])
        elif unscored_before is not None:  # this pass scored the last step
            done, kept = finish_step(iteration, unscored_before, before)
            unscored_before = None
            if done:
                break
            if kept is not None:
                Q_moving, q_step = Q_moving[kept], _q_step_rows(q_step, kept)
                before = q_step["before"]
        if iteration == max_iter:
            break
        iteration += 1
        newton = q_step["newton"]
        sure, decrement = certified_ascent(Q_moving, newton, q_step["grad"], q_step["hess"])
        if not can_certify:
            sure[:] = False
        if can_certify and (decrement < 1.0).all() and kernels.omega(decrement).sum() < tol_abs:
            # within tol of the rows' maxima: the certified last steps, scored in one pass of a single candidate
            # (less than half a Newton pass) for the trace's exact ℓ
            final = np.where(sure[:, None], newton, Q_moving)
            after = work._individual_loglik(final, P64)
            kept = after >= before
            current[moving] = np.where(kept[:, None], final, Q_moving)
            row_loglik[moving] = np.where(kept, after, before)
            trace.append(float(row_loglik.sum()))
            if callback is not None:
                callback(iteration, trace[-1])
            break
        unsure = np.flatnonzero(~sure)
        step = np.where(sure[:, None], newton, Q_moving)
        scored_apart = can_repack and len(unsure) <= repack * len(moving)
        rows = unsure if scored_apart else np.arange(len(moving))
        after = before.copy()
        if len(rows):
            scoring = work.take_samples(rows) if scored_apart and len(rows) < len(moving) else work
            em = q_step["em"]()[rows]
            Q_rows = Q_moving[rows]
            candidates = np.stack([Q_rows + s * (newton[rows] - Q_rows) for s in steps] + [em])
            scores = scoring.candidate_logliks(candidates, P64)
            best = scores.argmax(axis=0)
            index = np.arange(len(rows))
            improves = scores[best, index] > before[rows]
            step[rows] = np.where(improves[:, None], candidates[best, index], Q_rows)
            after[rows] = np.where(improves, scores[best, index], before[rows])
        current[moving] = step
        if scored_apart and sure.any():
            unscored_before = before  # the sure rows' ℓ comes from the next pass
            continue
        done, _ = finish_step(iteration, before, after)
        if done:
            break
    return _like(current, Q), trace


def certified_ascent(Q, Q_step, grad, hess):
    """Which rows' steps Q → Q_step are sure to raise their ℓ, by the self-concordance bound the P pass also uses
    (:func:`genoae.kernels.certify_q_steps`), and each step's decrement t = sqrt(dᵀ H d).

    Parameters
    ----------
    Q, Q_step : ndarray, float64, (n, K)
    grad : ndarray, float64, (K, n)  the gradient of each row's ℓ at Q
    hess : ndarray, float64, (K (K + 1) / 2, n)  its negative Hessian, row k (k + 1) / 2 + l holding (k, l ≤ k)

    Returns
    -------
    sure : ndarray, bool, (n,);  decrement : ndarray, float64, (n,)
    """
    sure, decrement = np.empty(len(Q), np.bool_), np.empty(len(Q))
    kernels.certify_q_steps(np.ascontiguousarray(Q, np.float64), np.ascontiguousarray(Q_step, np.float64),
                            np.ascontiguousarray(grad, np.float64), np.ascontiguousarray(hess, np.float64),
                            sure, decrement)
    return sure, decrement


def _q_step_rows(q_step: dict, rows: np.ndarray) -> dict:
    """:meth:`PackedCalls._newton_q`'s result for the rows ``rows`` only."""
    em = q_step["em"]
    return {"newton": q_step["newton"][rows], "before": q_step["before"][rows], "loglik": q_step["loglik"],
            "grad": q_step["grad"][:, rows], "hess": q_step["hess"][:, rows], "em": lambda: em()[rows]}
