"""genoae.compare: run readers and P conventions, alignment, metrics, the report, and the CLI.

The reference numbers are ADMIXTURE 1.3.0's own: its logged likelihoods for hapmap3 K = 1..5 are parsed from the
log files, not copied here.
"""
import itertools
import json
import re
import warnings

import numpy as np
import pytest

from genoae.io.labels import read_labels
from genoae.compare import (OrientationWarning, align_columns, align_q_series, align_runs, compare_runs,
                            detect_source, fst_admixture, fst_hudson, fst_matrix, jensen_shannon, load_run_specs,
                            load_runs, q_metrics, run_logliks)
from genoae.errors import InputError, UsageError


def logged_loglik(log_path) -> float:
    """The final ``Loglikelihood:`` line of an ADMIXTURE log (the per-iteration lines carry a tab before it)."""
    text = log_path.read_text()
    return float(re.findall(r"^Loglikelihood: (\S+)$", text, flags=re.M)[-1])


def logged_fst(log_path) -> np.ndarray:
    """The lower triangle of ADMIXTURE's 'Fst divergences between estimated populations' table."""
    lines = log_path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Fst divergences")) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("Pop"):
            break
        rows.append([float(x) for x in line.split()[1:]])
    K = len(rows)
    out = np.zeros((K, K))
    for a, row in enumerate(rows):
        for b, value in enumerate(row):
            out[a, b] = out[b, a] = value
    return out


@pytest.fixture(scope="module")
def hapmap3():
    from conftest import shared_path
    from genoae.io import read_genotypes

    return read_genotypes(shared_path("hapmap3_admixture", "hapmap3.bed"))


@pytest.fixture(scope="module")
def admixture_dir():
    from conftest import shared_path

    return shared_path("hapmap3_admixture", "admixture_1.3.0_output")


# ---------------------------------------------------------------- likelihood through the compare API
def test_loglik_of_admixture_runs_equals_its_log(hapmap3, admixture_dir):
    runs = load_runs(admixture_dir / "hapmap3")
    assert [run.K for run in runs] == [1, 2, 3, 4, 5]
    assert all(run.source == "admixture" and run.p_allele == "A2" for run in runs)
    comparison = compare_runs(hapmap3, runs)
    for run, ll in zip(runs, comparison.logliks):
        expected = logged_loglik(admixture_dir / f"log{run.K}.out")
        assert ll == pytest.approx(expected, rel=1e-6), run.name
        # and the flipped orientation is far worse, so the check has something to detect
        orientation = comparison.orientations[comparison.runs.index(run)]
        assert orientation.loglik_flipped < 1.2 * expected


# ---------------------------------------------------------------- alignment
def test_permuted_copy_gives_zero_rmse_and_the_permutation(hapmap3, admixture_dir, tmp_path):
    Q = np.loadtxt(admixture_dir / "hapmap3.3.Q")
    P = np.loadtxt(admixture_dir / "hapmap3.3.P")
    sigma = np.array([2, 0, 1])
    np.savetxt(tmp_path / "perm.3.Q", Q[:, sigma], fmt="%.6f")
    np.savetxt(tmp_path / "perm.3.P", P[:, sigma], fmt="%.6f")
    runs = load_run_specs([admixture_dir / "hapmap3.3.Q", tmp_path / "perm.3.Q"])
    comparison = compare_runs(hapmap3, runs)
    (pair,) = comparison.pairs
    assert pair["rmse"] == 0.0 and pair["mean_abs_diff"] == 0.0 and pair["jsd_mean"] == pytest.approx(0, abs=1e-12)
    assert pair["pearson_r"] == pytest.approx([1, 1, 1])
    # file column sigma[c] of the copy is column c of the original: the matching is sigma's inverse
    assert pair["b_columns_matching_a"] == np.argsort(sigma).tolist()
    np.testing.assert_array_equal(runs[1].Q_aligned, runs[0].Q_aligned)
    np.testing.assert_array_equal(runs[1].P_aligned, runs[0].P_aligned)
    assert comparison.logliks[0] == pytest.approx(comparison.logliks[1], rel=1e-12)


def test_every_permutation_is_found():
    rng = np.random.default_rng(3)
    Q = rng.dirichlet(np.full(4, 0.3), size=200)
    for sigma in itertools.permutations(range(4)):
        sigma = np.array(sigma)
        order = align_columns(Q, Q[:, sigma])
        np.testing.assert_array_equal(Q[:, sigma][:, order], Q)


def test_noisy_permuted_copy_aligns_and_scores():
    rng = np.random.default_rng(0)
    Q = rng.dirichlet(np.full(3, 0.5), size=500)
    noisy = np.clip(Q + rng.normal(0, 0.02, Q.shape), 1e-6, None)
    noisy /= noisy.sum(axis=1, keepdims=True)
    order = align_columns(Q, noisy[:, [1, 2, 0]])
    np.testing.assert_array_equal(order, [2, 0, 1])
    metrics = q_metrics(Q, noisy)
    assert 0.005 < metrics["rmse"] < 0.03
    assert metrics["mean_abs_diff"] < metrics["rmse"]
    assert all(r > 0.98 for r in metrics["pearson_r"])


def test_chain_k_to_k_plus_one_keeps_populations_on_one_column(admixture_dir):
    labels = read_labels(admixture_dir.parent / "hapmap3.pops", n_samples=324)
    Qs = [np.loadtxt(admixture_dir / f"hapmap3.{K}.Q") for K in (2, 3, 4, 5)]
    aligned = align_q_series(Qs)
    for pop in ("CEU", "YRI"):
        columns = {int(np.argmax(Q[labels == pop].mean(axis=0))) for Q in aligned}
        assert len(columns) == 1, pop  # CEU (YRI) is dominated by the same column at every K
    # the MEX-specific cluster appears at K=3 and keeps its column at K=4 and 5
    mex = [int(np.argmax(Q[labels == "MEX"].mean(axis=0))) for Q in aligned[1:]]
    assert len(set(mex)) == 1 and mex[0] == 2
    # new clusters take the last column: every aligned K keeps K-1's columns first
    for small, large in zip(aligned, aligned[1:]):
        k = small.shape[1]
        assert q_metrics(small, large[:, :k] / large[:, :k].sum(axis=1, keepdims=True))["rmse"] < 0.15


def test_align_runs_within_and_across_k():
    rng = np.random.default_rng(1)
    Q3 = rng.dirichlet(np.full(3, 0.4), size=100)
    from genoae.compare import Run

    a = Run("a", "genoae", Q3)
    b = Run("b", "genoae", Q3[:, [2, 1, 0]])
    Q4 = np.column_stack([Q3[:, 0] * 0.5, Q3[:, 1], Q3[:, 2], Q3[:, 0] * 0.5])[:, [3, 2, 0, 1]]
    c = Run("c", "genoae", Q4)
    align_runs([a, b, c])
    np.testing.assert_array_equal(b.Q_aligned, a.Q_aligned)
    assert c.Q_aligned[:, 1:3] == pytest.approx(Q3[:, 1:3])


# ---------------------------------------------------------------- P conventions and sources
def _write_neural(folder, admixture_dir, K=3):
    """Neural ADMIXTURE-style output: P = A1 frequency, NumPy's default full-precision text.  A softmax never sits
    exactly on ADMIXTURE's (and ADAMIXTURE's) Q floor of 1e-5, so those values move off it by a relative 1e-6."""
    Q = np.loadtxt(admixture_dir / f"hapmap3.{K}.Q")
    Q = np.where(np.isclose(Q, 1e-5, rtol=1e-9, atol=0), 1.000001e-5, Q)
    P = np.loadtxt(admixture_dir / f"hapmap3.{K}.P")
    np.savetxt(folder / f"neural.{K}.Q", Q, delimiter=" ")
    np.savetxt(folder / f"neural.{K}.P", 1.0 - P, delimiter=" ")
    return folder / f"neural.{K}.Q"


def test_neural_admixture_p_is_read_as_a1(hapmap3, admixture_dir, tmp_path):
    q_path = _write_neural(tmp_path, admixture_dir)
    assert detect_source(q_path) == "neural-admixture"
    (run,) = load_runs(q_path)
    assert run.source == "neural-admixture" and run.p_allele == "A1"
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrientationWarning)  # a warning here would fail the test
        comparison = compare_runs(hapmap3, [run])
    assert comparison.logliks[0] == pytest.approx(logged_loglik(admixture_dir / "log3.out"), rel=1e-6)


def test_wrong_convention_is_detected(hapmap3, admixture_dir, tmp_path):
    q_path = _write_neural(tmp_path, admixture_dir)
    (run,) = load_runs(q_path, p_convention="A2")  # wrong: this P holds A1 frequencies
    with pytest.warns(OrientationWarning, match="far better as A1"):
        comparison = compare_runs(hapmap3, [run])
    orientation = comparison.orientations[0]
    assert orientation.flipped_fits_better
    assert orientation.loglik_flipped == pytest.approx(logged_loglik(admixture_dir / "log3.out"), rel=1e-6)
    assert any("--p-convention A1" in note for note in run.notes)
    assert comparison.to_dict()["runs"][0]["orientation_ok"] is False
    # the same file declared as ADMIXTURE output (A2 by default) is caught the same way
    (as_admixture,) = load_runs(q_path, source="admixture")
    with pytest.warns(OrientationWarning):
        compare_runs(hapmap3, [as_admixture])


def test_auto_convention_picks_the_better_orientation(hapmap3, admixture_dir, tmp_path):
    q_path = _write_neural(tmp_path, admixture_dir)
    (run,) = load_runs(q_path, source="admixture", p_convention="auto")
    comparison = compare_runs(hapmap3, [run])
    assert run.p_allele == "A1"
    assert comparison.logliks[0] == pytest.approx(logged_loglik(admixture_dir / "log3.out"), rel=1e-6)


def test_fastmixture_names_and_a1_convention(hapmap3, admixture_dir, tmp_path):
    for K in (2, 3):
        np.savetxt(tmp_path / f"fm.K{K}.s7.Q", np.loadtxt(admixture_dir / f"hapmap3.{K}.Q"), fmt="%.6f")
        np.savetxt(tmp_path / f"fm.K{K}.s7.P", 1 - np.loadtxt(admixture_dir / f"hapmap3.{K}.P"), fmt="%.6f")
    assert detect_source(tmp_path / "fm.K3.s7.Q") == "fastmixture"
    runs = load_runs(tmp_path / "fm")
    assert [(r.K, r.source, r.p_allele) for r in runs] == [(2, "fastmixture", "A1"), (3, "fastmixture", "A1")]
    logliks = run_logliks(hapmap3, runs)
    for run, orientation in zip(runs, logliks):
        assert not orientation.flipped_fits_better
        assert orientation.loglik == pytest.approx(logged_loglik(admixture_dir / f"log{run.K}.out"), rel=1e-6)


def test_genoae_h5_runs(hapmap3, admixture_dir, tmp_path):
    from genoae.io.results import AdmixtureResult, write_results_h5

    results = [AdmixtureResult(Q=np.loadtxt(admixture_dir / f"hapmap3.{K}.Q", ndmin=2),
                               P=np.loadtxt(admixture_dir / f"hapmap3.{K}.P", ndmin=2)) for K in (2, 3)]
    h5 = write_results_h5(tmp_path / "g.h5", results, hapmap3.samples, hapmap3.variants, source="test")
    runs = load_runs(h5, ks=[3])
    assert [(r.K, r.source) for r in runs] == [(3, "genoae")]
    assert runs[0].samples[0] == hapmap3.samples.iid[0]
    comparison = compare_runs(hapmap3, load_runs(h5) + load_runs(admixture_dir / "hapmap3.3.Q"))
    assert comparison.logliks[1] == pytest.approx(logged_loglik(admixture_dir / "log3.out"), rel=1e-6)
    (pair,) = comparison.pairs
    assert pair["rmse"] == 0.0


def test_h5_rows_are_matched_to_the_genotypes_by_iid(hapmap3, admixture_dir, tmp_path):
    from genoae.io.results import AdmixtureResult, write_results_h5

    Q = np.loadtxt(admixture_dir / "hapmap3.3.Q")
    P = np.loadtxt(admixture_dir / "hapmap3.3.P")
    shuffle = np.random.default_rng(5).permutation(hapmap3.n_samples)
    h5 = write_results_h5(tmp_path / "shuffled.h5", [AdmixtureResult(Q=Q[shuffle], P=P)],
                          hapmap3.samples.subset(shuffle), hapmap3.variants)
    (run,) = load_runs(h5)
    comparison = compare_runs(hapmap3, [run] + load_runs(admixture_dir / "hapmap3.3.Q"))
    assert comparison.pairs[0]["rmse"] == 0.0
    assert comparison.logliks[0] == pytest.approx(logged_loglik(admixture_dir / "log3.out"), rel=1e-6)
    others = hapmap3.samples.subset(np.arange(hapmap3.n_samples))
    others.iid = np.array([f"X{i}" for i in range(hapmap3.n_samples)])
    h5 = write_results_h5(tmp_path / "strangers.h5", [AdmixtureResult(Q=Q, P=P)], others, hapmap3.variants)
    with pytest.raises(InputError, match="individuals differ"):
        compare_runs(hapmap3, load_runs(h5))


def test_bad_runs_are_input_errors(hapmap3, admixture_dir, tmp_path):
    with pytest.raises(InputError, match="no such run"):
        load_runs(tmp_path / "nothing")
    np.savetxt(tmp_path / "short.3.Q", np.loadtxt(admixture_dir / "hapmap3.3.Q")[:10], fmt="%.6f")
    with pytest.raises(InputError, match="10 rows but the genotypes have 324"):
        run_logliks(hapmap3, load_runs(tmp_path / "short.3.Q"))
    np.savetxt(tmp_path / "bad.3.Q", np.loadtxt(admixture_dir / "hapmap3.3.Q"), fmt="%.6f")
    np.savetxt(tmp_path / "bad.3.P", np.loadtxt(admixture_dir / "hapmap3.3.P")[:, :2], fmt="%.6f")
    with pytest.raises(InputError, match="2 columns"):
        load_runs(tmp_path / "bad.3.Q")
    with pytest.raises(UsageError):
        load_runs(admixture_dir / "hapmap3.3.Q", source="structure")
    with pytest.raises(UsageError):
        load_runs(admixture_dir / "hapmap3.3.Q", p_convention="ALT")


def test_q_only_run_has_no_likelihood(hapmap3, admixture_dir, tmp_path):
    np.savetxt(tmp_path / "qonly.3.Q", np.loadtxt(admixture_dir / "hapmap3.3.Q"), fmt="%.6f")
    comparison = compare_runs(hapmap3, load_runs(tmp_path / "qonly.3.Q"))
    assert np.isnan(comparison.logliks[0]) and comparison.fst[0] is None
    assert json.loads(json.dumps(comparison.to_dict()))["runs"][0]["loglik"] is None


# ---------------------------------------------------------------- metrics
def test_jensen_shannon_bounds():
    a = np.array([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]])
    b = np.array([[0.0, 1.0], [0.5, 0.5], [0.8, 0.2]])
    jsd = jensen_shannon(a, b)
    assert jsd[0] == pytest.approx(1.0)
    assert jsd[1] == pytest.approx(0.0)
    m = np.array([0.5, 0.5])
    kl = lambda x: np.sum(x * np.log2(x / m))
    assert jsd[2] == pytest.approx(0.5 * kl(a[2]) + 0.5 * kl(b[2]))


def test_q_metrics_by_hand():
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    b = np.array([[0.8, 0.2], [0.2, 0.8], [0.7, 0.3]])
    m = q_metrics(a, b)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 * 2 + 0.04 * 2) / 6))
    assert m["mean_abs_diff"] == pytest.approx((0.1 * 2 + 0.2 * 2) / 6)
    assert m["pearson_r"][0] == pytest.approx(np.corrcoef(a[:, 0], b[:, 0])[0, 1])


def test_fst_hudson_by_hand():
    p1 = np.array([0.1, 0.5, 0.9])
    p2 = np.array([0.3, 0.5, 0.2])
    num = 0.04 + 0 + 0.49
    den = (0.1 * 0.7 + 0.3 * 0.9) + (0.25 + 0.25) + (0.9 * 0.8 + 0.2 * 0.1)
    assert fst_hudson(p1, p2) == pytest.approx(num / den)
    assert fst_hudson(p1, p1) == 0.0


def test_fst_reproduces_admixture_logs(admixture_dir):
    """ADMIXTURE prints F_ST to 3 decimals: every one of the 20 values for K = 2..5 is reproduced to rounding."""
    for K in (2, 3, 4, 5):
        ours = fst_matrix(np.loadtxt(admixture_dir / f"hapmap3.{K}.P"))
        theirs = logged_fst(admixture_dir / f"log{K}.out")
        lower = np.tril_indices(K, -1)
        assert np.abs(ours[lower] - theirs[lower]).max() <= 0.0005 + 1e-9, K
        # Hudson's ratio of averages is a different, larger number: the test can tell the two apart
        hudson = fst_matrix(np.loadtxt(admixture_dir / f"hapmap3.{K}.P"), method="hudson")
        assert (hudson[lower] - theirs[lower]).max() > 0.01


def test_fst_admixture_by_hand():
    p1 = np.array([0.1, 0.5, 0.9, 0.3])
    p2 = np.array([0.3, 0.5, 0.2, 0.3])
    mean = (p1 + p2) / 2
    w = mean * (1 - mean)
    theta = (p1 - p2) ** 2 / (p1 * (1 - p2) + p2 * (1 - p1))
    assert fst_admixture(p1, p2) == pytest.approx((w * theta).sum() / w.sum())
    assert fst_admixture(p1, p1) == 0.0


# ---------------------------------------------------------------- labels and -k
def test_read_labels_formats(hapmap3, tmp_path):
    from conftest import shared_path

    folder = shared_path("hapmap3_admixture")
    table = read_labels(folder / "labels.tsv", hapmap3.samples)
    per_line = read_labels(folder / "hapmap3.pops", n_samples=hapmap3.n_samples)
    np.testing.assert_array_equal(table, per_line)
    assert dict(zip(*np.unique(table, return_counts=True))) == {"ASW": 49, "CEU": 112, "MEX": 50, "YRI": 113}
    # IDs in another order are matched by IID; unknown individuals get ""
    (tmp_path / "few.tsv").write_text("sample\tpop\n" + f"{hapmap3.samples.iid[5]}\tX\n")
    few = read_labels(tmp_path / "few.tsv", hapmap3.samples, missing_ok=True)
    assert few[5] == "X" and (few[:5] == "").all()
    with pytest.raises(InputError, match="324"):
        read_labels(folder / "hapmap3.pops", n_samples=324 + 1)
    (tmp_path / "bad.pops").write_text("A\nB C\n")
    with pytest.raises(InputError, match="line 2"):
        read_labels(tmp_path / "bad.pops")



# ---------------------------------------------------------------- report and CLI
def test_cli_compare_writes_report(admixture_dir, tmp_path, capsys):
    from genoae.cli import main

    folder = admixture_dir.parent
    q_path = _write_neural(tmp_path, admixture_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(folder / "hapmap3.bed"), str(admixture_dir / "hapmap3"), str(q_path), "-k", "2-3",
              "--pop", str(folder / "labels.tsv"), "-o", str(tmp_path / "report"), "--device", "cpu"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "hapmap3.3" in out and "neural.3" in out and "-3,799,887.1" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["K"] for r in report["runs"]] == [2, 3, 3]
    assert report["runs"][2]["source"] == "neural-admixture"
    (pair,) = report["pairs"]
    assert pair["rmse"] < 1e-6 and pair["K"] == 3
    assert set(report["runs"][1]["mean_q_by_population"]) == {"ASW", "CEU", "MEX", "YRI"}
    assert (tmp_path / "report_structure.png").stat().st_size > 10_000
    assert (tmp_path / "report_pca.png").stat().st_size > 10_000


def test_cli_compare_warns_on_wrong_convention(admixture_dir, tmp_path, capsys):
    from genoae.cli import main

    q_path = _write_neural(tmp_path, admixture_dir)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(admixture_dir.parent / "hapmap3.bed"), str(q_path), "--p-convention", "A2",
              "--device", "cpu"])
    assert exit_info.value.code == 0
    err = capsys.readouterr().err
    assert "genoae: warning:" in err and "far better as A1" in err


def test_cli_compare_bad_input_is_one_line(admixture_dir, tmp_path, capsys):
    from genoae.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(admixture_dir.parent / "hapmap3.bed"), str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such run" in err


@pytest.mark.cuda
def test_loglik_on_cuda_matches_logs(hapmap3, admixture_dir):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    runs = load_runs(admixture_dir / "hapmap3", ks=[2, 3])
    for run, orientation in zip(runs, run_logliks(hapmap3, runs, device="cuda")):
        assert orientation.loglik == pytest.approx(logged_loglik(admixture_dir / f"log{run.K}.out"), rel=1e-6)


def test_adamixture_outputs_are_recognised_with_their_autosome_only_p(hapmap3, admixture_dir, tmp_path):
    """ADAMIXTURE 1.8.8 writes NAME.K.Q/P with NumPy's %.18e, Q clipped to [1e-5, 1 - 1e-5], P as A1 frequencies
    of the autosomal variants only (its default --chrom_mode autosomes): the same ADMIXTURE fit written that way
    must be read as ADAMIXTURE's and scored on the autosomes."""
    from genoae.io.qp import read_p, read_q

    Q = np.clip(read_q(admixture_dir / "hapmap3.3.Q"), 1e-5, 1 - 1e-5)
    Q /= Q.sum(axis=1, keepdims=True)
    Q[0] = [1e-5, 0.5, 0.5 - 1e-5]  # a value on the clip, as ADAMIXTURE's files have
    P = read_p(admixture_dir / "hapmap3.3.P")
    autosomal = np.isin(hapmap3.variants.chrom, [str(c) for c in range(1, 23)])
    np.savetxt(tmp_path / "hm.3.Q", Q)
    np.savetxt(tmp_path / "hm.3.P", 1.0 - P[autosomal])
    assert detect_source(tmp_path / "hm.3.Q") == "adamixture"
    (run,) = load_runs(tmp_path / "hm.3.Q")
    assert run.p_allele == "A1"
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrientationWarning)  # A1 is right: no orientation warning
        comparison = compare_runs(hapmap3, [run])
    np.testing.assert_array_equal(run.variant_rows, np.flatnonzero(autosomal))
    assert any("autosomal variants" in note for note in run.notes)
    # ℓ over the autosomes only: below the whole-genome ADMIXTURE ℓ by the non-autosomal calls' share
    whole = logged_loglik(admixture_dir / "log3.out")
    assert whole < comparison.logliks[0] < 0.9 * whole
    np.savetxt(tmp_path / "nn.3.Q", np.full((324, 3), 1 / 3) + np.linspace(0, 1e-3, 324)[:, None] * [1, -1, 0])
    assert detect_source(tmp_path / "nn.3.Q") == "neural-admixture"  # no value on the clip


def test_fastmixture2_runs_are_read_as_fastmixture_and_named_from_their_log(tmp_path):
    from genoae.compare import load_runs

    np.savetxt(tmp_path / "hm.K2.s1.Q", np.full((4, 2), 0.5), fmt="%.10f")
    (tmp_path / "hm.K2.s1.log").write_text("fastmixture2 v2.0.4\nTime: ...\n")
    (run,) = load_runs(tmp_path / "hm.K2.s1.Q")
    assert run.source == "fastmixture" and run.p_allele == "A1"
    assert "written by fastmixture2 v2.0.4" in run.notes
