"""genoae.pca: the randomized SVD core against an exact SVD."""
import numpy as np
import torch

from genoae.pca import randomized_svd


def test_randomized_svd_matches_exact_svd_of_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    low_rank = rng.standard_normal((60, 5)) @ np.diag([40, 20, 10, 5, 2.5]) @ rng.standard_normal((5, 300))
    X = low_rank + 0.01 * rng.standard_normal((60, 300))
    passes = []
    omega = rng.standard_normal((300, 15))
    U, singular, V = randomized_svd(lambda right: X @ right, lambda left: X.T @ left, omega, n_iter=3,
                                    on_pass=passes.append)
    exact_U, exact_S, exact_Vt = np.linalg.svd(X, full_matrices=False)
    assert np.allclose(singular[:5], exact_S[:5], rtol=1e-6)
    # singular vectors agree up to sign (the right ones with the left ones' signs)
    signs = np.sign(np.sum(U[:, :5] * exact_U[:, :5], axis=0))
    assert np.allclose(U[:, :5] * signs, exact_U[:, :5], atol=1e-6)
    assert np.allclose(V[:, :5] * signs, exact_Vt[:5].T, atol=1e-6)
    # without a pass of their own, the right vectors are Xᵀ U S⁻¹ to rounding
    assert np.allclose(V, X.T @ U / singular, atol=1e-10)
    assert sum(passes) == 2 * 3 + 2


def test_randomized_svd_without_power_iterations_is_poorer_on_a_flat_spectrum():
    """The power iterations are what makes it accurate when the spectrum decays slowly."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 400)) + np.outer(rng.standard_normal(80), rng.standard_normal(400))
    exact = np.linalg.svd(X, compute_uv=False)
    omega = rng.standard_normal((400, 4))
    errors = [abs(randomized_svd(lambda r: X @ r, lambda l: X.T @ l, omega, n_iter=n)[1][1] - exact[1])
              for n in (0, 6)]
    assert errors[1] < errors[0]


def test_randomized_svd_stops_once_the_leading_singular_values_settle():
    """With ``converged`` a clear spectrum stops after a few power iterations, with the values of a full run; a
    component inside the noise bulk keeps iterating up to ``n_iter``."""
    rng = np.random.default_rng(2)
    signal = rng.standard_normal((80, 3)) @ np.diag([300.0, 200.0, 100.0]) @ rng.standard_normal((3, 500)) / 20
    X = signal + rng.standard_normal((80, 500))
    omega = rng.standard_normal((500, 13))
    passes, full_passes = [], []
    _, early, _ = randomized_svd(lambda r: X @ r, lambda l: X.T @ l, omega, n_iter=20, on_pass=passes.append,
                                 converged=(3, 1e-6))
    _, full, _ = randomized_svd(lambda r: X @ r, lambda l: X.T @ l, omega, n_iter=20, on_pass=full_passes.append)
    assert sum(passes) < sum(full_passes) == 2 * 20 + 2
    assert np.allclose(early[:3], full[:3], rtol=1e-6)
    # the fifth singular value is noise: asking for it to settle to 1e-9 runs every iteration
    bulk = []
    randomized_svd(lambda r: X @ r, lambda l: X.T @ l, omega, n_iter=6, on_pass=bulk.append, converged=(5, 1e-9))
    assert sum(bulk) == 2 * 6 + 2


def _structured_genotypes(seed=0, n=90, m=400, missing=0.05):
    """Three populations with different frequencies, some missing calls and a few monomorphic SNPs."""
    from genoae.genotypes import Genotypes

    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.05, 0.95, (3, m))
    freqs[:, :5] = 0.0  # monomorphic: must contribute nothing
    g = rng.binomial(2, freqs[np.repeat(np.arange(3), n // 3)]).astype(np.int8)
    g[rng.random(g.shape) < missing] = -1
    return Genotypes.from_counts(g), g


def _naive_standardized(g):
    """The standardized matrix built whole, as the docstring defines it."""
    observed = g >= 0
    f = np.where(observed, g, 0).sum(0) / (2.0 * observed.sum(0))
    scale = np.sqrt(2 * f * (1 - f))
    z = np.where(observed, (g - 2 * f) / np.where(scale > 1e-6, scale, 1.0), 0.0)
    return np.where(scale > 1e-6, z, 0.0)


def test_pca_of_genotypes_matches_exact_svd_of_the_standardized_matrix():
    from genoae.pca import pca

    geno, g = _structured_genotypes()
    scores, explained = pca(geno, n_components=2, seed=3, chunk=64)  # several blocks
    Z = _naive_standardized(g)
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    exact = U[:, :2] * S[:2]
    signs = np.sign(np.sum(scores * exact, axis=0))
    np.testing.assert_allclose(scores, exact * signs, atol=1e-4 * S[0])
    np.testing.assert_allclose(explained, S[:2] ** 2 / (Z ** 2).sum(), rtol=1e-4)


def test_standardized_pca_components_project_rows_onto_their_scores():
    from genoae.pca import standardized_pca

    geno, g = _structured_genotypes(seed=1)
    result = standardized_pca(lambda dtype: geno.blocks(50, "cpu", dtype), geno.allele_freqs(), geno.n_samples, 2,
                              n_iter=7, with_components=True)
    Z = _naive_standardized(g)
    np.testing.assert_allclose(Z @ result.components.T, result.scores, atol=1e-8)
    np.testing.assert_allclose(result.components @ result.components.T, np.eye(2), atol=1e-6)
    assert np.all(result.components[:, :5] == 0)  # monomorphic SNPs have no loading


def test_admix_start_uses_the_same_pca():
    """The admixture start's components are genoae.pca's on the same calls (up to the SVD's accuracy)."""
    from genoae.ancestry.start import principal_components
    from genoae.likelihood import PackedCalls
    from genoae.pca import standardized_pca

    geno, _ = _structured_genotypes(seed=2)
    start = principal_components(PackedCalls.from_genotypes(geno, block=64), geno.allele_freqs(), 2,
                                 np.random.default_rng(5))
    direct = standardized_pca(lambda dtype: geno.blocks(64, "cpu", dtype), geno.allele_freqs(), geno.n_samples, 2,
                              rng=np.random.default_rng(5), n_iter=3)
    np.testing.assert_allclose(start, direct.scores, atol=1e-9)


def test_pca_refuses_data_without_a_varying_variant():
    import pytest

    from genoae.errors import UsageError
    from genoae.genotypes import Genotypes
    from genoae.pca import pca

    with pytest.raises(UsageError, match="polymorphic"):
        pca(Genotypes.from_counts(np.zeros((5, 4), np.int8)))
