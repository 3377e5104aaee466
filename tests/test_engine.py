"""The EM engine on the packed calls: memory, stopping rule, the ALS start, reproducibility."""
import tracemalloc

import numpy as np
import pytest
import torch

from genoae.ancestry.estimator import Admixture
from genoae.ancestry.start import initial_estimates, svd_als
from genoae.compare import aligned_rmse
from genoae.genotypes import Genotypes
from genoae.likelihood import PackedCalls, quasi_newton
from genoae.shard import LOCAL


def simulate(n, m, K, seed, fst=0.1, missing=0.0):
    rng = np.random.default_rng(seed)
    ancestral = rng.uniform(0.05, 0.95, size=m)
    a, b = ancestral * (1 - fst) / fst, (1 - ancestral) * (1 - fst) / fst
    P = np.clip(rng.beta(a[:, None], b[:, None], size=(m, K)), 1e-3, 1 - 1e-3)
    Q = rng.dirichlet(np.full(K, 0.5), size=n)
    g = rng.binomial(2, Q @ P.T).astype(np.int8)
    g[rng.random(g.shape) < missing] = -1
    return g, Q, P


@pytest.fixture(scope="module")
def medium():
    g, Q, P = simulate(4000, 8000, 3, seed=5, missing=0.02)
    return Genotypes.from_counts(g), Q, P


def test_no_pass_allocates_anything_of_the_size_of_the_calls(medium):
    """EM and Newton steps, ℓ, a CV fold's training pass, its deviance and the SVD + ALS start each allocate less
    (NumPy, traced) than the packed calls themselves (N × M / 4 bytes, not copied); a byte-per-call copy, a dense
    decode or an N × M fold mask would each be 4 to 32 times the bound."""
    genotypes, Q_true, P_true = medium
    n, m = genotypes.n_samples, genotypes.n_variants
    # blocks of 64 SNPs: the SVD's block budget (64 × N float64 = 2 MB here) stays under the bound
    calls = PackedCalls.from_genotypes(genotypes, block=64)
    Q, P = torch.from_numpy(Q_true), torch.from_numpy(P_true)
    freqs = genotypes.allele_freqs()
    bound = n * m // 4  # the packed size
    steps = {
        "em_step": lambda: calls.em_step(Q, P, with_loglik=True),
        "loglik": lambda: calls.loglik(Q, P),
        "training fold": lambda: calls.training(5, 1, 99).em_step(Q, P),
        "deviance": lambda: calls.deviance(Q, P, 5, 1, 99),
        "newton_step": lambda: calls.newton_step(Q, P, with_loglik=True),
        "ALS start": lambda: svd_als(calls, freqs, 3, np.random.default_rng(0), max_iter=20),
        "allele frequencies": lambda: genotypes.allele_freqs(),
    }
    for step in steps.values():
        step()  # kernels compiled / loaded before measuring
    for name, step in steps.items():
        tracemalloc.start()
        step()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < bound, f"{name}: {peak:,} bytes traced, bound {bound:,} (N x M = {n * m:,})"


def test_calls_are_the_genotypes_packed_bytes_not_a_copy(medium):
    genotypes, _, _ = medium
    calls = PackedCalls.from_genotypes(genotypes)
    assert calls.packed is genotypes.packed


def test_k1_is_one_em_step_to_the_closed_form_maximum():
    """K = 1 used to loop to max_iter in CV (rounding at the fixed point tripped the overshoot branch)."""
    g, _, _ = simulate(50, 400, 2, seed=3, missing=0.1)
    calls = PackedCalls.from_genotypes(Genotypes.from_counts(g))
    Q = torch.ones((50, 1), dtype=torch.float64)
    P = torch.full((400, 1), 0.5, dtype=torch.float64)
    Q_out, P_out, trace = quasi_newton(calls, Q, P, tol=0.0, max_iter=1000)
    observed = g >= 0
    freq = np.where(observed, g, 0).sum(0) / (2.0 * observed.sum(0))
    np.testing.assert_allclose(P_out[:, 0].numpy(), np.clip(freq, 1e-5, 1 - 1e-5), rtol=1e-12)
    assert len(trace) == 2 and trace[1] >= trace[0]


class ScriptedCalls:
    """A stand-in whose map returns its input and whose ℓ follows a script."""

    shard = LOCAL

    def __init__(self, logliks):
        self.logliks = iter(logliks)
        self.n_observed = np.ones(3)
        self.loglik_calls = 0

    def asarray(self, array, dtype=None):
        return array

    def newton_step(self, Q, P, with_loglik=False, **_):
        if with_loglik:
            self.loglik_calls += 1
            return Q, P, next(self.logliks)
        return Q, P

    em_step = newton_step


def test_accelerator_stops_when_the_map_itself_lowers_the_loglik():
    """ℓ falling under the unextrapolated map means rounding at the maximum: stop, keeping the best point (this
    used to loop to max_iter: the K = 1 CV stall)."""
    calls = ScriptedCalls([0.0] + [-1.0] * 1000)
    Q = torch.full((3, 2), 0.5, dtype=torch.float64)
    P = torch.full((4, 2), 0.5, dtype=torch.float64)
    _, _, trace = quasi_newton(calls, Q, P, tol=0.0, max_iter=1000)
    assert calls.loglik_calls == 3  # the start, the extrapolated point, the map's own point
    assert trace == [0.0]


def test_cv_with_k1_ends_in_a_bounded_number_of_iterations():
    g, _, _ = simulate(80, 600, 2, seed=9, missing=0.05)
    genotypes = Genotypes.from_counts(g)
    fit = Admixture(1, seed=1, progress=False, max_iter=100000).fit(genotypes)
    assert len(fit.loglik_trace_) == 3
    assert 0 < fit.cross_validate(genotypes, folds=5) < 2


def test_als_start_recovers_structure_and_beats_a_uniform_start():
    """ALS on the SVD factors: Q near the truth, and a higher ℓ than the uniform Q with overall frequencies (a
    sign error, a missing ½ or a missing f term in the normal equations would each fail this)."""
    g, Q_true, _ = simulate(300, 4000, 3, seed=8, fst=0.2)
    genotypes = Genotypes.from_counts(g)
    calls = PackedCalls.from_genotypes(genotypes)
    freqs = genotypes.allele_freqs()
    Q, P = svd_als(calls, freqs, 3, np.random.default_rng(1))
    assert Q.shape == (300, 3) and P.shape == (4000, 3)
    assert isinstance(Q, np.ndarray) and isinstance(P, np.ndarray)  # the CPU start never makes a tensor
    np.testing.assert_allclose(Q.sum(1), 1.0)
    assert aligned_rmse(Q, Q_true) < 0.08
    uniform = np.full((300, 3), 1 / 3)
    P_flat = np.repeat(freqs[:, None], 3, axis=1).clip(1e-5, 1 - 1e-5)
    assert calls.loglik(Q, P) > calls.loglik(uniform, P_flat)


def test_same_seed_and_threads_give_the_same_bits():
    g, _, _ = simulate(120, 1500, 3, seed=4, missing=0.05)
    genotypes = Genotypes.from_counts(g)
    runs = [Admixture(3, seed=7, threads=2, progress=False).fit(genotypes) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].Q_, runs[1].Q_)
    np.testing.assert_array_equal(runs[0].P_, runs[1].P_)


def test_both_starts_reach_the_same_optimum_on_clear_structure():
    g, Q_true, _ = simulate(200, 3000, 3, seed=12, fst=0.15)
    genotypes = Genotypes.from_counts(g)
    fits = {init: Admixture(3, seed=1, threads=1, progress=False, init=init).fit(genotypes)
            for init in ("als", "kmeans")}
    assert fits["als"].loglik_ == pytest.approx(fits["kmeans"].loglik_, abs=1e-6 * abs(fits["als"].loglik_))
    assert aligned_rmse(fits["als"].Q_, fits["kmeans"].Q_) < 0.005
    assert aligned_rmse(fits["als"].Q_, Q_true) < 0.05


def test_initial_estimates_refuses_nothing_supervised_uses_labels():
    g, _, _ = simulate(60, 500, 2, seed=2)
    calls = PackedCalls.from_genotypes(Genotypes.from_counts(g))
    labels = np.r_[np.zeros(20, np.int64), np.ones(20, np.int64), -np.ones(20, np.int64)]
    Q, _ = initial_estimates(calls, Genotypes.from_counts(g).allele_freqs(), 2, np.random.default_rng(0), labels)
    assert np.all(Q[:20, 0] > 0.99) and np.all(Q[20:40, 1] > 0.99)
    np.testing.assert_allclose(Q[40:], 0.5)


def test_torch_backend_reaches_the_same_maximum():
    """The torch path (what CUDA runs: EM steps on blocks decoded by torch, same accelerator) ends at the optimum
    the numba Newton path reaches, from the same start."""
    g, _, _ = simulate(150, 1200, 3, seed=21, missing=0.03)
    genotypes = Genotypes.from_counts(g)
    fast = PackedCalls.from_genotypes(genotypes)
    reference = PackedCalls.from_genotypes(genotypes, backend="torch", block=100)
    Q0, P0 = initial_estimates(fast, genotypes.allele_freqs(), 3, np.random.default_rng(2))
    Q1, P1, _ = quasi_newton(fast, Q0, P0, tol=1e-12, max_iter=500)
    Q2, P2, _ = quasi_newton(reference, Q0, P0, tol=1e-12, max_iter=5000)
    assert reference.loglik(Q2, P2) == pytest.approx(fast.loglik(Q1, P1), rel=1e-7)
    assert isinstance(Q1, np.ndarray) and isinstance(Q2, np.ndarray)  # returned as the start came
    assert aligned_rmse(Q1, Q2) < 2e-3


def test_newton_rows_equal_the_naive_newton_step():
    """Q rows: the simplex-constrained Newton step from the naive gradient and Hessian (bordered solve in NumPy);
    P rows: the box Newton step where it stays inside the box and raises the row's ℓ, else the row's EM update."""
    rng = np.random.default_rng(4)
    n, m, K = 40, 300, 3
    Q = rng.dirichlet(np.full(K, 5.0), size=n)
    P = rng.uniform(0.2, 0.8, size=(m, K))
    g = rng.binomial(2, Q @ P.T)
    calls = PackedCalls.from_counts(g.astype(float), np.ones_like(g, bool))
    h = Q @ P.T
    w1 = g / h - (2 - g) / (1 - h)
    w2 = g / h ** 2 + (2 - g) / (1 - h) ** 2
    step = calls._newton_q(Q, P, None)
    for i in range(n):
        H = (P * w2[i][:, None]).T @ P
        bordered = np.block([[H, np.ones((K, 1))], [np.ones((1, K)), np.zeros((1, 1))]])
        d = np.linalg.solve(bordered, np.r_[w1[i] @ P, 0.0])[:K]
        if np.all((Q[i] + d > 1e-5) & (Q[i] + d < 1 - 1e-5)):
            np.testing.assert_allclose(step["newton"][i], Q[i] + d, rtol=1e-9, atol=1e-12)
    P_next, _, _ = calls._newton_p(Q, P)
    checked = 0
    for j in range(m):
        H = (Q * w2[:, j][:, None]).T @ Q
        candidate = P[j] + np.linalg.solve(H, w1[:, j] @ Q)
        row_ll = lambda p: float((g[:, j] * np.log(Q @ p) + (2 - g[:, j]) * np.log(1 - Q @ p)).sum())
        if np.all((candidate > 1e-5) & (candidate < 1 - 1e-5)) and row_ll(candidate) >= row_ll(P[j]):
            np.testing.assert_allclose(P_next[j], candidate, rtol=1e-9, atol=1e-12)
            checked += 1
        elif np.all((candidate > 1e-5) & (candidate < 1 - 1e-5)):
            a, b = g[:, j] / h[:, j], (2 - g[:, j]) / (1 - h[:, j])
            A, B = P[j] * (a @ Q), (1 - P[j]) * (b @ Q)
            np.testing.assert_allclose(P_next[j], A / (A + B), rtol=1e-9)
    assert checked > m // 2


def test_projection_streams_the_cohort_without_a_dense_copy(medium):
    """project (variant matching, chunks of individuals cut from the packed bytes, the encoder, the refinement)
    allocates at most the packed calls plus one decoded block (2²¹ calls of float64): the alignment it replaced
    decoded the whole cohort to one byte per call (4 × the packed size)."""
    from genoae.ancestry.projection import project
    from genoae.io.model import match_variants

    genotypes, Q_true, _ = medium
    n, m = genotypes.n_samples, genotypes.n_variants
    fit = Admixture(3, seed=1, threads=2, progress=False, max_iter=3).fit(genotypes.subset(samples=np.arange(400)))
    shuffled = genotypes.subset(variants=np.random.default_rng(2).permutation(m))  # matching has work to do
    match = match_variants(shuffled.variants, genotypes.variants)
    project(fit.model_, shuffled, match, chunk=400, max_iter=2)  # kernels loaded before measuring
    tracemalloc.start()
    result = project(fit.model_, shuffled, match, chunk=400, max_iter=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bound = n * m // 4 + (1 << 21) * 8
    assert peak < bound, f"{peak:,} bytes traced, bound {bound:,}"
    assert len(result.iterations) == 10 and aligned_rmse(result.Q, Q_true) < 0.05


def test_a_certified_p_step_never_lowers_the_rows_loglik():
    """kernels._certified_ascent (the self-concordance bound that spares the P pass computing ℓ at most Newton
    steps) only certifies steps that raise the row's ℓ: checked against ℓ itself over random rows, directions and
    step sizes, from tiny steps (certified) to overshooting ones (refused)."""
    from genoae import kernels

    rng = np.random.default_rng(11)
    K, n = 3, 60
    certified = refused = 0
    for _ in range(300):
        Q = rng.dirichlet(np.full(K, 0.7), size=n)
        x = rng.uniform(0.01, 0.99, K)
        g = rng.binomial(2, np.clip(Q @ rng.uniform(0.0, 1.0, K), 0, 1))

        def row_loglik(p):
            h = Q @ p
            return float((g * np.log(h) + (2 - g) * np.log(1 - h)).sum())

        h = Q @ x
        G = (g / h - (2 - g) / (1 - h)) @ Q
        H = (Q * (g / h ** 2 + (2 - g) / (1 - h) ** 2)[:, None]).T @ Q
        newton = np.linalg.solve(H, G)
        for direction in (newton, rng.standard_normal(K)):
            for size in (1e-4, 1e-2, 0.3, 1.0, 3.0):
                candidate = np.clip(x + size * direction, 1e-5, 1 - 1e-5)
                if kernels._certified_ascent(x, candidate, G, H, K):
                    certified += 1
                    assert row_loglik(candidate) >= row_loglik(x) - 1e-9 * abs(row_loglik(x))
                elif row_loglik(candidate) < row_loglik(x):
                    refused += 1
    assert certified > 300 and refused > 100
