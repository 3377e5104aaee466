"""Admixed cohorts with known ancestry (genoae.simulate.admixed, vae sample --admixed): the pulse model's tracts,
the mosaics and their truth files, genetic maps, the command and its errors."""

import numpy as np
import pytest

from genoae.errors import InputError, UsageError
from genoae.genotypes import Variants
from genoae.simulate.admixed import (admixed_cohort, ancestry_segments, genetic_positions, parse_mixture,
                                     read_genetic_map)


class SourceModel:
    """A stand-in haplotype model whose population k always draws allele k % 2 at every SNP (population C: a
    random allele), so that an admixed haplotype shows where it copied each source."""

    mode_ = "haplotype"
    populations_ = ["A", "B", "C"]

    def __init__(self, variants):
        self.variants_ = variants

    def sample_rows(self, n_rows, population="", seed=0, temperature=1.0, device=None):
        if population == "C":
            return np.random.default_rng(seed).integers(0, 2, (n_rows, len(self.variants_))).astype(np.int8)
        return np.full((n_rows, len(self.variants_)), self.populations_.index(population) % 2, np.int8)


def two_chromosomes(per_chromosome=400, spacing=250_000, names=("1", "2")):
    chrom = np.repeat(list(names), per_chromosome)
    pos = np.tile(np.arange(1, per_chromosome + 1) * spacing, 2)
    ids = np.array([f"{c}:{p}" for c, p in zip(chrom, pos)])
    return Variants(chrom=chrom, pos=pos, id=ids, a1=np.full(len(pos), "A"), a2=np.full(len(pos), "G"))


def test_parse_mixture():
    assert parse_mixture("YRI=0.8,CEU=0.2") == {"YRI": 0.8, "CEU": 0.2}
    for bad, message in (("YRI=0.8", "two"), ("YRI=0.7,CEU=0.2", "sum to 0.9"), ("YRI=x,CEU=1", "POP=PROPORTION"),
                         ("YRI=0.5,YRI=0.5", "twice"), ("YRI=-0.2,CEU=1.2", "POP=PROPORTION")):
        with pytest.raises(UsageError, match=message):
            parse_mixture(bad)


def test_tract_lengths_follow_the_pulse_model():
    """Inside a chromosome (tracts not cut by its ends) a tract of population k is exponential with mean
    100 / (T (1 − m_k)) cM; the share of each population is m."""
    n = 40_000
    cm = np.linspace(0.0, 2000.0, n)                     # one 20-Morgan chromosome, 0.05 cM between variants
    chrom = np.full(n, "1")
    m, T = np.array([0.7, 0.3]), 10.0
    rng = np.random.default_rng(0)
    lengths = {0: [], 1: []}
    share = np.zeros(2)
    for _ in range(30):
        source = ancestry_segments(cm, chrom, m, T, rng)
        share += np.bincount(source, minlength=2) / n / 30
        cuts = np.flatnonzero(np.diff(source)) + 1
        for a, b in zip(cuts[:-1], cuts[1:]):            # internal tracts only
            lengths[int(source[a])].append(cm[b] - cm[a])
    np.testing.assert_allclose(share, m, atol=0.03)
    for k in (0, 1):
        expected = 100.0 / (T * (1 - m[k]))
        assert abs(np.mean(lengths[k]) / expected - 1) < 0.06, (k, np.mean(lengths[k]), expected)
        # exponential: the median is ln 2 of the mean
        assert abs(np.median(lengths[k]) / (expected * np.log(2)) - 1) < 0.1


def test_more_generations_make_shorter_tracts():
    cm = np.linspace(0, 300, 3000)
    chrom = np.full(3000, "1")
    rng = np.random.default_rng(1)
    switches = {T: np.mean([np.count_nonzero(np.diff(ancestry_segments(cm, chrom, np.array([0.5, 0.5]), T, rng)))
                            for _ in range(50)]) for T in (2.0, 20.0)}
    assert switches[20.0] > 5 * switches[2.0]


def test_mosaics_copy_their_sources_and_the_truth_files_say_so():
    variants = two_chromosomes()
    cohort = admixed_cohort(SourceModel(variants), {"A": 0.6, "B": 0.4}, 50, generations=6, seed=3)
    haplotypes = cohort.genotypes.haplotypes()                    # (50, 2, 800): 1 where B was copied
    np.testing.assert_allclose(cohort.Q[:, 1], haplotypes.reshape(50, -1).mean(axis=1))
    np.testing.assert_allclose(cohort.Q.sum(axis=1), 1.0)
    assert abs(cohort.Q[:, 0].mean() - 0.6) < 0.05
    assert list(cohort.genotypes.samples.iid[:2]) == ["admixed_1", "admixed_2"]
    # every segment is a maximal run of one source on one haplotype, within one chromosome
    covered = np.zeros((50, 2, 800), bool)
    for sample, haplotype, chrom, first, last, source in cohort.segments:
        person = int(sample.split("_")[1]) - 1
        assert set(variants.chrom[first:last + 1]) == {chrom}
        assert np.all(haplotypes[person, haplotype, first:last + 1] == source)
        covered[person, haplotype, first:last + 1] = True
    assert covered.all()
    # a fresh source haplotype for every admixed haplotype: C's random alleles differ between haplotypes
    mixed = admixed_cohort(SourceModel(variants), {"A": 0.5, "C": 0.5}, 20, generations=6, seed=4)
    rows = mixed.genotypes.haplotypes().reshape(40, -1)
    assert len({row.tobytes() for row in rows}) == 40


def test_dirichlet_spreads_the_individuals():
    variants = two_chromosomes()
    fixed = admixed_cohort(SourceModel(variants), {"A": 0.5, "B": 0.5}, 60, generations=6, seed=1)
    spread = admixed_cohort(SourceModel(variants), {"A": 0.5, "B": 0.5}, 60, generations=6, seed=1, dirichlet=1.0)
    assert spread.Q[:, 0].std() > 2 * fixed.Q[:, 0].std()


def test_models_that_cannot_make_mosaics_are_refused():
    model = SourceModel(two_chromosomes())
    with pytest.raises(UsageError, match="unknown population"):
        admixed_cohort(model, {"A": 0.5, "Z": 0.5}, 5)
    model.mode_ = "genotype"
    with pytest.raises(UsageError, match="haplotype model"):
        admixed_cohort(model, {"A": 0.5, "B": 0.5}, 5)
    unlabelled = SourceModel(two_chromosomes())
    unlabelled.populations_ = []
    with pytest.raises(UsageError, match="population labels"):
        admixed_cohort(unlabelled, {"A": 0.5, "B": 0.5}, 5)
    shuffled = two_chromosomes().subset(np.r_[0:10, 500:510, 10:20])
    with pytest.raises(UsageError, match="grouped by chromosome"):
        admixed_cohort(SourceModel(shuffled), {"A": 0.5, "B": 0.5}, 5)


def test_genetic_maps_in_their_usual_layouts(tmp_path):
    variants = two_chromosomes(per_chromosome=3, spacing=1_000_000)   # 1, 2, 3 Mb on chr 1 and 2
    plink = tmp_path / "x.map"
    plink.write_text("1 a 0.0 0\n1 17 10.0 4000000\n2 c 0.0 0\n2 d 2.0 4000000\n")  # IDs may be numbers
    np.testing.assert_allclose(genetic_positions(variants, read_genetic_map(plink)),
                               [2.5, 5.0, 7.5, 0.5, 1.0, 1.5])
    hapmap = tmp_path / "hapmap.txt"
    hapmap.write_text("Chromosome\tPosition(bp)\tRate(cM/Mb)\tMap(cM)\nchr1\t0\t2.0\t0.0\nchr1\t4000000\t0\t8.0\n"
                      "chr2\t0\t1\t0\nchr2\t4000000\t0\t4.0\n")
    np.testing.assert_allclose(genetic_positions(variants, read_genetic_map(hapmap)), [2, 4, 6, 1, 2, 3])
    three = tmp_path / "three.txt"
    three.write_text("1 0 0\n1 4000000 4\n")
    with pytest.raises(UsageError, match="no chromosome 2"):
        genetic_positions(variants, read_genetic_map(three))
    # no map: the variants' own cM where they have them, else 1 cM per Mb
    np.testing.assert_allclose(genetic_positions(variants), [1, 2, 3, 1, 2, 3])
    bad = tmp_path / "bad.txt"
    bad.write_text("1 0 0\n1 100 x\n")
    with pytest.raises(InputError, match="line 2"):
        read_genetic_map(bad)
    decreasing = tmp_path / "down.txt"
    decreasing.write_text("1 0 5\n1 100 1\n")
    with pytest.raises(InputError, match="decrease"):
        read_genetic_map(decreasing)


def test_vae_sample_admixed_writes_the_cohort_and_its_truth(tmp_path, capsys):
    from genoae.cli import main
    from genoae.genotypes import Genotypes, Samples
    from genoae.io import read_genotypes
    from genoae.simulate import SyntheticGenomes
    from tests.test_evaluate import mosaic_haplotypes
    from tests.test_vae import TINY

    rows = mosaic_haplotypes(160, n_variants=60, seed=2)
    variants = two_chromosomes(per_chromosome=30)
    training = Genotypes.from_haplotypes(rows.reshape(-1, 2, 60), Samples([f"i{k}" for k in range(80)]), variants)
    model = tmp_path / "model.pt"
    SyntheticGenomes(seed=0, **{**TINY, "epochs": 2}).fit(training, np.repeat(["AAA", "BBB"], 40)).save(model)
    out = tmp_path / "cohort.vcf.gz"
    with pytest.raises(SystemExit) as done:
        main(["vae", "sample", str(model), "--admixed", "AAA=0.7,BBB=0.3", "-n", "25", "--generations", "5",
              "-o", str(out), "--seed", "3"])
    assert done.value.code == 0
    assert "mean ancestry AAA" in capsys.readouterr().out
    cohort = read_genotypes(out)
    assert cohort.n_samples == 25 and cohort.phased and cohort.n_variants == 60
    Q = np.loadtxt(tmp_path / "cohort.true.Q")
    assert Q.shape == (25, 2) and np.allclose(Q.sum(axis=1), 1.0, atol=1e-5)
    lines = (tmp_path / "cohort.lai.tsv").read_text().splitlines()
    assert lines[1].split("\t") == ["#sample", "haplotype", "chrom", "spos", "epos", "sgpos", "egpos", "n_snps",
                                    "population"]
    snps = {}
    for line in lines[2:]:
        sample, haplotype, *_, n_snps, population = line.split("\t")
        snps[(sample, haplotype)] = snps.get((sample, haplotype), 0) + int(n_snps)
        assert population in ("AAA", "BBB")
    assert len(snps) == 50 and set(snps.values()) == {60}
    # the options of --admixed alone are refused
    with pytest.raises(SystemExit) as refused:
        main(["vae", "sample", str(model), "-n", "5", "--generations", "4", "-o", str(tmp_path / "y.vcf.gz")])
    assert refused.value.code == 2 and "go with --admixed" in capsys.readouterr().err
    # a population the model does not know: one line, exit 2, nothing written
    with pytest.raises(SystemExit) as refused:
        main(["vae", "sample", str(model), "--admixed", "AAA=0.5,ZZZ=0.5", "-n", "5", "-o", str(tmp_path / "x.vcf.gz")])
    assert refused.value.code == 2 and "unknown population" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob(".x.*"))


def test_a_one_chromosome_shapeit_map_serves_any_chromosome(tmp_path):
    shapeit = tmp_path / "chr.gmap"
    shapeit.write_text("pposition rrate gposition\n0 1.0 0.0\n4000000 1.0 12.0\n")
    variants = two_chromosomes(per_chromosome=3, spacing=1_000_000)
    np.testing.assert_allclose(genetic_positions(variants, read_genetic_map(shapeit)), [3, 6, 9, 3, 6, 9])


def test_models_of_two_chromosomes_are_sampled_as_one_genome(tmp_path, capsys):
    """One model per chromosome, sampled together (plain and admixed): an individual's rows come from every
    model under the same population; overlapping models are refused."""
    from genoae.cli import main
    from genoae.genotypes import Genotypes, Samples
    from genoae.io import read_genotypes
    from genoae.simulate import SyntheticGenomes
    from tests.test_evaluate import mosaic_haplotypes
    from tests.test_vae import TINY

    variants = two_chromosomes(per_chromosome=30)
    pops = np.repeat(["AAA", "BBB"], 40)
    paths = []
    for chrom, seed in (("1", 1), ("2", 2)):
        keep = np.flatnonzero(variants.chrom == chrom)
        rows = mosaic_haplotypes(160, n_variants=30, seed=seed)
        training = Genotypes.from_haplotypes(rows.reshape(-1, 2, 30), Samples([f"i{k}" for k in range(80)]),
                                             variants.subset(keep))
        paths.append(tmp_path / f"chr{chrom}.pt")
        SyntheticGenomes(seed=0, **{**TINY, "epochs": 2}).fit(training, pops).save(paths[-1])
    with pytest.raises(SystemExit) as done:
        main(["vae", "sample", *map(str, paths), "--pop", "AAA=5,BBB=3", "-o", str(tmp_path / "both.vcf.gz")])
    assert done.value.code == 0
    both = read_genotypes(tmp_path / "both.vcf.gz")
    assert both.n_samples == 8 and both.n_variants == 60
    assert list(dict.fromkeys(both.variants.chrom)) == ["1", "2"]
    with pytest.raises(SystemExit) as done:
        main(["vae", "sample", *map(str, paths), "--admixed", "AAA=0.5,BBB=0.5", "-n", "6", "-o",
              str(tmp_path / "mixed.bed")])
    assert done.value.code == 0
    segments = (tmp_path / "mixed.lai.tsv").read_text().splitlines()[2:]
    assert {line.split("\t")[2] for line in segments} == {"1", "2"}
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["vae", "sample", str(paths[0]), str(paths[0]), "-n", "4", "-o", str(tmp_path / "twice.vcf.gz")])
    assert refused.value.code == 2 and "an earlier model holds too" in capsys.readouterr().err


def test_segments_name_chromosomes_as_the_variants_do(tmp_path):
    from genoae.simulate.admixed import write_segments

    variants = two_chromosomes(per_chromosome=20, names=("chr1", "chr2"))
    cohort = admixed_cohort(SourceModel(variants), {"A": 0.5, "B": 0.5}, 3, generations=4, seed=1)
    write_segments(cohort, tmp_path / "x.lai.tsv")
    chromosomes = {line.split("\t")[2] for line in (tmp_path / "x.lai.tsv").read_text().splitlines()[2:]}
    assert chromosomes == {"chr1", "chr2"}
