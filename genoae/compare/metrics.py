"""How far apart two aligned runs are (Q and P), F_ST between one run's clusters, mean Q per population."""
from __future__ import annotations

import numpy as np

def jensen_shannon(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (base 2, so in [0, 1]) between matching rows of two row-stochastic matrices.

    Returns
    -------
    ndarray, float64, shape (n_rows,)
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    m = 0.5 * (a + b)

    def kl(x, y):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * np.log2(x / np.where(y > 0, y, 1.0)), 0.0)
        return terms.sum(axis=1)

    return np.clip(0.5 * kl(a, m) + 0.5 * kl(b, m), 0.0, 1.0)


def q_metrics(Q_a: np.ndarray, Q_b: np.ndarray) -> dict:
    """How far apart two aligned Q matrices of the same K are.

    Returns
    -------
    dict
        ``rmse`` (over all entries), ``mean_abs_diff``, ``jsd_mean`` (mean over individuals of the row-wise
        Jensen–Shannon divergence, base 2), ``jsd_max``, ``pearson_r`` (list, per cluster; NaN for a constant
        column).
    """
    Q_a = np.asarray(Q_a, np.float64)
    Q_b = np.asarray(Q_b, np.float64)
    if Q_a.shape != Q_b.shape:
        raise ValueError(f"Q shapes differ: {Q_a.shape} vs {Q_b.shape}")
    diff = Q_a - Q_b
    jsd = jensen_shannon(Q_a, Q_b)
    r = []
    for k in range(Q_a.shape[1]):
        x, y = Q_a[:, k], Q_b[:, k]
        if x.std() == 0 or y.std() == 0:
            r.append(float("nan"))
        else:
            r.append(float(np.corrcoef(x, y)[0, 1]))
    return {"rmse": float(np.sqrt((diff ** 2).mean())), "mean_abs_diff": float(np.abs(diff).mean()),
            "jsd_mean": float(jsd.mean()), "jsd_max": float(jsd.max()), "pearson_r": r}


def p_metrics(P_a: np.ndarray, P_b: np.ndarray) -> dict:
    """RMSE and mean Pearson r between two aligned P matrices (A2 frequencies) of the same K."""
    diff = P_a - P_b
    r = [float(np.corrcoef(P_a[:, k], P_b[:, k])[0, 1]) for k in range(P_a.shape[1])]
    return {"rmse": float(np.sqrt((diff ** 2).mean())), "pearson_r": r}


def fst_hudson(p1: np.ndarray, p2: np.ndarray) -> float:
    """Hudson's F_ST between two allele-frequency vectors, as a ratio of averages (Bhatia et al. 2013).

        F_ST = Σ_j (p1_j − p2_j)² / Σ_j [p1_j (1 − p2_j) + p2_j (1 − p1_j)]

    The estimator Neural ADMIXTURE prints.  Frequencies are P columns (model parameters, so no sample-size term).
    """
    p1 = np.asarray(p1, np.float64)
    p2 = np.asarray(p2, np.float64)
    num = ((p1 - p2) ** 2).sum()
    den = (p1 * (1 - p2) + p2 * (1 - p1)).sum()
    return float(num / den) if den > 0 else float("nan")


def fst_admixture(p1: np.ndarray, p2: np.ndarray) -> float:
    """F_ST as ADMIXTURE prints it ("Fst divergences between estimated populations").

    The per-SNP coancestry coefficient of Reynolds, Weir & Cockerham (1983) without sample-size terms,

        θ_j = (p1_j − p2_j)² / [p1_j (1 − p2_j) + p2_j (1 − p1_j)],

    averaged over SNPs with weights p̄_j (1 − p̄_j), p̄_j = (p1_j + p2_j) / 2.  ADMIXTURE's source is not public;
    this definition was found by checking candidates against its logs (ADMIXTURE 1.22's release notes name
    Reynolds et al. 1983): for hapmap3 K = 2..5 it reproduces all 20 printed values to their 3 decimals, where
    Hudson's ratio of averages (:func:`fst_hudson`) is up to 0.031 higher.
    """
    p1 = np.asarray(p1, np.float64)
    p2 = np.asarray(p2, np.float64)
    mean = 0.5 * (p1 + p2)
    weight = mean * (1 - mean)
    den = p1 * (1 - p2) + p2 * (1 - p1)
    ok = (weight > 0) & (den > 0)
    if not ok.any():
        return float("nan")
    theta = (p1[ok] - p2[ok]) ** 2 / den[ok]
    return float((weight[ok] * theta).sum() / weight[ok].sum())


FST_ESTIMATORS = {"admixture": fst_admixture, "hudson": fst_hudson}


def fst_matrix(P: np.ndarray, method: str = "admixture") -> np.ndarray:
    """Pairwise F_ST between the clusters of one run.

    Parameters
    ----------
    P : ndarray, float, shape (n_variants, K)
    method : {"admixture", "hudson"}   see :func:`fst_admixture`, :func:`fst_hudson`

    Returns
    -------
    ndarray, float64, shape (K, K), symmetric, zero diagonal.
    """
    estimator = FST_ESTIMATORS[method]
    K = P.shape[1]
    out = np.zeros((K, K))
    for a in range(K):
        for b in range(a):
            out[a, b] = out[b, a] = estimator(P[:, a], P[:, b])
    return out


def mean_q_by_population(Q: np.ndarray, labels: np.ndarray) -> dict:
    """Mean ancestry proportions per population label (unlabelled ``""`` individuals skipped).

    Returns
    -------
    dict label -> list of K floats, in order of first appearance.
    """
    out = {}
    labels = np.asarray(labels, dtype=str)
    for pop in dict.fromkeys(labels.tolist()):
        if pop == "":
            continue
        out[pop] = Q[labels == pop].mean(axis=0).tolist()
    return out


