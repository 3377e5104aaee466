"""PLINK reader/writer: each fault class of ../shared/data/plink_edge_cases, and known values."""
import shutil
import subprocess

import numpy as np
import pytest

from genoae.errors import InputError
from genoae.io import read_genotypes, write_genotypes
from genoae.io.plink import plink_paths, read_plink, write_plink
from tests.conftest import shared_path


def edge(name):
    return shared_path("plink_edge_cases", name)


def assemble(tmp_path, bed=None, bim=None, fam=None, prefix="x"):
    """Copy chosen edge-case files into tmp_path as PREFIX.bed/.bim/.fam."""
    for source, ext in ((bed, ".bed"), (bim, ".bim"), (fam, ".fam")):
        if source is not None:
            shutil.copy(edge(source), tmp_path / f"{prefix}{ext}")
    return tmp_path / f"{prefix}.bed"


def test_some_missing_equals_expected_a1_counts():
    geno = read_genotypes(edge("some_missing.bed"))
    expected_a1 = np.load(edge("some_missing.val.npy"))  # counts A1 (.bim column 5), NaN missing
    expected_a2 = np.where(np.isnan(expected_a1), -1, 2 - expected_a1).astype(np.int8)
    np.testing.assert_array_equal(geno.counts(), expected_a2)
    assert 0.2 < (geno.counts() < 0).mean() < 0.25  # README: 21.8% missing


def test_individual_major_mode0_matches_plink19_recode():
    # plink1.9 --bfile smallmode0 --recode A (A1 counts): iid1 1 2 0, iid2 0 0 1, iid3 NA NA 2, iid4 0 2 0
    geno = read_genotypes(edge("smallmode0.bed"))
    expected_a1 = np.array([[1, 2, 0], [0, 0, 1], [-1, -1, 2], [0, 2, 0]])
    np.testing.assert_array_equal(geno.counts(), np.where(expected_a1 < 0, -1, 2 - expected_a1))


def test_small_and_sparse_shapes_and_tables():
    geno = read_genotypes(edge("small.bed"))
    assert (geno.n_samples, geno.n_variants) == (3, 4)
    assert list(geno.variants.chrom) == ["1", "1", "5", "Y"] and list(geno.samples.sex) == [1, 2, 0]
    sparse = read_genotypes(edge("sparse.fam"))  # any companion names the set
    assert (sparse.counts() == 2).sum() == 192 and (sparse.counts() < 0).sum() == 0


@pytest.mark.parametrize("files, fault", [
    (dict(bed="badfile.bed"), "magic bytes are 54 68, expected 6c 1b"),
    (dict(bed="smallmodebad.bed", bim="small.bim", fam="small.fam"), "invalid .bed mode byte 0x30"),
    (dict(bed="empty.bed", bim="small.bim", fam="small.fam"), "empty .bed file"),
    (dict(bed="small_too_short.bed", bim="small.bim", fam="small.fam"), ".bed has 6 bytes but"),
    (dict(bed="small.bed", bim="small.bim", fam="plink_sim_10s_100v_10pmiss.fam"),
     ".bed has 7 bytes but .bim (4 variants) and .fam (10 samples) imply 15"),
    (dict(bed="small.bed", fam="small.fam"), "missing .bim file"),
    (dict(bed="small.bed", bim="small.bim"), "missing .fam file"),
    (dict(bim="small.bim", fam="small.fam"), "missing .bed file"),
])
def test_file_faults(tmp_path, files, fault):
    with pytest.raises(InputError) as info:
        read_plink(assemble(tmp_path, **files))
    assert fault in str(info.value)


@pytest.mark.parametrize("files, fault, line", [
    (dict(bed="small.bed", bim="small.bad_bim", fam="small.fam"), ".bim line has 5 columns, expected 6", 3),
    (dict(bed="small.bed", bim="small.bim", fam="small.fam_bad"), ".fam line has 1 columns, expected 6", 4),
    (dict(bed="small.bed", bim="small.bim_bad_positions.bim", fam="small.fam"), "genetic position (column 3) 'X'", 2),
])
def test_line_faults_name_the_line(tmp_path, files, fault, line):
    with pytest.raises(InputError) as info:
        read_plink(assemble(tmp_path, **files))
    assert fault in str(info.value) and info.value.line == line


def test_fractional_bp_position_is_refused(tmp_path):
    bim = (tmp_path / "x.bim")
    assemble(tmp_path, bed="small.bed", fam="small.fam")
    bim.write_text(edge("small.bim").read_text().replace("\t100\t", "\t100.5\t"))
    with pytest.raises(InputError, match="'100.5' is not an integer"):
        read_plink(tmp_path / "x")


def test_prefix_with_dots(tmp_path):
    bed = assemble(tmp_path, bed="small.bed", bim="small.bim", fam="small.fam", prefix="set.v2")
    assert plink_paths(tmp_path / "set.v2") == (bed, tmp_path / "set.v2.bim", tmp_path / "set.v2.fam")
    assert read_genotypes(tmp_path / "set.v2").n_variants == 4
    assert read_genotypes(tmp_path / "set.v2.fam").n_samples == 3


def test_write_read_round_trip_and_plink19_agrees(tmp_path):
    rng = np.random.default_rng(0)
    from genoae.genotypes import Genotypes

    counts = rng.integers(-1, 3, size=(9, 23))
    geno = Genotypes.from_counts(counts)
    bed = write_genotypes(geno, tmp_path / "out.bed")
    np.testing.assert_array_equal(read_genotypes(bed).counts(), counts)
    if shutil.which("plink1.9") is None:
        pytest.skip("plink1.9 not installed")
    subprocess.run(["plink1.9", "--bfile", str(tmp_path / "out"), "--recode", "A", "--allow-no-sex",
                    "--recode-allele", str(_a2_list(tmp_path, geno)), "--out", str(tmp_path / "raw")],
                   check=True, capture_output=True)
    rows = [line.split()[6:] for line in (tmp_path / "raw.raw").read_text().splitlines()[1:]]
    plink_counts = np.array([[-1 if x == "NA" else int(x) for x in row] for row in rows])
    np.testing.assert_array_equal(plink_counts, counts)


def _a2_list(tmp_path, geno):
    path = tmp_path / "a2.txt"
    path.write_text("".join(f"{i}\t{a}\n" for i, a in zip(geno.variants.id, geno.variants.a2)))
    return path


@pytest.mark.parametrize("n_samples", [1, 2, 3, 4, 5, 13])
def test_tallies_from_packed_bytes_ignore_padding_bits(n_samples):
    from genoae.genotypes import Genotypes

    rng = np.random.default_rng(n_samples)
    counts = rng.integers(-1, 3, size=(n_samples, 41))
    geno = Genotypes.from_counts(counts)
    if n_samples % 4:  # some writers leave junk in the padding pairs of the last byte
        geno.packed[:, -1] |= np.uint8(0xFF & ~((1 << (2 * (n_samples % 4))) - 1))
    observed = counts >= 0
    with np.errstate(invalid="ignore"):
        expected = np.where(observed, counts, 0).sum(axis=0) / (2.0 * observed.sum(axis=0))
    np.testing.assert_allclose(geno.allele_freqs(), expected)
    np.testing.assert_allclose(geno.missing_rate_per_variant(), 1 - observed.mean(axis=0))
    np.testing.assert_array_equal(geno.counts(), counts)


@pytest.mark.parametrize("n_real, n_listed", [(7, 5), (6, 5), (3, 1)])
def test_a_fam_listing_fewer_individuals_than_the_bed_is_refused(tmp_path, n_real, n_listed):
    """Same row length, so only the padding bits tell: PLINK writes them as 0."""
    from genoae.genotypes import Genotypes
    from genoae.io.plink import write_plink

    counts = np.full((n_real, 30), 1, np.int8)  # heterozygous everywhere: every padding call would be nonzero
    write_plink(Genotypes.from_counts(counts), tmp_path / "d")
    lines = (tmp_path / "d.fam").read_text().splitlines()
    (tmp_path / "d.fam").write_text("\n".join(lines[:n_listed]) + "\n")
    with pytest.raises(InputError, match="padding bits"):
        read_genotypes(tmp_path / "d.bed")
    (tmp_path / "d.fam").write_text("\n".join(lines) + "\n")
    assert read_genotypes(tmp_path / "d.bed").n_samples == n_real


@pytest.mark.parametrize("extra", [1, 2])
def test_fam_listing_people_the_bed_pads_with_zeros_is_warned_about(tmp_path, extra):
    """42 people in the .bed, 43 or 44 in the .fam: same row length, the extra people read from zero padding."""
    from genoae.genotypes import Genotypes

    rng = np.random.default_rng(3)
    write_plink(Genotypes.from_counts(rng.integers(0, 3, (42, 60)).astype(np.int8)), tmp_path / "g")
    with open(tmp_path / "g.fam", "a") as handle:
        for i in range(extra):
            handle.write(f"x extra{i} 0 0 0 -9\n")
    with pytest.warns(UserWarning, match=f"individuals? {'43-44' if extra == 2 else '43'} .*code 00"):
        read_plink(tmp_path / "g")
    with open(tmp_path / "g.fam") as handle:  # the matching .fam: no warning
        lines = handle.readlines()[:42]
    (tmp_path / "g.fam").write_text("".join(lines))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_plink(tmp_path / "g").n_samples == 42


def test_some_missing_matches_its_expected_matrix():
    """plink_edge_cases/some_missing.val.npy holds the A1 counts (NaN missing): ours are A2 = 2 - that."""
    from tests.conftest import SHARED_DATA

    folder = SHARED_DATA / "plink_edge_cases"
    if not (folder / "some_missing.val.npy").exists():
        pytest.skip(f"needs ../shared/data/plink_edge_cases (the bed-reader test files); not found at {folder}")
    expected = np.load(folder / "some_missing.val.npy")
    counts = read_plink(folder / "some_missing").counts()
    np.testing.assert_array_equal(counts, np.where(np.isnan(expected), -1, 2 - np.nan_to_num(expected)))
