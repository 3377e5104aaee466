"""`genoae project --p-file`: Q under any program's P, variants matched to the reference, no network."""
import numpy as np
import pytest

from genoae.cli import main
from genoae.commands.project import run_project_p
from genoae.errors import InputError
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.io import write_genotypes
from genoae.io.plink import write_plink
from genoae.io.qp import read_q


def quiet(line):
    pass


def test_admixture_p_reproduces_admixture_q_on_hapmap3(hapmap3_bed, admixture_output, tmp_path):
    Q, loglik, report = run_project_p(hapmap3_bed, admixture_output / "hapmap3.3.P", hapmap3_bed.with_suffix(".bim"),
                                      tmp_path / "h", echo=quiet)
    theirs = read_q(admixture_output / "hapmap3.3.Q")
    assert np.sqrt(np.mean((Q - theirs) ** 2)) <= 0.002
    assert report.matched == 13928 and loglik == pytest.approx(-3799887.171935, rel=1e-7)  # ADMIXTURE's log
    assert read_q(tmp_path / "h.3.Q").shape == (324, 3)


def simulated(tmp_path, n=80, m=1500, K=3, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.beta(0.6, 0.6, (m, K)).clip(0.02, 0.98)
    Q = rng.dirichlet([0.4] * K, n)
    counts = rng.binomial(2, Q @ P.T).astype(np.int8)
    variants = Variants(chrom=np.array(["1"] * m), pos=np.arange(1, m + 1) * 100,
                        id=np.array([f"rs{j}" for j in range(m)]), a1=np.array(["A"] * m), a2=np.array(["G"] * m))
    samples = Samples(np.array([f"i{i}" for i in range(n)]))
    write_plink(Genotypes.from_counts(counts, samples=samples, variants=variants), tmp_path / "ref")
    np.savetxt(tmp_path / "ref.3.P", P, fmt="%.6f")
    return counts, variants, samples, P, Q


def test_swapped_reordered_and_missing_variants_give_the_same_q(tmp_path):
    counts, variants, samples, P, _ = simulated(tmp_path)
    plain, _, _ = run_project_p(tmp_path / "ref.bed", tmp_path / "ref.3.P", tmp_path / "ref.bim", tmp_path / "a",
                                echo=quiet)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(variants))[:1400]  # 100 variants absent from the cohort, the rest shuffled
    swap = rng.random(len(order)) < 0.3  # and 30 % with A1/A2 swapped, their counts flipped
    cohort = counts[:, order].copy()
    cohort[:, swap] = 2 - cohort[:, swap]
    a1 = np.where(swap, variants.a2[order], variants.a1[order])
    a2 = np.where(swap, variants.a1[order], variants.a2[order])
    moved = Variants(chrom=variants.chrom[order], pos=variants.pos[order], id=variants.id[order], a1=a1, a2=a2)
    write_genotypes(Genotypes.from_counts(cohort, samples=samples, variants=moved), tmp_path / "cohort.vcf")
    Q, _, report = run_project_p(tmp_path / "cohort.vcf", tmp_path / "ref.3.P", tmp_path / "ref.bim",
                                 tmp_path / "b", echo=quiet)
    assert report.matched == 1400 and report.flipped == int(swap.sum()) and report.absent == 100
    assert np.sqrt(np.mean((Q - plain) ** 2)) < 0.02  # 100 fewer SNPs of 1,500: a little noise, no bias


def test_fastmixture_style_p_is_read_as_a1(tmp_path):
    _, _, _, P, _ = simulated(tmp_path)
    np.savetxt(tmp_path / "fm.K3.s1.P", 1.0 - P, fmt="%.10f")  # fastmixture's name and A1 frequencies
    a2, _, _ = run_project_p(tmp_path / "ref.bed", tmp_path / "ref.3.P", tmp_path / "ref.bim", tmp_path / "a",
                             echo=quiet)
    a1, _, _ = run_project_p(tmp_path / "ref.bed", tmp_path / "fm.K3.s1.P", tmp_path / "ref.bim", tmp_path / "b",
                             echo=quiet)
    np.testing.assert_allclose(a1, a2, atol=1e-6)


def test_no_shared_variant_and_bad_arguments_are_refused(tmp_path, capsys):
    counts, variants, samples, _, _ = simulated(tmp_path)
    other = Variants(chrom=np.array(["2"] * len(variants)), pos=variants.pos, id=np.array(
        [f"x{j}" for j in range(len(variants))]), a1=variants.a1, a2=variants.a2)
    write_plink(Genotypes.from_counts(counts, samples=samples, variants=other), tmp_path / "elsewhere")
    with pytest.raises(InputError, match="no variant of the data matches the reference"):
        run_project_p(tmp_path / "elsewhere.bed", tmp_path / "ref.3.P", tmp_path / "ref.bim", tmp_path / "c",
                      echo=quiet)
    assert not list(tmp_path.glob("c.*"))
    np.savetxt(tmp_path / "short.3.P", np.full((10, 3), 0.5))
    with pytest.raises(InputError, match="P has 10 rows but the reference"):
        run_project_p(tmp_path / "ref.bed", tmp_path / "short.3.P", tmp_path / "ref.bim", tmp_path / "d", echo=quiet)
    for argv in (["project", str(tmp_path / "ref.bed"), "-o", str(tmp_path / "e")],
                 ["project", str(tmp_path / "ref.bed"), "--p-file", str(tmp_path / "ref.3.P"), "-o",
                  str(tmp_path / "e")]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
