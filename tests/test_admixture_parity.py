"""ADMIXTURE's habits: -j, -s, -C/-c, --cv / --cv=N, -B[N] bootstrap standard errors, F_ST in the log."""
import numpy as np
import pytest

from genoae.cli import main
from genoae.commands.admix import run_admix
from genoae.genotypes import Genotypes
from genoae.io.plink import write_plink
from genoae.io.qp import read_matrix_text, read_q


def admixed(n=60, m=400, seed=0):
    rng = np.random.default_rng(seed)
    freqs = rng.beta(0.5, 0.5, (m, 2)).clip(0.02, 0.98)
    q = rng.dirichlet([0.5, 0.5], n)
    return Genotypes.from_counts(rng.binomial(2, q @ freqs.T).astype(np.int8))


def test_admixture_flags_are_accepted(tmp_path, capsys):
    write_plink(admixed(), tmp_path / "d")
    with pytest.raises(SystemExit) as stop:
        main(["admix", str(tmp_path / "d.bed"), "-k", "2", "-j", "1", "-s", "7", "-C", "1e-4", "-c", "1e-3",
              "--cv=3", "-B4", "-o", str(tmp_path / "r"), "--quiet"])
    out, err = capsys.readouterr()
    assert stop.value.code == 0, err
    assert "CV error (K=2)" in out
    for kind in ("Q", "Q_se", "Q_bias"):
        assert read_matrix_text(tmp_path / f"r.2.{kind}", kind).shape == (60, 2)
    log = (tmp_path / "r.log").read_text()
    assert "Fst divergences between estimated populations" in log and "Pop1\t0." in log
    assert "bootstrap: 4 moving-block replicates" in log
    with pytest.raises(SystemExit) as stop:  # bare --cv is ADMIXTURE's 5 folds
        main(["admix", str(tmp_path / "d.bed"), "-k", "2", "--cv", "-o", str(tmp_path / "s"), "--quiet",
              ])
    assert stop.value.code == 0
    assert "CV error (K=2)" in capsys.readouterr().out


def test_absolute_tolerance_is_the_per_call_one_times_the_calls(tmp_path):
    write_plink(admixed(), tmp_path / "d")
    quiet = dict(progress=False, echo=lambda line: None)
    absolute = run_admix(tmp_path / "d.bed", 2, prefix=tmp_path / "a", loglik_tol=60 * 400 * 1e-7, **quiet)
    run_admix(tmp_path / "d.bed", 2, prefix=tmp_path / "b", tol=1e-7, **quiet)
    assert absolute.estimators[2].tol == pytest.approx(1e-7)
    np.testing.assert_array_equal(read_q(tmp_path / "a.2.Q"), read_q(tmp_path / "b.2.Q"))


def test_bootstrap_errors_shrink_with_more_snps_and_repeat_with_the_seed(tmp_path):
    from genoae.ancestry import Admixture

    few, many = admixed(m=300, seed=1), admixed(m=3000, seed=1)
    se = {}
    for name, geno in (("few", few), ("many", many)):
        fit = Admixture(2, progress=False, seed=3).fit(geno)
        q_se, q_bias = fit.bootstrap(geno, 8)
        assert q_se.shape == q_bias.shape == (60, 2) and np.all(q_se >= 0)
        np.testing.assert_allclose(q_se[:, 0], q_se[:, 1], atol=1e-6)  # K = 2: the columns move together
        se[name] = np.median(q_se[:, 0])
        again, _ = fit.bootstrap(geno, 8)
        np.testing.assert_array_equal(again, q_se)
    # 10x the SNPs: standard errors about sqrt(10) = 3.2x smaller
    assert 2.0 < se["few"] / se["many"] < 5.0, se


def test_bootstrap_standard_errors_follow_admixture_on_hapmap3(hapmap3_bed, admixture_output, tmp_path):
    """ADMIXTURE 1.3.0's hapmap3.3.Q_se (its -B, 200 replicates) against genoae's -B 50, clusters aligned."""
    from genoae.compare.align import align_columns

    run = run_admix(hapmap3_bed, 3, prefix=tmp_path / "h", bootstrap=50, progress=False,
                    echo=lambda line: None)
    theirs_q = read_q(admixture_output / "hapmap3.3.Q")
    theirs_se = read_matrix_text(admixture_output / "hapmap3.3.Q_se", "Q_se")
    order = align_columns(theirs_q, run.estimators[3].Q_)
    ours_se = read_matrix_text(tmp_path / "h.3.Q_se", "Q_se")[:, order]
    r = np.corrcoef(ours_se.ravel(), theirs_se.ravel())[0, 1]
    ratio = np.median(ours_se / np.maximum(theirs_se, 1e-9))
    assert r >= 0.9, f"correlation {r:.3f} with ADMIXTURE's Q_se"
    assert 0.5 < ratio < 2.0, f"median ratio {ratio:.2f} to ADMIXTURE's Q_se"
