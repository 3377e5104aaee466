"""Building blocks against naive references: k-means against brute force over all partitions, the randomized SVD
against numpy.linalg.svd, the cross-validation deviance against ADMIXTURE's formula written out call by call."""
import itertools

import numpy as np
import pytest
import torch

from genoae.ancestry.start import kmeans
from genoae.device import to_numpy
from genoae.likelihood import FREQ_MAX, FREQ_MIN, PackedCalls
from genoae.pca import randomized_svd


# ------------------------------------------------------------------------------------------- k-means
def within_ss(points, labels):
    """Within-cluster sum of squares of a labelling (empty clusters contribute nothing)."""
    return sum(((points[labels == k] - points[labels == k].mean(axis=0)) ** 2).sum() for k in np.unique(labels))


def brute_force_min_ss(points, K):
    """The least within-cluster sum of squares over every assignment of the points to K clusters."""
    n = len(points)
    labelings = np.array(list(itertools.product(range(K), repeat=n)))  # (K**n, n)
    onehot = labelings[:, :, None] == np.arange(K)                      # (L, n, K)
    counts = onehot.sum(axis=1)                                          # (L, K)
    sums = np.einsum("lnk,nd->lkd", onehot, points)                      # (L, K, d)
    # Σ_k Σ_{i∈k} |x_i − μ_k|² = Σ_i |x_i|² − Σ_k |Σ_{i∈k} x_i|² / n_k
    between = ((sums ** 2).sum(axis=2) / np.maximum(counts, 1)).sum(axis=1)
    return float((points ** 2).sum() - between.max())


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("K", [2, 3])
def test_kmeans_reaches_the_brute_force_minimum(seed, K):
    """On 9 random 2-d points, k-means' within-cluster SS equals the minimum over all K**9 labellings.

    Lloyd's iterations only reach a local minimum; on such tiny random sets the default 10 restarts miss the global
    one about 8 % of the time (K = 3), so this asks for 50 restarts; the default is checked to give a fixed point."""
    points = np.random.default_rng(seed).normal(size=(9, 2))
    labels = kmeans(points, K, np.random.default_rng(100 + seed), n_init=50)
    assert labels.shape == (9,) and set(labels) == set(range(K))
    assert within_ss(points, labels) == pytest.approx(brute_force_min_ss(points, K), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_returns_a_lloyd_fixed_point(seed):
    """With the default restarts every point is nearest to the mean of its own cluster (a local minimum)."""
    points = np.random.default_rng(seed).normal(size=(40, 3))
    labels = kmeans(points, 4, np.random.default_rng(seed))
    means = np.array([points[labels == k].mean(axis=0) for k in range(4)])
    nearest = ((points[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(labels, nearest)


def test_kmeans_recovers_separated_blobs():
    """Well-separated blobs come back as the true clusters, numbered by first appearance."""
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    truth = rng.permutation(np.repeat(np.arange(4), 15))
    points = centres[truth] + rng.normal(scale=0.5, size=(60, 3))
    labels = kmeans(points, 4, np.random.default_rng(0))
    # relabel the truth by first appearance, as kmeans numbers its clusters
    first = {}
    for t in truth:
        first.setdefault(t, len(first))
    np.testing.assert_array_equal(labels, [first[t] for t in truth])


# ------------------------------------------------------------------------------------------- randomized SVD
def test_randomized_svd_matches_numpy_svd():
    """Leading singular values (rtol 1e-8) and left singular subspace of a rank-5-plus-noise 60 × 40 matrix."""
    rng = np.random.default_rng(11)
    n_rows, n_cols, rank = 60, 40, 5
    left, _ = np.linalg.qr(rng.normal(size=(n_rows, rank)))
    right, _ = np.linalg.qr(rng.normal(size=(n_cols, rank)))
    # noise singular values ≈ 1.4 against 20..100: a few power iterations are needed for 1e-8
    X = left @ np.diag([100.0, 80.0, 60.0, 40.0, 20.0]) @ right.T + 0.1 * rng.normal(size=(n_rows, n_cols))
    omega = rng.normal(size=(n_cols, rank + 5))
    U, singular, V = randomized_svd(lambda right: X @ right, lambda left: X.T @ left, omega, n_iter=6)
    U_np, s_np, Vt_np = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(singular[:rank], s_np[:rank], rtol=1e-8)
    overlap = np.abs(U[:, :rank].T @ U_np[:, :rank])
    np.testing.assert_allclose(overlap, np.eye(rank), atol=1e-7)
    np.testing.assert_allclose(np.abs(V[:, :rank].T @ Vt_np[:rank].T), np.eye(rank), atol=1e-7)


# ------------------------------------------------------------------------------------------- CV deviance
def naive_deviance(g, held, Q, P):
    """ADMIXTURE's CV deviance summed over held-out calls: g log(g / 2h) + (2 − g) log((2 − g) / (2 − 2h)),
    0 log 0 = 0, h = Q_i·P_j clamped to [1e-5, 1 − 1e-5]; and the number of held-out calls."""
    total, n = 0.0, 0
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            if not held[i, j]:
                continue
            n += 1
            h = min(max(float(Q[i] @ P[j]), FREQ_MIN), FREQ_MAX)
            x = g[i, j]
            if x > 0:
                total += x * np.log(x / (2 * h))
            if x < 2:
                total += (2 - x) * np.log((2 - x) / (2 - 2 * h))
    return total, n


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_deviance_matches_naive_formula(seed, backend):
    """PackedCalls.deviance of one CV fold equals the naive deviance and count over that fold's observed calls,
    the fold of each call being the SplitMix64 hash of (seed, SNP, individual) written out here call by call."""
    from genoae.kernels import fold_of

    rng = np.random.default_rng(seed)
    n, m, K = 12, 30, 3
    g = rng.integers(0, 3, size=(n, m))
    observed = rng.random((n, m)) > 0.15
    Q = rng.dirichlet(np.ones(K), size=n)
    P = rng.uniform(0.02, 0.98, size=(m, K))
    P[0] = 0.0           # h = 0 is clamped to 1e-5 (g > 0 there gives a large but finite deviance)
    P[1] = 1.0           # h = 1 is clamped to 1 − 1e-5
    folds, fold, fold_seed = 3, 1, 987654321 + seed
    fold_of_call = np.array([[fold_of(fold_seed, j, i, n, folds) for j in range(m)] for i in range(n)])
    held = observed & (fold_of_call == fold)
    calls = PackedCalls.from_counts(torch.from_numpy(g.astype(np.float64)), torch.from_numpy(observed),
                                    block=7, backend=backend)
    deviance, count = calls.deviance(torch.from_numpy(Q), torch.from_numpy(P), folds, fold, fold_seed)
    expected, expected_count = naive_deviance(g, held, Q, P)
    assert 0 < count == expected_count < observed.sum()
    assert deviance == pytest.approx(expected, rel=1e-12)
    # the training side of the same fold counts exactly the other observed calls of each individual
    training = calls.training(folds, fold, fold_seed)
    np.testing.assert_array_equal(to_numpy(training.n_observed), (observed & ~held).sum(axis=1))
