"""Plain matrices (.npy, whitespace text) and .hapt haplotype text."""
import gzip

import numpy as np
import pytest

from genoae.errors import InputError
from genoae.io import read_genotypes, write_genotypes
from genoae.io.matrix import read_hapt, read_legend
from tests.conftest import shared_path


def test_npy_int_and_float_with_missing(tmp_path):
    counts = np.array([[0, 1, 2, -1], [2, 2, 0, 1]], np.int8)
    np.save(tmp_path / "a.npy", counts)
    np.testing.assert_array_equal(read_genotypes(tmp_path / "a.npy").counts(), counts)
    floats = counts.astype(float)
    floats[0, 3] = np.nan
    np.save(tmp_path / "b.npy", floats)
    geno = read_genotypes(tmp_path / "b.npy")
    np.testing.assert_array_equal(geno.counts(), counts)
    assert geno.n_samples == 2 and geno.n_variants == 4 and geno.variants.id[0] == "snp1"
    write_genotypes(geno, tmp_path / "c.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), counts)


@pytest.mark.parametrize("array, fault", [
    (np.array([[0, 3]]), "value 3 at sample row 1, SNP column 2"),
    (np.array([[0.5, 1]]), "value 0.5"),
    (np.zeros(3), "2-D"),
    (np.zeros((0, 4)), "empty"),
    (np.array([["a", "b"]]), "not numeric"),
])
def test_npy_bad_values(tmp_path, array, fault):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InputError, match=fault):
        read_genotypes(tmp_path / "bad.npy")


def test_npy_not_an_array(tmp_path):
    (tmp_path / "bad.npy").write_text("hello")
    with pytest.raises(InputError, match="not a readable .npy"):
        read_genotypes(tmp_path / "bad.npy")


def test_text_plain_header_and_ids(tmp_path):
    (tmp_path / "a.txt").write_text("0 1 2\n2 NA -1\n")
    np.testing.assert_array_equal(read_genotypes(tmp_path / "a.txt").counts(), [[0, 1, 2], [2, -1, -1]])
    (tmp_path / "b.tsv").write_text("id\trsA\trsB\nind7\t0\t2\nind9\t.\t1\n")
    geno = read_genotypes(tmp_path / "b.tsv")
    np.testing.assert_array_equal(geno.counts(), [[0, 2], [-1, 1]])
    assert list(geno.samples.iid) == ["ind7", "ind9"] and list(geno.variants.id) == ["rsA", "rsB"]


@pytest.mark.parametrize("text, fault, line", [
    ("0 1 2\n2 1\n", "row has 2 columns, the first row has 3", 2),
    ("0 1 2\n2 1 5\n", "genotype '5'", 2),
    ("", "empty file", None),
])
def test_text_bad(tmp_path, text, fault, line):
    (tmp_path / "bad.txt").write_text(text)
    with pytest.raises(InputError, match=fault) as info:
        read_genotypes(tmp_path / "bad.txt")
    assert info.value.line == line


def write_hapt(path, rows):
    text = "".join(f"Real {hid} {' '.join(map(str, alleles))}\n" for hid, alleles in rows)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_hapt_pairs_rows_into_phased_people(tmp_path):
    rows = [("P1_A", [0, 1, 1]), ("P1_B", [0, 0, 1]), ("P2_A", [1, 1, 0]), ("P2_B", [1, 0, 0])]
    geno = read_genotypes(write_hapt(tmp_path / "x.hapt.gz", rows), legend=None)
    assert list(geno.samples.iid) == ["P1", "P2"] and geno.phased
    np.testing.assert_array_equal(geno.counts(), [[0, 1, 2], [2, 1, 0]])
    np.testing.assert_array_equal(geno.haplotypes()[1], [[1, 1, 0], [1, 0, 0]])


def test_hapt_with_legend(tmp_path):
    rows = [("P1_A", [0, 1]), ("P1_B", [1, 1])]
    write_hapt(tmp_path / "set_real.hapt", rows)
    (tmp_path / "set.legend").write_text("id position a0 a1\n3:100_C_T 100 C T\n7:5_A_G 5 A G\n")
    geno = read_genotypes(tmp_path / "set_real.hapt")  # legend found beside it by name
    assert list(geno.variants.chrom) == ["3", "7"] and list(geno.variants.pos) == [100, 5]
    assert list(geno.variants.a1) == ["C", "A"] and list(geno.variants.a2) == ["T", "G"]
    assert geno.info["legend"].endswith("set.legend")
    (tmp_path / "short.legend").write_text("id position a0 a1\n3:100_C_T 100 C T\n")
    with pytest.raises(InputError, match="legend has 1 variants but the haplotype file has 2"):
        read_hapt(tmp_path / "set_real.hapt", legend=tmp_path / "short.legend")
    (tmp_path / "bad.legend").write_text("rsid pos\n")
    with pytest.raises(InputError, match="expected columns id position a0 a1"):
        read_legend(tmp_path / "bad.legend")


@pytest.mark.parametrize("rows, fault, line", [
    ([("A_A", [0, 1]), ("A_B", [0, 2])], "allele '2' is not 0 or 1", 2),
    ([("A_A", [0, 1]), ("A_B", [0])], "1 alleles, the first line has 2", 2),
    ([("A_A", [0, 1]), ("A_B", [0, 1]), ("B_A", [1, 1])], "count must be even", 3),
    ([("A_A", [0, 10]), ("A_B", [0, 1])], "allele '10'", 1),
])
def test_hapt_bad(tmp_path, rows, fault, line):
    with pytest.raises(InputError, match=fault) as info:
        read_hapt(write_hapt(tmp_path / "bad.hapt", rows), legend=None)
    assert info.value.line == line


def test_hapt_805_snp_1kg():
    path = shared_path("1kg_805snp_haplotypes", "805_SNP_1000G_real.hapt.gz")
    geno = read_genotypes(path)
    assert (geno.n_samples, geno.n_variants) == (2504, 805) and geno.phased
    assert geno.samples.iid[0] == "HG00096" and geno.variants.id[0] == "1:1243896_C_T"
    # the README: allele 1 has frequency > 0.5 at 319 SNPs, < 0.5 at 485; 3 SNPs monomorphic
    freqs = geno.allele_freqs()
    assert (freqs > 0.5).sum() == 319 and (freqs < 0.5).sum() == 485
    assert (geno.maf() == 0).sum() == 3


def test_zero_variant_container_writes_everywhere(tmp_path):
    from genoae.genotypes import Genotypes

    geno = Genotypes.from_counts(np.zeros((3, 0), np.int8))
    for name in ("e.npy", "e.bed", "e.vcf.gz", "e.h5"):
        write_genotypes(geno, tmp_path / name)
    assert np.load(tmp_path / "e.npy").shape == (3, 0)
    with pytest.raises(InputError, match="no biallelic SNP"):
        read_genotypes(tmp_path / "e.vcf.gz")


@pytest.mark.parametrize("name, hint", [("x.geno", "convertf"), ("x.bgen", "plink2 --bgen"),
                                        ("x.vcz", "VCF Zarr"), ("x.zarr", "VCF Zarr")])
def test_unsupported_formats_are_named_with_the_right_tool(tmp_path, name, hint):
    (tmp_path / name).write_text("0")
    with pytest.raises(InputError, match=hint):
        read_genotypes(tmp_path / name)


@pytest.mark.parametrize("text, expected, ids", [
    ("ind1 0 1 2\nind2 1 1 0\nind3 2 0 1\n", [[0, 1, 2], [1, 1, 0], [2, 0, 1]], ["ind1", "ind2", "ind3"]),
    ("101 0 1 2\n102 1 1 0\n", [[0, 1, 2], [1, 1, 0]], ["101", "102"]),  # not a genotype value: an ID
    ("s1 s2 s3\n0 1 2\n1 1 0\n", [[0, 1, 2], [1, 1, 0]], None),
    ("id s1 s2\na 0 1\nb 1 1\n", [[0, 1], [1, 1]], ["a", "b"]),
])
def test_text_layout_recognised_beyond_doubt(tmp_path, text, expected, ids):
    (tmp_path / "m.txt").write_text(text)
    geno = read_genotypes(tmp_path / "m.txt")
    np.testing.assert_array_equal(geno.counts(), expected)
    if ids is not None:
        assert list(geno.samples.iid) == ids


@pytest.mark.parametrize("text, fault, line", [
    ("0 1 x\n1 1 0\n2 0 1\n", "line 1 mixes names", 1),          # one stray token in row 1 is no header
    ("0 1 2\n1 1 0\nx 0 1\n", "column 1 holds a sample ID on some lines", 3),  # nor one stray value an ID column
    ("a 0 1 2\n1 1 0 2\n", "column 1 holds a sample ID on some lines", 2),
    ("0 1 2\n1 3 0\n", "column 2: genotype '3'", 2),
    ("a b c d e\n0 1 2\n", "header has 5 names for 3 SNP columns", 1),
])
def test_text_layout_that_cannot_be_told_apart_is_refused(tmp_path, text, fault, line):
    (tmp_path / "m.txt").write_text(text)
    with pytest.raises(InputError, match=fault) as info:
        read_genotypes(tmp_path / "m.txt")
    assert info.value.line == line


def test_text_layout_can_be_declared(tmp_path):
    from genoae.io.matrix import read_text_matrix

    (tmp_path / "m.txt").write_text("1 0 1 2\n2 1 1 0\n")  # numeric IDs 1 and 2 look like genotypes
    geno = read_text_matrix(tmp_path / "m.txt", ids=True)
    assert list(geno.samples.iid) == ["1", "2"] and geno.n_variants == 3
    assert read_text_matrix(tmp_path / "m.txt", ids=False).n_variants == 4


@pytest.mark.parametrize("damage", ["truncated", "crc", "garbage"])
def test_damaged_gzip_text_is_an_input_error(tmp_path, damage):
    for name, text in (("m.txt.gz", b"0 1 2\n1 1 0\n"), ("m.hapt.gz", b"P a_A 0 1\nP a_B 1 0\n")):
        data = gzip.compress(text * 500, mtime=0)
        if damage == "truncated":
            data = data[: len(data) // 2]
        elif damage == "crc":
            data = data[:-6] + bytes([data[-6] ^ 0xFF]) + data[-5:]
        else:
            data = b"\x1f\x8b" + b"\x00garbage" * 20
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match="cannot be read: the compressed file"):
            read_genotypes(tmp_path / name, legend=None)
