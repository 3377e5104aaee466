"""The fast blocked likelihood and EM code against a naive NumPy version, and against ADMIXTURE's own numbers."""
import numpy as np
import pytest
import torch

from genoae.likelihood import em_update, loglik


def naive_loglik(g, observed, Q, P):
    total = 0.0
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            if observed[i, j]:
                h = min(max(float(Q[i] @ P[j]), 1e-5), 1 - 1e-5)
                total += g[i, j] * np.log(h) + (2 - g[i, j]) * np.log(1 - h)
    return total


def naive_em(g, observed, Q, P):
    n, m = g.shape
    K = Q.shape[1]
    Q_new = np.zeros_like(Q)
    P_new = np.zeros_like(P)
    for i in range(n):
        n_obs = 0
        for j in range(m):
            if not observed[i, j]:
                continue
            n_obs += 1
            h = min(max(Q[i] @ P[j], 1e-5), 1 - 1e-5)
            for k in range(K):
                Q_new[i, k] += g[i, j] * Q[i, k] * P[j, k] / h + (2 - g[i, j]) * Q[i, k] * (1 - P[j, k]) / (1 - h)
        Q_new[i] /= 2 * n_obs
    for j in range(m):
        for k in range(K):
            A = B = 0.0
            for i in range(n):
                if observed[i, j]:
                    h = min(max(Q[i] @ P[j], 1e-5), 1 - 1e-5)
                    A += g[i, j] * Q[i, k] * P[j, k] / h
                    B += (2 - g[i, j]) * Q[i, k] * (1 - P[j, k]) / (1 - h)
            P_new[j, k] = A / (A + B)
    return Q_new, np.clip(P_new, 1e-5, 1 - 1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_matches_naive(seed):
    rng = np.random.default_rng(seed)
    n, m, K = 7, 23, 3
    g = rng.integers(0, 3, size=(n, m)).astype(float)
    observed = rng.random((n, m)) > 0.15
    Q = rng.dirichlet(np.ones(K), size=n)
    P = rng.uniform(0.05, 0.95, size=(m, K))
    t = lambda a: torch.from_numpy(np.asarray(a))
    fast = loglik(t(g), t(observed), t(Q), t(P), block=5)
    assert fast == pytest.approx(naive_loglik(g, observed, Q, P), rel=1e-12)
    Q_fast, P_fast = em_update(t(g), t(observed), t(Q), t(P), block=4)
    Q_ref, P_ref = naive_em(g, observed, Q, P)
    np.testing.assert_allclose(Q_fast.numpy(), Q_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(P_fast.numpy(), P_ref, rtol=1e-9, atol=1e-12)
    # EM never decreases the likelihood
    assert loglik(t(g), t(observed), Q_fast, P_fast) >= fast - 1e-9


ADMIXTURE_LOGLIK = {1: -4169323.010353, 2: -3835365.428974, 3: -3799887.171935, 4: -3789058.688751,
                    5: -3778955.721663}


def test_reproduces_admixture_loglik(hapmap3_bed, admixture_output):
    from genoae.io import read_genotypes

    geno = read_genotypes(hapmap3_bed)
    counts = torch.from_numpy(geno.counts().astype(np.float64))
    observed = counts >= 0
    for K, expected in ADMIXTURE_LOGLIK.items():
        Q = torch.from_numpy(np.loadtxt(admixture_output / f"hapmap3.{K}.Q", ndmin=2))
        P = torch.from_numpy(np.loadtxt(admixture_output / f"hapmap3.{K}.P", ndmin=2))
        # the .Q/.P files are rounded to 6 decimals, so agreement is ~1e-8 relative, well inside 1e-6
        assert loglik(counts, observed, Q, P) == pytest.approx(expected, rel=1e-6)
