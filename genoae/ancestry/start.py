"""Where the EM starts: an ALS factorisation of the truncated SVD (as fastmixture and ADAMIXTURE start), or
k-means on the leading principal components with the clusters' frequencies as P."""
from __future__ import annotations

import numpy as np

from genoae import kernels
from genoae.device import to_numpy
from genoae.likelihood import FREQ_MAX, FREQ_MIN, Q_MIN, PackedCalls, project_simplex_rows
from genoae.pca import standardized_pca


def principal_components(calls: PackedCalls, freqs: np.ndarray, n_components: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Leading principal components of the standardized genotypes (:func:`genoae.pca.standardized_pca`, 3 power
    iterations: enough for k-means), walking the calls block by block.

    Parameters
    ----------
    freqs : ndarray, float64, shape (n_variants,)   A2 frequency per variant (NaN where nothing is observed)

    Returns
    -------
    ndarray, float64, shape (n_samples, n_components)  sample scores U S
    """
    return standardized_pca(None, freqs, calls.n_samples, n_components, rng=rng, n_oversamples=10, n_iter=3,
                            device=calls.device, dtype="float64", what="admix start",
                            standardized_source=calls.centred_blocks, centred_products=calls.centred_products,
                            shard=calls.shard).scores


def svd_als(calls: PackedCalls, freqs: np.ndarray, K: int, rng: np.random.Generator, max_iter: int = 1000,
            tol: float = 1e-4, n_iter: int = 12, svd_tol: float = 1e-3, momentum: float = 0.8):
    """Q and P from alternating least squares on the rank-(K − 1) SVD of the centred calls (the start of
    fastmixture and ADAMIXTURE).

    With X = G − 2f (SNPs × individuals, missing calls 0) ≈ Z Vᵀ from the randomized SVD, G / 2 ≈ P Qᵀ is fitted by
    least squares for P (each row in [1e-5, 1 − 1e-5]) and Q (each row on the simplex) in turn, each row an exact
    bounded least-squares problem in K unknowns (the active-set QP of the Newton steps), X never formed:
        P rows: min ‖Q p − x_j‖²;  Q rows: min Σ_j w_j (q·P_j − x_ij)², w_j = 1 / f_j (1 − f_j) (normalised),
    the binomial variance weighting ADAMIXTURE's ALS uses.  Stops when Q moves by less than ``tol`` (RMSE).
    The SVD's power iterations stop when its K − 1 singular values move by less than ``svd_tol`` (relative), or
    after ``n_iter``: clear components settle in 2–5 iterations, one in the noise bulk (hapmap3's third at K = 4)
    in ~11; a fixed 5 left that start, and the refinement's length (19–125 iterations over 6 seeds), to the seed.
    SNP-sharded calls (``calls.shard``): P rows are the rank's, the Q side's sums over SNPs are summed over the
    ranks, and the random P start is the one-process run's rows, so every rank takes the same steps.

    Returns
    -------
    Q : ndarray, float64, (n_samples, K);  P : ndarray, float64, (n_variants, K)
    """
    shard = calls.shard
    f = np.nan_to_num(np.asarray(freqs, np.float64), nan=0.5)
    svd = standardized_pca(None, freqs, calls.n_samples, K - 1, rng=rng, n_oversamples=10, n_iter=n_iter,
                           converge_tol=svd_tol, device=calls.device, dtype="float64", what="admix start",
                           centre_only=True, with_components=True, project_scores=False,
                           standardized_source=calls.centred_blocks, centred_products=calls.centred_products,
                           shard=shard)
    Z, V = 0.5 * svd.components.T, svd.scores  # G / 2 − f ≈ Z Vᵀ: (M, k) and (N, k)
    weights = 1.0 / np.maximum(f * (1.0 - f), 1e-3)
    weights /= shard.sum(float(weights.sum())) / shard.total(len(weights))
    P = np.ascontiguousarray(shard.local_rows(rng.random((shard.total(calls.n_variants), K))).clip(FREQ_MIN, FREQ_MAX))
    Q = np.full((calls.n_samples, K), 1.0 / K)

    def solve_q(P, Q):
        WP = weights[:, None] * P
        ZWP, fWP, PWP = shard.sum(Z.T @ WP, f @ WP, P.T @ WP)  # sums over SNPs
        B = V @ ZWP + fWP  # Xᵀ W P with X = Z Vᵀ + f 1ᵀ
        return _bounded_least_squares(Q, PWP, B, Q_MIN, 1.0 - Q_MIN, simplex=True)

    def solve_p(Q, P):
        B = Z @ (V.T @ Q) + np.outer(f, Q.sum(axis=0))  # X Q
        return _bounded_least_squares(P, Q.T @ Q, B, FREQ_MIN, FREQ_MAX, simplex=False)

    Q = solve_q(P, Q)
    Q_previous = Q
    for _ in range(max_iter):
        # P from Q pushed along its last move (momentum 0.8, as ADAMIXTURE's ALS: 382 → 60 iterations on the
        # 957 × 14,079 HapMap set at K = 6)
        ahead = project_simplex_rows(Q + momentum * (Q - Q_previous))
        P = solve_p(ahead, P)
        Q_next = solve_q(P, Q)
        moved = shard.max(np.sqrt(np.mean((Q_next - Q) ** 2)))  # the ranks stop together
        Q_previous, Q = Q, Q_next
        if moved < tol:
            break
    return project_simplex_rows(Q), P


def _bounded_least_squares(X0, A, B, lower, upper, simplex: bool):
    """Rows x minimising ½ xᵀ A x − bᵀ x within [lower, upper] (and Σ x = 1 when ``simplex``): the unconstrained
    solution for every row at once (one K × K inverse), the active-set QP (:mod:`genoae.kernels`, started from
    X0) only for the rows where it leaves the bounds."""
    inverse = np.linalg.pinv(A)
    X = B @ inverse
    if simplex:  # the multiplier of Σ x = 1, row by row
        ones = inverse.sum(axis=1)
        X -= np.outer((X.sum(axis=1) - 1.0) / ones.sum(), ones)
    outside = np.flatnonzero(((X < lower) | (X > upper)).any(axis=1))
    if len(outside):
        fixed = np.empty((len(outside), X.shape[1]))
        kernels.constrained_least_squares(np.ascontiguousarray(X0[outside]), A, np.ascontiguousarray(B[outside]),
                                          lower, upper, simplex, fixed)
        X[outside] = fixed
    return X


def kmeans(points: np.ndarray, K: int, rng: np.random.Generator, n_init: int = 10,
           max_iter: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of ``n_init`` restarts (by within-cluster sum of squares).

    Returns
    -------
    ndarray, int64, shape (n_points,)  cluster of each point, clusters ordered by first appearance
    """
    best_labels, best_inertia = None, np.inf
    n = points.shape[0]
    for _ in range(n_init):
        centres = [points[rng.integers(n)]]
        for _ in range(1, K):
            d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            centres.append(points[rng.choice(n, p=d2 / total)] if total > 0 else points[rng.integers(n)])
        centres = np.array(centres)
        labels = np.zeros(n, np.int64)
        for _ in range(max_iter):
            d2 = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
            new_labels = d2.argmin(axis=1)
            for k in range(K):
                members = points[new_labels == k]
                if len(members):
                    centres[k] = members.mean(axis=0)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
        inertia = ((points - centres[labels]) ** 2).sum()
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    # relabel by first appearance so that the column order is a function of the data, not of the restarts
    _, first = np.unique(best_labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(K, np.int64)
    remap[np.unique(best_labels)[order]] = np.arange(len(order))
    return remap[best_labels]


def cluster_frequencies(calls: PackedCalls, labels: np.ndarray, K: int, pseudo: float = 0.5) -> np.ndarray:
    """A2 frequency of each SNP within each cluster (pseudo-counts keep it off 0 and 1), float64 (M, K)."""
    onehot = np.zeros((calls.n_samples, K))
    known = np.flatnonzero(labels >= 0)
    onehot[known, labels[known]] = 1.0
    P = np.empty((calls.n_variants, K))
    # blocks of g + 1 where observed, 0 where missing (centre −1, scale 1): the observed calls and their counts
    ones = np.ones(calls.n_variants)
    for cols, x in calls.centred_blocks(-ones, ones, "float64"):
        x = to_numpy(x)
        observed = (x > 0).astype(np.float64)
        a2 = (x - observed) @ onehot
        total = 2.0 * (observed @ onehot)
        P[cols] = (a2 + pseudo) / (total + 2 * pseudo)
    return P.clip(FREQ_MIN, FREQ_MAX)


# Power iterations of the SVD for the starts after the first of ``--starts``: ADAMIXTURE's default (``--power 5``),
# too few to settle components in the noise bulk, so each start's random test matrix leaves it in its own place.
# On hapmap3 at K = 4 the settled SVD leads every seed to one local maximum (-3,788,624.0); 5 iterations spread 8
# seeds over 5 maxima, 2 of them at the highest (-3,788,607.9); 4 iterations reached it from 1 of 8, 6 from 1 of 8.
ROUGH_SVD_ITERATIONS = 5


def initial_estimates(calls: PackedCalls, freqs: np.ndarray, K: int, rng: np.random.Generator,
                      labels: np.ndarray | None = None, method: str = "als", rough: bool = False):
    """Q and P to start from: ``method`` ``als`` (:func:`svd_als`) or ``kmeans`` (k-means on principal components,
    softened one-hot Q, the clusters' frequencies as P); supervised runs start from the given labels, K = 1 from
    the observed frequencies.

    Parameters
    ----------
    freqs : ndarray, float64, shape (n_variants,)
        A2 frequency per variant (:meth:`genoae.genotypes.Genotypes.allele_freqs`), for the PCA.
    labels : ndarray, int64, shape (n_samples,), optional
        Known cluster per individual (−1 unknown), for supervised runs; unlabelled individuals start uniform.
    rough : bool
        ``als`` only: a fixed ``ROUGH_SVD_ITERATIONS`` power iterations instead of iterating until the singular
        values settle (the later starts of a multi-start run, which should differ from the first).

    Returns
    -------
    Q : ndarray, float64, (n_samples, K);  P : ndarray, float64, (n_variants, K)
    """
    n = calls.n_samples
    supervised = labels is not None
    if labels is None and K > 1 and method == "als":
        if rough:
            return svd_als(calls, freqs, K, rng, n_iter=ROUGH_SVD_ITERATIONS, svd_tol=0.0)
        return svd_als(calls, freqs, K, rng)
    if labels is None:
        if K == 1:
            labels = np.zeros(n, np.int64)
        else:
            pcs = principal_components(calls, freqs, K - 1, rng)
            labels = kmeans(pcs, K, rng)
    P = cluster_frequencies(calls, labels, K)
    Q = np.full((n, K), 1.0 / K)
    known = labels >= 0
    if K > 1:
        # k-means clusters are a guess (softened); supervised labels are the answer (one-hot, kept fixed)
        Q[known] = 0.0 if supervised else 0.1 / (K - 1)
        Q[np.flatnonzero(known), labels[known]] = 1.0 if supervised else 0.9
    return project_simplex_rows(Q), P


