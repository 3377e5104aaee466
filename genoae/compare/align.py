"""Cluster alignment: Hungarian matching of Q columns within a K, the K → K+1 chain across K (as pong, CLUMPP)."""
from __future__ import annotations

import numpy as np

from genoae.compare.runs import Run

def _column_cost(Q_ref: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Mean squared difference between every column of ``Q_ref`` (rows of the result) and of ``Q``."""
    diff = Q_ref[:, :, None] - Q[:, None, :]
    return (diff ** 2).mean(axis=0)


def align_columns(Q_ref: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Permutation of ``Q``'s columns that best matches ``Q_ref`` (Hungarian matching on squared error).

    Works for ``Q`` with as many or more columns than ``Q_ref`` (the K → K+1 step): the matched columns come
    first, in ``Q_ref``'s order, and the unmatched ones follow, in their own order.

    Parameters
    ----------
    Q_ref : ndarray, float, shape (n_samples, K_ref)
    Q : ndarray, float, shape (n_samples, K), K >= K_ref

    Returns
    -------
    order : ndarray, int64, shape (K,)   ``Q[:, order]`` is aligned to ``Q_ref``.
    """
    Q_ref = np.asarray(Q_ref, np.float64)
    Q = np.asarray(Q, np.float64)
    if Q_ref.shape[0] != Q.shape[0]:
        raise ValueError(f"Q matrices have {Q_ref.shape[0]} and {Q.shape[0]} rows")
    if Q.shape[1] < Q_ref.shape[1]:
        raise ValueError("the reference has more clusters than the run being aligned")
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs admix 0.35 s and 38 MB to import

    rows, cols = linear_sum_assignment(_column_cost(Q_ref, Q))
    matched = cols[np.argsort(rows)]
    rest = [c for c in range(Q.shape[1]) if c not in set(matched.tolist())]
    return np.concatenate([matched, np.array(rest, dtype=np.int64)]).astype(np.int64)


def aligned_rmse(Q: np.ndarray, Q_ref: np.ndarray) -> float:
    """RMSE between ``Q`` and ``Q_ref`` (same K) after Hungarian matching of ``Q``'s columns to ``Q_ref``'s."""
    Q = np.asarray(Q, np.float64)
    Q_ref = np.asarray(Q_ref, np.float64)
    return float(np.sqrt(((Q[:, align_columns(Q_ref, Q)] - Q_ref) ** 2).mean()))


def align_runs(runs: list[Run]) -> list[Run]:
    """Give every run a column order so that one ancestry has one column across runs and K.

    Within each K the first run given is the reference and the others are matched to it; across K, the
    reference of each K is matched to the (aligned) reference of the next smaller K present (chain K → K+1,
    as pong and CLUMPP do), so new clusters take the last columns.  Runs are modified in place (``order``).
    """
    by_k: dict[int, list[Run]] = {}
    for run in runs:
        by_k.setdefault(run.K, []).append(run)
    previous = None
    for K in sorted(by_k):
        reference = by_k[K][0]
        if previous is None:
            reference.order = np.arange(K)
        else:
            reference.order = align_columns(previous.Q_aligned, reference.Q)
        for run in by_k[K][1:]:
            run.order = align_columns(reference.Q_aligned, run.Q)
        previous = reference
    return runs


def align_q_series(Qs: list[np.ndarray]) -> list[np.ndarray]:
    """Align a list of Q matrices (any K, e.g. K = 2..5 of one program) by the K → K+1 chain; returns copies."""
    runs = [Run(name=str(i), source="genoae", Q=np.asarray(Q, np.float64)) for i, Q in enumerate(Qs)]
    align_runs(runs)
    return [run.Q_aligned for run in runs]


