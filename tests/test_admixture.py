"""Neural ADMIXTURE: accuracy against real ADMIXTURE output, the fast EM engine against the reference code,
edge cases, reproducibility, models on disk."""
import numpy as np
import pytest
import torch

from genoae.ancestry import Admixture, check_k
from genoae.compare import aligned_rmse as matched_rmse
from genoae.errors import UsageError
from genoae.genotypes import Genotypes
from genoae.likelihood import PackedCalls, em_update, loglik, quasi_newton

ADMIXTURE_K3_LOGLIK = -3799887.171935  # log3.out, "Loglikelihood:"


def simulate(n=60, m=400, K=3, seed=0, missing=0.0):
    """Pritchard-Stephens-Donnelly data: P ~ U(0.05, 0.95), Q ~ Dirichlet(0.5), g ~ Binomial(2, Q Pᵀ)."""
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.05, 0.95, size=(m, K))
    Q = rng.dirichlet(np.full(K, 0.5), size=n)
    g = rng.binomial(2, Q @ P.T).astype(np.int8)
    if missing:
        g[rng.random(g.shape) < missing] = -1
    return g, Q, P


# ------------------------------------------------------------------------------------------- the hard check
def test_hapmap3_k3_reaches_admixture(hapmap3_bed, admixture_output):
    """ℓ within 0.001 % of ADMIXTURE 1.3.0's and Q within RMSE 0.01 of its Q after matching clusters."""
    from genoae.io import read_genotypes

    geno = read_genotypes(hapmap3_bed)
    est = Admixture(3, seed=1, threads=1, progress=False).fit(geno)
    assert est.loglik_ >= ADMIXTURE_K3_LOGLIK * (1 + 1e-5)
    Q_ref = np.loadtxt(admixture_output / "hapmap3.3.Q")
    assert matched_rmse(est.Q_, Q_ref) <= 0.01
    # ℓ is reported on ADMIXTURE's scale: the shared likelihood code at the returned Q, P gives the same number
    counts = torch.from_numpy(geno.counts().astype(np.float64))
    assert loglik(counts, counts >= 0, torch.from_numpy(est.Q_), torch.from_numpy(est.P_)) == pytest.approx(
        est.loglik_, rel=1e-12)


# ------------------------------------------------------------------------------------------- the fast engine
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [1, 7, 64])
def test_call_matrix_matches_reference_em(seed, block):
    rng = np.random.default_rng(seed)
    n, m, K = 9, 31, 3
    g = rng.integers(0, 3, size=(n, m)).astype(float)
    observed = rng.random((n, m)) > 0.2
    observed[:, 3] = False  # a SNP with no observed call
    observed[4, :] = False  # an individual with no observed call
    Q = torch.from_numpy(rng.dirichlet(np.ones(K), size=n))
    P = torch.from_numpy(rng.uniform(0.05, 0.95, size=(m, K)))
    counts, obs = torch.from_numpy(g), torch.from_numpy(observed)
    calls = PackedCalls.from_counts(counts, obs, block=block)
    fixed = torch.zeros(n, dtype=torch.bool)
    fixed[0] = True
    Q_ref, P_ref = em_update(counts, obs, Q, P, q_fixed_rows=fixed)
    Q_fast, P_fast, ll = calls.em_step(Q, P, q_fixed_rows=fixed, with_loglik=True)
    np.testing.assert_allclose(Q_fast.numpy(), Q_ref.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(P_fast.numpy(), P_ref.numpy(), rtol=1e-12, atol=1e-14)
    assert ll == pytest.approx(loglik(counts, obs, Q, P), rel=1e-12)
    assert calls.loglik(Q, P) == pytest.approx(loglik(counts, obs, Q, P), rel=1e-12)
    # Q-only and P-only steps agree with the reference too
    Q_ref, _ = em_update(counts, obs, Q, P, update_p=False)
    Q_fast, P_same = calls.em_step(Q, P, update_p=False)
    np.testing.assert_allclose(Q_fast.numpy(), Q_ref.numpy(), rtol=1e-12)
    assert torch.equal(P_same, P.clamp(1e-5, 1 - 1e-5))


@pytest.fixture
def one_torch_thread():
    """Torch single-threaded for many tiny EM passes (OpenMP barriers on a loaded machine cost 10x), restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def squarem_problem(seed=3, n=30, m=200, K=3, start="half"):
    """Simulated calls with 5 % missing; a start with Q halfway between the truth and uniform (or random), random P."""
    g, Q_true, _ = simulate(n=n, m=m, K=K, seed=seed, missing=0.05)
    counts = torch.from_numpy(g.astype(np.float64))
    calls = PackedCalls.from_counts(counts.clamp_min(0), counts >= 0)
    rng = np.random.default_rng(seed + 100)
    P0 = torch.from_numpy(rng.uniform(0.2, 0.8, size=(m, K)))
    Q0 = 0.5 * Q_true + 0.5 / K if start == "half" else rng.dirichlet(np.ones(K), size=n)
    return g, calls, torch.from_numpy(Q0), P0


def naive_loglik(g, Q, P):
    """ℓ = Σ over observed calls (g ≥ 0) of g log h + (2 − g) log(1 − h), h = Q Pᵀ clamped, plain NumPy."""
    h = np.clip(np.asarray(Q) @ np.asarray(P).T, 1e-5, 1 - 1e-5)
    observed = g >= 0
    return float(np.where(observed, g * np.log(h) + (2 - g) * np.log1p(-h), 0.0).sum())


@pytest.mark.parametrize("step", ["newton", "em"])
def test_accelerator_reaches_the_plain_em_maximum(step, one_torch_thread):
    """The quasi-Newton accelerator (over Newton or EM steps) to a tight tolerance ends at plain EM's converged ℓ
    and Q (same start, missing calls)."""
    g, calls, Q0, P0 = squarem_problem()
    Qs, Ps, _ = quasi_newton(calls, Q0, P0, tol=1e-13, max_iter=3000, step=step)
    Qe, Pe, previous = Q0, P0, -np.inf
    for _ in range(20000):
        Qe, Pe, ll = calls.em_step(Qe, Pe, with_loglik=True)
        if ll - previous < 1e-7:
            break
        previous = ll
    else:
        pytest.fail("plain EM did not converge")
    ll_fast, ll_em = naive_loglik(g, Qs, Ps), naive_loglik(g, Qe, Pe)
    assert ll_fast == pytest.approx(ll_em, rel=1e-7)
    assert float(torch.sqrt(((Qs - Qe) ** 2).mean())) < 5e-4
    assert float(torch.sqrt(((Ps - Pe) ** 2).mean())) < 5e-4


@pytest.mark.parametrize("seed, start, max_iter, tol, step", [
    (3, "half", 3, 0.0, "newton"), (3, "random", 40, 0.0, "newton"), (1, "random", 41, 0.0, "em"),
    (3, "random", 60, 0.0, "em"), (3, "half", 2000, 1e-10, "newton"), (3, "half", 2000, 1e-10, "em")])
def test_accelerator_trace_is_the_loglik_of_its_points(seed, start, max_iter, tol, step, one_torch_thread):
    """trace[0] is ℓ of the start, the trace never falls, and the returned (Q, P) scores its last entry (naive ℓ)."""
    g, calls, Q0, P0 = squarem_problem(seed=seed, start=start)
    seen = []
    Q, P, trace = quasi_newton(calls, Q0, P0, tol=tol, max_iter=max_iter, step=step,
                               callback=lambda iteration, ll: seen.append(ll))
    ll_start = naive_loglik(g, Q0, P0)
    assert trace[0] == pytest.approx(ll_start, rel=1e-12)
    assert seen == trace[1:]
    assert all(b >= a for a, b in zip(trace, trace[1:]))
    ll_end = naive_loglik(g, Q, P)
    assert calls.loglik(Q, P) == pytest.approx(ll_end, rel=1e-12)
    assert ll_end == pytest.approx(trace[-1], rel=1e-12)
    assert ll_end > ll_start


@pytest.mark.parametrize("step, factor", [("newton", 0.1), ("em", 0.3)])
def test_accelerator_beats_plain_em_for_the_same_number_of_passes(step, factor, one_torch_thread):
    """With as many passes over the calls as the accelerator used (a Newton step counts as 2), plain EM is at
    least 10x (Newton steps) or 3x (EM steps) further from the maximum after 12 iterations."""
    g, calls, Q0, P0 = squarem_problem()
    Q_best, P_best, _ = quasi_newton(calls, Q0, P0, tol=1e-13, max_iter=3000)
    best = naive_loglik(g, Q_best, P_best)
    passes = [0]
    for name, cost in (("em_step", 1), ("newton_step", 2)):
        original = getattr(calls, name)

        def counting(*args, _original=original, _cost=cost, **kwargs):
            passes[0] += _cost
            return _original(*args, **kwargs)

        setattr(calls, name, counting)
    Q, P, _ = quasi_newton(calls, Q0, P0, tol=0.0, max_iter=12, step=step)
    del calls.em_step, calls.newton_step
    Qe, Pe = Q0, P0
    for _ in range(passes[0]):
        Qe, Pe = calls.em_step(Qe, Pe)
    assert best - naive_loglik(g, Q, P) < factor * (best - naive_loglik(g, Qe, Pe))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_newton_step_never_lowers_the_loglik(seed):
    """A Newton step per row overshoots where ℓ bends sharply; with the per-row fallback to EM no step lowers ℓ,
    from random starts far from the maximum (where the unguarded step did)."""
    g, calls, Q0, P0 = squarem_problem(seed=seed, start="random")
    Q, P = Q0, P0
    previous = calls.loglik(Q, P)
    for _ in range(6):
        Q, P = calls.newton_step(Q, P)
        current = calls.loglik(Q, P)
        assert current >= previous - 1e-9 * abs(previous)
        previous = current
    assert torch.allclose(Q.sum(1), torch.ones(len(Q), dtype=Q.dtype))
    assert float(P.min()) >= 1e-5 and float(P.max()) <= 1 - 1e-5


@pytest.mark.parametrize("relative_fall, fallback", [(1e-8, False), (1e-5, True)])
def test_a_row_that_falls_by_noise_keeps_its_newton_step(relative_fall, fallback, monkeypatch):
    """A Q row whose ℓ falls by ~1e-8 of it, while ℓ rises as a whole, keeps its Newton step and P is not redone
    (the step stays two passes); a row that overshoots (1e-5 of its ℓ) takes its EM step, and P is redone for it."""
    g, calls, Q0, P0 = squarem_problem(seed=1)
    Q64, P64 = Q0.numpy(), P0.numpy()
    q_step = calls._newton_q(Q64, P64, None)
    real_newton_p, p_passes = PackedCalls._newton_p, []

    def newton_p(self, Q, P):
        P_next, total, individual = real_newton_p(self, Q, P)
        if not p_passes:  # the first P pass scores the Q step: row 0 is made to have fallen
            individual = individual.copy()
            individual[0] = q_step["before"][0] * (1 + relative_fall)
        p_passes.append(Q.copy())
        return P_next, total, individual

    monkeypatch.setattr(PackedCalls, "_newton_p", newton_p)
    Q, P = calls.newton_step(Q0, P0)
    assert len(p_passes) == (2 if fallback else 1)
    expected_row0 = q_step["em"]()[0] if fallback else q_step["newton"][0]
    np.testing.assert_allclose(Q[0].numpy(), expected_row0, rtol=1e-12)
    np.testing.assert_allclose(Q[1:].numpy(), q_step["newton"][1:], rtol=1e-12)
    assert calls.loglik(Q, P) > calls.loglik(Q0, P0)


# ------------------------------------------------------------------------------------------- recovery, edge cases
def test_recovers_simulated_q_with_missing_data():
    g, Q_true, P_true = simulate(n=120, m=1500, K=3, seed=5, missing=0.05)
    est = Admixture(3, seed=0, threads=1, progress=False).fit(Genotypes.from_counts(g))
    assert matched_rmse(est.Q_, Q_true) < 0.06
    # the fit is at least as good as the truth on the data it saw
    counts = torch.from_numpy(g.astype(np.float64))
    assert est.loglik_ >= loglik(counts.clamp_min(0), counts >= 0, torch.from_numpy(Q_true),
                                 torch.from_numpy(P_true))


def test_k1_is_the_allele_frequency():
    """K = 1: P is each SNP's observed A2 frequency (clamped), the closed-form MLE, and ℓ its binomial ℓ."""
    g, _, _ = simulate(n=30, m=200, seed=1, missing=0.1)
    g[:, 0] = np.where(g[:, 0] < 0, -1, 0)   # monomorphic A1 among the observed calls
    g[:, 1] = np.where(g[:, 1] < 0, -1, 2)   # monomorphic A2
    est = Admixture(1, progress=False).fit(Genotypes.from_counts(g))
    observed = g >= 0
    a2 = np.where(observed, g, 0).sum(axis=0)          # A2 copies per SNP
    alleles = 2 * observed.sum(axis=0)                 # observed allele copies per SNP
    freq = np.clip(a2 / alleles, 1e-5, 1 - 1e-5)
    np.testing.assert_allclose(est.P_[:, 0], freq, rtol=1e-10, atol=1e-14)
    expected = float((a2 * np.log(freq) + (alleles - a2) * np.log(1 - freq)).sum())
    assert est.loglik_ == pytest.approx(expected, rel=1e-12)


def test_k_not_below_number_of_individuals_is_refused():
    g, _, _ = simulate(n=5, m=50)
    with pytest.raises(UsageError, match="not smaller than the number of individuals"):
        Admixture(5, progress=False).fit(Genotypes.from_counts(g))
    with pytest.raises(UsageError):
        check_k(0, 10)


def test_unobserved_and_monomorphic_snps():
    g, _, _ = simulate(n=50, m=300, seed=2)
    g[:, 10] = -1   # no observed call
    g[:, 11] = 0    # monomorphic A1
    g[:, 12] = 2    # monomorphic A2
    g[:25, 13] = -1  # half observed
    est = Admixture(2, seed=0, progress=False).fit(Genotypes.from_counts(g))
    assert np.isfinite(est.loglik_) and np.isfinite(est.Q_).all() and np.isfinite(est.P_).all()
    np.testing.assert_allclose(est.P_[11], 1e-5, atol=1e-7)
    np.testing.assert_allclose(est.P_[12], 1 - 1e-5, atol=1e-7)


def test_same_seed_same_q_bit_for_bit():
    g, _, _ = simulate(n=50, m=400, seed=4, missing=0.02)
    geno = Genotypes.from_counts(g)
    first = Admixture(3, seed=7, threads=1, progress=False).fit(geno)
    second = Admixture(3, seed=7, threads=1, progress=False).fit(geno)
    assert np.array_equal(first.Q_, second.Q_)
    assert np.array_equal(first.P_, second.P_)



@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_agree():
    g, _, _ = simulate(n=80, m=600, seed=6, missing=0.02)
    geno = Genotypes.from_counts(g)
    cpu = Admixture(3, seed=3, device="cpu", precision="float64", progress=False).fit(geno)
    gpu = Admixture(3, seed=3, device="cuda", precision="float64", progress=False).fit(geno)
    assert gpu.loglik_ == pytest.approx(cpu.loglik_, rel=1e-6)
    assert matched_rmse(gpu.Q_, cpu.Q_) < 1e-3


def test_cv_error_on_admixture_scale(hapmap3_bed):
    """K=1 has one answer (P = allele frequencies), so its CV error depends only on the definition: ADMIXTURE 1.3.0
    logged 0.55248 for hapmap3 (5 folds); ours must agree to the third decimal (the folds differ)."""
    from genoae.io import read_genotypes

    geno = read_genotypes(hapmap3_bed)
    est = Admixture(1, seed=1, threads=1, progress=False).fit(geno)
    assert est.cross_validate(geno, folds=5) == pytest.approx(0.55248, abs=1e-3)


def test_float32_refinement_agrees_with_float64():
    g, _, _ = simulate(n=60, m=500, seed=8, missing=0.01)
    geno = Genotypes.from_counts(g)
    f64 = Admixture(3, seed=2, threads=1, precision="float64", progress=False).fit(geno)
    f32 = Admixture(3, seed=2, threads=1, precision="float32", progress=False).fit(geno)
    assert f32.loglik_ == pytest.approx(f64.loglik_, rel=1e-6)
    assert matched_rmse(f32.Q_, f64.Q_) < 5e-3


def test_em_pass_split_over_threads_matches_the_single_thread_pass():
    """With several kernel threads the CPU EM pass splits the SNPs into one fixed range per thread; the update and
    ℓ must be the single-threaded ones up to float rounding (float64 here), missing calls included, and a repeat
    with the same thread count must give the same bits."""
    from genoae import device

    g, Q, P = simulate(n=60, m=900, K=3, seed=11, missing=0.05)
    calls = PackedCalls.from_genotypes(Genotypes.from_counts(g))
    Q0, P0 = torch.from_numpy(Q), torch.from_numpy(P)
    previous, previous_torch = device.kernel_threads(), torch.get_num_threads()
    try:
        device.set_threads(1)
        single = calls.em_step(Q0, P0, with_loglik=True)
        single_loglik = calls.loglik(Q0, P0)
        device.set_threads(2)
        assert len(calls._bounds()) == 3
        split = calls.em_step(Q0, P0, with_loglik=True)
        again = calls.em_step(Q0, P0, with_loglik=True)
        split_loglik = calls.loglik(Q0, P0)
    finally:
        device.set_threads(previous)
        torch.set_num_threads(previous_torch)
    np.testing.assert_allclose(split[0].numpy(), single[0].numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(split[1].numpy(), single[1].numpy(), rtol=1e-12, atol=1e-14)
    assert split[2] == pytest.approx(single[2], rel=1e-12)
    assert split_loglik == pytest.approx(single_loglik, rel=1e-12) and single_loglik == pytest.approx(single[2])
    assert torch.equal(again[0], split[0]) and torch.equal(again[1], split[1]) and again[2] == split[2]


def test_kernel_tasks_run_once_each_on_the_threads_and_raise_their_errors():
    """The CPU kernels' passes run one task per range on a thread pool: every task exactly once, an error in any
    task reaches the caller, and a pass started inside a pool thread runs its tasks there (no deadlock)."""
    import threading

    from genoae import device, kernels

    previous, previous_torch = device.kernel_threads(), torch.get_num_threads()
    seen, threads = [], set()

    def task(out, index):
        threads.add(threading.get_ident())
        out.append(index)

    def failing(index):
        if index == 2:
            raise ValueError("task 2")

    def nested(out, index):
        kernels._each(task, 3, out)

    try:
        device.set_threads(2)
        kernels._each(task, 5, seen)
        assert sorted(seen) == [0, 1, 2, 3, 4]
        assert threading.get_ident() not in threads
        with pytest.raises(ValueError, match="task 2"):
            kernels._each(failing, 4)
        inner = []
        kernels._each(nested, 2, inner)
        assert sorted(inner) == [0, 0, 1, 1, 2, 2]
        device.set_threads(1)
        threads.clear()
        kernels._each(task, 3, [])
        assert threads == {threading.get_ident()}
    finally:
        device.set_threads(previous)
        torch.set_num_threads(previous_torch)


def test_several_starts_keep_the_highest_refined_loglik():
    """--starts N: N starts, each drawn afresh and refined; the fit kept is the one with the highest ℓ, the first
    start is the single-start run's, and every start is reported."""
    g, _, _ = simulate(n=50, m=300, K=4, seed=5, missing=0.02)
    genotypes = Genotypes.from_counts(g)
    single = Admixture(4, seed=3, progress=False).fit(genotypes)
    several = Admixture(4, seed=3, progress=False, starts=3).fit(genotypes)
    report = several.report_
    assert len(report.starts) == 3 and len(single.report_.starts) == 1
    refined = [value for _, value, _ in report.starts]
    assert report.best_start == int(np.argmax(refined))
    assert several.loglik_ == pytest.approx(max(refined), rel=1e-12)
    assert several.loglik_ >= single.loglik_ - 1e-6 * abs(single.loglik_)
    assert report.starts[0][1] == pytest.approx(single.loglik_, rel=1e-12)  # the first start is one-start's
    assert len({round(start, 3) for start, _, _ in report.starts}) == 3      # three different starts
    kept = PackedCalls.from_genotypes(genotypes).loglik(torch.from_numpy(several.Q_), torch.from_numpy(several.P_))
    assert kept == pytest.approx(several.loglik_, rel=1e-9)


def test_later_starts_take_the_rough_svd(monkeypatch):
    """The first start's SVD iterates until its values settle (a one-start run's); the later starts take a fixed
    ROUGH_SVD_ITERATIONS power iterations, so that they differ where the settled SVD would land them together."""
    import genoae.ancestry.start as start

    g, _, _ = simulate(n=40, m=200, K=3, seed=2)
    settings = []
    real = start.svd_als

    def recording(calls, freqs, K, rng, **options):
        settings.append(options)
        return real(calls, freqs, K, rng, **options)

    monkeypatch.setattr(start, "svd_als", recording)
    Admixture(3, seed=1, progress=False, starts=3).fit(Genotypes.from_counts(g))
    assert settings[0] == {}
    assert settings[1:] == [{"n_iter": start.ROUGH_SVD_ITERATIONS, "svd_tol": 0.0}] * 2


def test_no_start_is_refused():
    g, _, _ = simulate(n=30, m=100, K=2, seed=1)
    with pytest.raises(UsageError, match="starts 0"):
        Admixture(2, progress=False, starts=0).fit(Genotypes.from_counts(g))


def test_starts_are_refused_for_supervised_runs():
    g, _, _ = simulate(n=30, m=100, K=2, seed=1)
    labels = np.array(["a", "b"] * 15)
    with pytest.raises(UsageError, match="supervised"):
        Admixture(2, progress=False, starts=2).fit(Genotypes.from_counts(g), populations=labels)


def test_starts_are_refused_with_a_reference_fraction():
    g, _, _ = simulate(n=40, m=100, K=2, seed=1)
    with pytest.raises(UsageError, match="reference-fraction"):
        Admixture(2, progress=False, starts=2, reference_fraction=0.5).fit(Genotypes.from_counts(g))


def test_kernel_pool_works_in_a_forked_child():
    """A child forked after the kernels have run inherits the pool object without its threads: it must start its
    own instead of waiting forever on the parent's."""
    import os
    import signal
    import time

    from genoae import device, kernels

    previous, previous_torch = device.kernel_threads(), torch.get_num_threads()
    try:
        device.set_threads(2)
        for _ in range(5):  # both workers started and idle: a child reusing them would wait forever
            kernels._each(lambda out, task: time.sleep(0.01), 2, [])
        child = os.fork()
        if child == 0:  # the child: a hang ends by SIGALRM, an error by exit code 3
            signal.alarm(30)
            try:
                done = []
                kernels._each(lambda out, task: out.append(task), 2, done)
                os._exit(0 if sorted(done) == [0, 1] else 3)
            except BaseException:
                os._exit(3)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        device.set_threads(previous)
        torch.set_num_threads(previous_torch)
