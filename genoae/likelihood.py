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

import torch

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


def cv_deviance(counts: torch.Tensor, held_out: torch.Tensor, Q: torch.Tensor, P: torch.Tensor) -> tuple[float, int]:
    """ADMIXTURE's cross-validation error terms on held-out calls: the binomial deviance.

    d_ij = g log(g / h) + (2 − g) log((2 − g) / (2 − 2h))   (0 log 0 = 0, h clamped)

    Returns the summed deviance and the number of held-out calls; the caller reports ``sum / n`` (check the
    scale against ADMIXTURE's logged CV error before relying on it).

    Returns
    -------
    (deviance_sum, n_held_out) : float, int
    """
    h = (Q @ P.T).clamp(FREQ_MIN, FREQ_MAX)
    g = torch.where(held_out, counts, torch.zeros((), dtype=counts.dtype, device=counts.device))
    first = torch.where(g > 0, g * torch.log(g.clamp_min(1e-300) / h), torch.zeros_like(g))
    second = torch.where(g < 2, (2 - g) * torch.log((2 - g).clamp_min(1e-300) / (2 - 2 * h)), torch.zeros_like(g))
    dev = torch.where(held_out, first + second, torch.zeros_like(g))
    return float(dev.sum(dtype=torch.float64)), int(held_out.sum())
