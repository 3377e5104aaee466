"""The fast blocked likelihood and EM code against a naive NumPy version, and against ADMIXTURE's own numbers."""
import numpy as np
import pytest
import torch

from genoae.likelihood import FREQ_MAX, FREQ_MIN, PackedCalls, em_update, loglik

Q_MIN = 1e-5  # ADMIXTURE keeps every Q entry in [1e-5, 1 - 1e-5] (project_simplex_rows)


def naive_loglik(g, observed, Q, P):
    total = 0.0
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            if observed[i, j]:
                h = min(max(float(Q[i] @ P[j]), FREQ_MIN), FREQ_MAX)
                total += g[i, j] * np.log(h) + (2 - g[i, j]) * np.log(1 - h)
    return total


def naive_em(g, observed, Q, P, update_q=True, update_p=True, fixed=None):
    """ADMIXTURE's multiplicative EM step written out call by call, with the clamps genoae applies.

    a = g / h, b = (2 − g) / (1 − h) over observed calls (h = Q_i·P_j clamped to [1e-5, 1 − 1e-5]);
    Q_ik ← Q_ik Σ_j [a_ij P_jk + b_ij (1 − P_jk)] / (2 n_i), then clamped to [1e-5, 1 − 1e-5] and renormalised
    (rows without calls: only the clamp and renormalisation; fixed rows: kept as given);
    P_jk ← A / (A + B), A = P_jk Σ_i a_ij Q_ik, B = (1 − P_jk) Σ_i b_ij Q_ik (SNPs without calls keep P_j),
    then clamped to [1e-5, 1 − 1e-5].
    """
    n, m = g.shape
    K = Q.shape[1]
    h = np.empty((n, m))
    for i in range(n):
        for j in range(m):
            h[i, j] = min(max(Q[i] @ P[j], FREQ_MIN), FREQ_MAX)
    if update_q:
        Q_new = np.array(Q, dtype=float)
        for i in range(n):
            n_obs = 0
            total = np.zeros(K)
            for j in range(m):
                if observed[i, j]:
                    n_obs += 1
                    a, b = g[i, j] / h[i, j], (2 - g[i, j]) / (1 - h[i, j])
                    for k in range(K):
                        total[k] += a * P[j, k] + b * (1 - P[j, k])
            if n_obs:
                Q_new[i] = Q[i] * total / (2 * n_obs)
            Q_new[i] = np.clip(Q_new[i], Q_MIN, 1 - Q_MIN)
            Q_new[i] /= Q_new[i].sum()
            if fixed is not None and fixed[i]:
                Q_new[i] = Q[i]
    else:
        Q_new = np.array(Q, dtype=float)
    P_new = np.array(P, dtype=float)
    if update_p:
        for j in range(m):
            for k in range(K):
                A = B = 0.0
                for i in range(n):
                    if observed[i, j]:
                        A += g[i, j] / h[i, j] * Q[i, k]
                        B += (2 - g[i, j]) / (1 - h[i, j]) * Q[i, k]
                A, B = P[j, k] * A, (1 - P[j, k]) * B
                if A + B > 0:
                    P_new[j, k] = A / (A + B)
    return Q_new, np.clip(P_new, FREQ_MIN, FREQ_MAX)


def em_inputs(seed, n=8, m=25, K=3):
    """Random calls with ~20 % missing, plus the cases where the clamps and the masking matter."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, size=(n, m)).astype(float)
    observed = rng.random((n, m)) > 0.2
    g[~observed] = rng.choice([-1.0, 7.0, np.nan], size=int((~observed).sum()))  # junk where missing
    g[observed[:, 0], 0] = 0.0      # monomorphic A1: P → 0, clamped to 1e-5
    g[observed[:, 1], 1] = 2.0      # monomorphic A2: P → 1, clamped to 1 − 1e-5
    observed[:, 2] = False          # a SNP without calls keeps its P
    observed[n - 1, :] = False      # an individual without calls
    Q = rng.dirichlet(np.ones(K), size=n)
    Q[1] = [1 - 2e-8, 1e-8, 1e-8]   # the Q clamp bites at both ends
    P = rng.uniform(0.05, 0.95, size=(m, K))
    P[3] = 0.0                      # h = 0 is clamped to 1e-5 (g log h stays finite)
    P[4] = 1.0                      # h = 1 is clamped to 1 − 1e-5
    return g, observed, Q, P


def as_counts(g, observed):
    """Counts and mask for the sample-major functions (the junk where missing is passed on as it is)."""
    return torch.from_numpy(g), torch.from_numpy(observed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_matches_naive(seed):
    """loglik and em_update (blocked) equal the naive call-by-call ℓ and EM step on random calls."""
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


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [1, 4, 64])
@pytest.mark.parametrize("flags", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_em_step_matches_naive_admixture_update(seed, block, flags, backend):
    """em_update and PackedCalls.em_step equal the naive EM step (clamps, missing calls, fixed rows included)."""
    update_q, update_p = flags
    g, observed, Q, P = em_inputs(seed)
    fixed = np.zeros(len(Q), bool)
    fixed[2] = True
    Q_ref, P_ref = naive_em(g, observed, Q, P, update_q, update_p, fixed)
    ll_ref = naive_loglik(g, observed, Q, P)
    counts, obs = as_counts(g, observed)
    Qt, Pt, fixed_t = torch.from_numpy(Q), torch.from_numpy(P), torch.from_numpy(fixed)

    Q_ref_em, P_ref_em = em_update(counts, obs, Qt, Pt, update_q, update_p, block=block, q_fixed_rows=fixed_t)
    np.testing.assert_allclose(Q_ref_em.numpy(), Q_ref, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(P_ref_em.numpy(), P_ref, rtol=1e-11, atol=1e-15)
    assert loglik(counts, obs, Qt, Pt, block=block) == pytest.approx(ll_ref, rel=1e-12)

    calls = PackedCalls.from_counts(counts, obs, block=block, backend=backend)
    Q_fast, P_fast, ll = calls.em_step(Qt, Pt, update_q, update_p, q_fixed_rows=fixed_t, with_loglik=True)
    np.testing.assert_allclose(Q_fast.numpy(), Q_ref, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(P_fast.numpy(), P_ref, rtol=1e-11, atol=1e-15)
    assert ll == pytest.approx(ll_ref, rel=1e-12)
    assert calls.loglik(Qt, Pt) == pytest.approx(ll_ref, rel=1e-12)


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


def naive_individual_loglik(g, observed, Q, P):
    return np.array([naive_loglik(g[i:i + 1], observed[i:i + 1], Q[i:i + 1], P) for i in range(g.shape[0])])


def test_candidate_logliks_score_each_candidate_row_as_the_naive_loglik():
    rng = np.random.default_rng(4)
    n, m, K = 13, 70, 3
    P = rng.uniform(0.01, 0.99, size=(m, K))
    g = rng.integers(0, 3, size=(n, m))
    observed = rng.random((n, m)) > 0.1
    candidates = rng.dirichlet(np.ones(K), size=(4, n))
    calls = PackedCalls.from_counts(g, observed)
    scores = calls.candidate_logliks(candidates, P)
    for c in range(4):
        np.testing.assert_allclose(scores[c], naive_individual_loglik(g, observed, candidates[c], P), rtol=1e-10)


def test_certified_ascent_certifies_only_steps_that_raise_the_rows_loglik():
    """The self-concordance bound: every step it certifies raises that row's naive ℓ; it certifies the Newton
    steps of rows near their maximum and refuses long steps (here: to random points of the simplex) that lower ℓ."""
    from genoae.likelihood import certified_ascent, refine_rows

    rng = np.random.default_rng(11)
    n, m, K = 80, 400, 4
    P = rng.uniform(0.01, 0.99, size=(m, K))
    P[: m // 8, 1:] = 1e-5  # alleles private to population 0: steps in q_0 bend ℓ sharply
    Q_true = rng.dirichlet(np.full(K, 0.5), size=n)
    g = rng.binomial(2, np.clip(Q_true @ P.T, 1e-5, 1 - 1e-5))
    observed = rng.random((n, m)) > 0.05
    calls = PackedCalls.from_counts(g, observed)
    maximum, _ = refine_rows(calls, np.full((n, K), 1.0 / K), P, tol=1e-12)
    start = 0.9 * maximum + 0.1 * rng.dirichlet(np.ones(K), size=n)
    step = calls._newton_q(start, P, None)
    far = rng.dirichlet(np.ones(K), size=n)
    before = naive_individual_loglik(g, observed, start, P)
    certified = 0
    for target in (step["newton"], start + 0.3 * (step["newton"] - start), far):
        sure, decrement = certified_ascent(start, target, step["grad"], step["hess"])
        after = naive_individual_loglik(g, observed, target, P)
        assert np.all(after[sure] >= before[sure] - 1e-9 * np.abs(before[sure]))
        assert np.all(decrement[sure] < 1.0)
        certified += sure.sum()
        if target is far:
            assert (after < before).sum() > n // 4 and not sure[after < before].any()
    assert certified >= n  # most short steps are certified: the bound is not vacuous


def test_row_refinement_reaches_the_maximum_with_p_fixed():
    """refine_rows (each row: Newton at three lengths or EM, the best kept) ends where plain EM with P fixed ends
    after many steps, never lowers ℓ, and from an encoder-like start near the answer needs fewer iterations."""
    from genoae.likelihood import quasi_newton, refine_rows

    rng = np.random.default_rng(6)
    n, m, K = 60, 2000, 3
    P = rng.uniform(0.01, 0.99, size=(m, K))
    P[: m // 10, 1:] = 1e-5  # alleles private to population 0: ℓ is log-like in q_0 there
    Q = rng.dirichlet(np.full(K, 0.5), size=n)
    g = rng.binomial(2, np.clip(Q @ P.T, 1e-5, 1 - 1e-5))
    observed = rng.random((n, m)) > 0.05
    calls = PackedCalls.from_counts(g, observed)
    Pt = torch.from_numpy(P)
    uniform = torch.full((n, K), 1 / K, dtype=torch.float64)
    Q_rows, trace = refine_rows(calls, uniform, Pt, tol=1e-12)
    Q_em, _, _ = quasi_newton(calls, uniform, Pt, tol=1e-14, max_iter=5000, update_p=False, step="em")
    assert calls.loglik(Q_rows, Pt) == pytest.approx(calls.loglik(Q_em, Pt), abs=1e-6)
    assert np.abs(Q_rows.numpy() - Q_em.numpy()).max() < 1e-4
    assert all(b >= a - 1e-9 for a, b in zip(trace, trace[1:]))
    near = torch.from_numpy(0.9 * Q_rows.numpy() + 0.1 / K)
    scored = []
    real_scoring = PackedCalls.candidate_logliks

    def recording_scoring(self, candidates, P):
        scored.append(self.n_samples)
        return real_scoring(self, candidates, P)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PackedCalls, "candidate_logliks", recording_scoring)
        Q_near, trace_near = refine_rows(calls, near, Pt, tol=1e-12)
    assert len(trace_near) < len(trace)
    assert np.abs(Q_near.numpy() - Q_em.numpy()).max() < 1e-4
    # near the maximum the bound certifies most Newton steps: over 6 iterations, the scoring passes took fewer
    # rows than two passes over the cohort (94 rows here; 262 with every step scored)
    assert sum(scored) < 2 * n < n * (len(trace_near) - 1)


def test_row_refinement_never_lowers_loglik_when_p_holds_zeros():
    """A P from a file may hold 0 (the passes then clamp h, and the self-concordance bound is for the unclamped ℓ):
    every step is then scored, as before the bound was used, and no row's ℓ falls from one iteration to the next."""
    from genoae.likelihood import refine_rows

    rng = np.random.default_rng(2)
    n, m, K = 40, 400, 3
    P = rng.uniform(0.01, 0.99, size=(m, K))
    Q = rng.dirichlet(np.full(K, 0.5), size=n)
    g = rng.binomial(2, np.clip(Q @ P.T, 1e-5, 1 - 1e-5))
    P[rng.random((m, K)) < 0.4] = 0.0
    observed = rng.random((n, m)) > 0.05
    calls = PackedCalls.from_counts(g, observed)
    for start in (np.full((n, K), 1.0 / K), rng.dirichlet(np.ones(K), size=n)):
        Q_rows, trace = refine_rows(calls, start, P, tol=1e-12)
        assert all(b >= a - 1e-9 for a, b in zip(trace, trace[1:]))
        assert trace[-1] == pytest.approx(calls.loglik(Q_rows, P), abs=1e-6)
        for max_iter in (6, 7):  # row by row as well: each row's ℓ only rises from one iteration to the next
            before, _ = refine_rows(calls, start, P, tol=1e-12, max_iter=max_iter - 1)
            after, _ = refine_rows(calls, start, P, tol=1e-12, max_iter=max_iter)
            assert np.all(naive_individual_loglik(g, observed, after, P)
                          >= naive_individual_loglik(g, observed, before, P) - 1e-9)


def test_row_refinement_walks_only_the_rows_that_still_move(monkeypatch):
    """Once at most half the rows still gain their share of tol, the passes walk only their calls (packed apart,
    a smaller cohort each time): same end as refining every row at every iteration, and the trace's last ℓ is
    that of the Q returned (the rows left behind keep their ℓ)."""
    import genoae.likelihood as likelihood

    rng = np.random.default_rng(8)
    n, m, K = 120, 1500, 3
    P = rng.uniform(0.01, 0.99, size=(m, K))
    Q = rng.dirichlet(np.full(K, 0.5), size=n)
    Q[: n // 2] = rng.dirichlet(np.full(K, 20.0), size=n // 2)  # admixed rows converge later than the rest
    g = rng.binomial(2, np.clip(Q @ P.T, 1e-5, 1 - 1e-5))
    observed = rng.random((n, m)) > 0.05
    calls = PackedCalls.from_counts(g, observed)
    Pt = torch.from_numpy(P)
    start = torch.from_numpy(np.clip(Q + rng.normal(0, 0.1, Q.shape), 0.01, None))
    start = start / start.sum(dim=1, keepdim=True)
    widths = []
    real_take = likelihood.take_samples

    def recording_take(packed, n_samples, index, **options):
        widths.append((n_samples, len(index)))
        return real_take(packed, n_samples, index, **options)

    monkeypatch.setattr(likelihood, "take_samples", recording_take)
    Q_active, trace = likelihood.refine_rows(calls, start, Pt, tol=1e-10)
    # packed apart at least twice (from the second subset on, its rows are not the cohort's), each time from the
    # cohort or a subset made before (the rows still moving, or the rows a bound left to score), never growing
    sources = [before for before, _ in widths]
    assert len(set(sources)) >= 2 and sources[0] == n and all(after <= before / 2 for before, after in widths)
    assert all(source == n or source in {after for _, after in widths} for source in sources)
    assert sources == sorted(sources, reverse=True)
    assert trace[0] == pytest.approx(calls.loglik(start, Pt), abs=1e-6)
    assert all(b >= a - 1e-9 for a, b in zip(trace, trace[1:]))
    assert trace[-1] == pytest.approx(calls.loglik(Q_active, Pt), abs=1e-6)
    packed_apart = len(widths)
    Q_full, trace_full = likelihood.refine_rows(calls, start, Pt, tol=1e-10, repack=0.0)
    assert len(widths) == packed_apart and np.abs(Q_active.numpy() - Q_full.numpy()).max() < 1e-5
    assert trace[-1] == pytest.approx(trace_full[-1], abs=1e-3)
    # calls with held-out folds stay whole (a call's fold hashes its individual's index)
    likelihood.refine_rows(calls.training(5, 0, 1), start, Pt, tol=1e-10)
    assert len(widths) == packed_apart
