"""genoae.pca: the randomized SVD core against an exact SVD."""
import numpy as np
import torch

from genoae.pca import randomized_svd


def test_randomized_svd_matches_exact_svd_of_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    low_rank = rng.standard_normal((60, 5)) @ np.diag([40, 20, 10, 5, 2.5]) @ rng.standard_normal((5, 300))
    X = torch.from_numpy(low_rank + 0.01 * rng.standard_normal((60, 300)))
    passes = []
    omega = torch.from_numpy(rng.standard_normal((300, 15)))
    U, singular = randomized_svd(lambda right: X @ right, lambda left: X.T @ left, omega, n_iter=3,
                                 on_pass=passes.append)
    exact_U, exact_S, _ = np.linalg.svd(X.numpy(), full_matrices=False)
    assert np.allclose(singular[:5].numpy(), exact_S[:5], rtol=1e-6)
    # singular vectors agree up to sign
    overlap = np.abs(np.sum(U[:, :5].numpy() * exact_U[:, :5], axis=0))
    assert np.allclose(overlap, 1.0, atol=1e-6)
    assert sum(passes) == 2 * 3 + 2


def test_randomized_svd_without_power_iterations_is_poorer_on_a_flat_spectrum():
    """The power iterations are what makes it accurate when the spectrum decays slowly."""
    rng = np.random.default_rng(1)
    X = torch.from_numpy(rng.standard_normal((80, 400)) + np.outer(rng.standard_normal(80), rng.standard_normal(400)))
    exact = np.linalg.svd(X.numpy(), compute_uv=False)
    omega = torch.from_numpy(rng.standard_normal((400, 4)))
    errors = [abs(randomized_svd(lambda r: X @ r, lambda l: X.T @ l, omega, n_iter=n)[1][1].item() - exact[1])
              for n in (0, 6)]
    assert errors[1] < errors[0]
