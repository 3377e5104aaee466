"""Genotype HDF5: scikit-allel's layout (as allel.vcf_to_hdf5 writes it) and genoae's packed layout."""
import h5py
import numpy as np
import pytest

from genoae.errors import InputError
from genoae.io import read_genotypes, write_genotypes
from genoae.io.hdf5 import read_hdf5, write_hdf5
from tests.conftest import shared_path
from tests.test_io_vcf import random_genotypes
from conftest import assert_same_genotypes


def test_reads_what_scikit_allel_writes(tmp_path):
    allel = pytest.importorskip("allel")
    vcf = shared_path("vcf_edge_cases", "real_multisample", "toy.1000GP.vcf.gz")
    h5 = tmp_path / "allel.h5"
    allel.vcf_to_hdf5(str(vcf), str(h5), fields=["samples", "calldata/GT", "variants/CHROM", "variants/POS",
                                                 "variants/ID", "variants/REF", "variants/ALT"])
    from_h5, from_vcf = read_hdf5(h5, quiet=True), read_genotypes(vcf, quiet=True)
    np.testing.assert_array_equal(from_h5.counts(), from_vcf.counts())
    for field in ("chrom", "pos", "id", "a1", "a2"):
        np.testing.assert_array_equal(getattr(from_h5.variants, field), getattr(from_vcf.variants, field))
    np.testing.assert_array_equal(from_h5.samples.iid, from_vcf.samples.iid)
    assert from_h5.info["skipped records"] == from_vcf.info["skipped records"]


@pytest.mark.parametrize("layout", ["allel", "packed"])
@pytest.mark.parametrize("phased", [False, True])
def test_write_read_round_trip(tmp_path, layout, phased):
    geno = random_genotypes(11, 29, seed=5, phased=phased)
    write_hdf5(geno, tmp_path / "g.h5", layout=layout)
    back = read_genotypes(tmp_path / "g.h5")
    assert back.phased == phased
    assert_same_genotypes(back, geno)


def test_allel_layout_is_what_scikit_allel_expects(tmp_path):
    allel = pytest.importorskip("allel")
    geno = random_genotypes(6, 10, seed=6, phased=False)
    write_genotypes(geno, tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r") as h5:
        gt = allel.GenotypeArray(h5["calldata/GT"][:])
        np.testing.assert_array_equal(gt.to_n_alt(fill=-1).T, geno.counts())
        assert [s.decode() for s in h5["samples"][:]] == list(geno.samples.iid)
        assert h5["variants/POS"].shape == (10,) and "A2" in h5.attrs["allele_convention"]


def make_h5(path, gt, alt=None):
    with h5py.File(path, "w") as h5:
        h5["calldata/GT"] = np.asarray(gt, np.int8)
        n = len(gt)
        h5["variants/POS"] = np.arange(1, n + 1)
        h5["variants/REF"] = np.array([b"A"] * n)
        h5["variants/ALT"] = alt if alt is not None else np.array([[b"G", b""]] * n)
        h5["samples"] = np.array([f"s{i}".encode() for i in range(np.shape(gt)[1])])
    return path


def test_multiallelic_skipped_and_haploid(tmp_path):
    gt = [[[0, 1], [1, 1]], [[0, 2], [1, 1]], [[-1, -1], [0, 0]]]
    alt = np.array([[b"G", b""], [b"G", b"T"], [b"G", b""]])
    geno = read_hdf5(make_h5(tmp_path / "m.h5", gt, alt), quiet=True)
    np.testing.assert_array_equal(geno.counts(), [[1, -1], [2, 0]])
    assert geno.info["skipped records"] == "1 of 3 (1 multi-allelic)"
    with h5py.File(tmp_path / "hap.h5", "w") as h5:
        h5["calldata/GT"] = np.array([[1, 0], [-1, 1]], np.int8)
    np.testing.assert_array_equal(read_hdf5(tmp_path / "hap.h5").counts(), [[2, -1], [0, 2]])


@pytest.mark.parametrize("gt, fault", [
    ([[[0, 2], [1, 1]]], "allele index 2 for sample s0 is out of range"),
    ([[[0, 1, 1], [1, 1, 0]]], "ploidy 3"),
])
def test_bad_calls(tmp_path, gt, fault):
    with pytest.raises(InputError, match=fault) as info:
        read_hdf5(make_h5(tmp_path / "b.h5", gt))
    if "allele" in fault:
        assert "record 1" in str(info.value)


def test_not_hdf5_and_no_gt(tmp_path):
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_genotypes(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as h5:
        h5["something"] = np.zeros(3)
    with pytest.raises(InputError, match="no calldata/GT"):
        read_genotypes(tmp_path / "y.h5")


def test_corrupt_or_odd_files_are_input_errors(tmp_path):
    geno = random_genotypes(20, 500, seed=7, phased=False)
    write_hdf5(geno, tmp_path / "g.h5")
    data = (tmp_path / "g.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_genotypes(tmp_path / "cut.h5")
    with h5py.File(tmp_path / "float.h5", "w") as h5:
        h5["calldata/GT"] = np.full((3, 2, 2), 0.5, np.float32)
    with pytest.raises(InputError, match="dtype float32"):
        read_genotypes(tmp_path / "float.h5")
    with h5py.File(tmp_path / "pos.h5", "w") as h5:
        h5["calldata/GT"] = np.zeros((3, 2, 2), np.int8)
        h5["variants/POS"] = np.array([b"a", b"b", b"c"])
    with pytest.raises(InputError, match="variants/POS has dtype .S1: expected integers"):
        read_genotypes(tmp_path / "pos.h5")


@pytest.mark.parametrize("name, value, fault", [
    ("calldata/GT", None, "calldata/GT is a group"),
    ("variants/POS", np.ones((3, 2), np.int64), r"variants/POS has shape \(3, 2\)"),
    ("variants/POS", np.array([1.5, 2.5, 3.5]), "variants/POS has dtype float64"),
    ("variants/POS", np.array([1, -2, 3]), "negative position"),
    ("samples", np.array([[b"a", b"b"]]), "samples has shape"),
])
def test_odd_datasets_are_named(tmp_path, name, value, fault):
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as h5:
        if name != "calldata/GT":
            h5["calldata/GT"] = np.zeros((3, 2, 2), np.int8)
        if value is None:
            h5.create_group(name)
        else:
            h5[name] = value
    with pytest.raises(InputError, match=fault):
        read_genotypes(path)


@pytest.mark.parametrize("packed, fault", [
    (np.zeros((3, 1), np.float64), "calldata/packed has dtype float64"),
    (np.array(7, np.uint8), r"calldata/packed has shape \(\)"),
    (np.full((3, 1), 300, np.int64), "calldata/packed has dtype int64"),
    (np.zeros((3, 1), np.uint16), "expected uint8"),
])
def test_packed_layout_must_be_bytes(tmp_path, packed, fault):
    path = tmp_path / "packed.h5"
    with h5py.File(path, "w") as h5:
        h5["calldata/packed"] = packed
        h5["samples"] = np.array([b"a", b"b"])
    with pytest.raises(InputError, match=fault):
        read_genotypes(path)
