"""VCF Zarr (bio2zarr / sgkit layout): read chunk by chunk with zarr, written by `genoae convert OUT.vcz`."""
import shutil
import subprocess

import numpy as np
import pytest

from genoae.errors import InputError
from genoae.io import read_genotypes, write_genotypes
from tests.conftest import assert_same_genotypes
from tests.test_io_pgen import random_set

zarr = pytest.importorskip("zarr", reason="VCF Zarr needs the zarr package (a genoae dependency)")


def phased_set(n=11, m=37, seed=2):
    from genoae.genotypes import Genotypes

    rng = np.random.default_rng(seed)
    return Genotypes.from_haplotypes(rng.integers(0, 2, (n, 2, m)).astype(np.uint8))


@pytest.mark.parametrize("make", [random_set, phased_set])
def test_written_store_reads_back(tmp_path, make):
    geno = make()
    write_genotypes(geno, tmp_path / "g.vcz")
    back = read_genotypes(tmp_path / "g.vcz")
    assert_same_genotypes(back, geno) if geno.phased else np.testing.assert_array_equal(back.counts(), geno.counts())
    group = zarr.open_group(str(tmp_path / "g.vcz"), mode="r")
    assert group["call_genotype"].shape == (geno.n_variants, geno.n_samples, 2)
    assert group.attrs["vcf_zarr_version"] and "counted allele" in group.attrs["genoae_allele_convention"]
    write_genotypes(geno, tmp_path / "g.vcz")  # an existing store is replaced whole, not merged into
    assert not list(tmp_path.glob(".g.vcz*"))


def test_bio2zarr_store_gives_the_vcf_calls(tmp_path):
    pytest.importorskip("bio2zarr.vcf", reason="making the test store needs bio2zarr[vcf] (a test dependency)")
    if shutil.which("bcftools") is None:
        pytest.skip("needs bcftools on PATH to index the VCF that bio2zarr converts")
    geno = random_set(n=13, m=60)
    write_genotypes(geno, tmp_path / "g.vcf.gz")
    subprocess.run(["bcftools", "index", "-t", str(tmp_path / "g.vcf.gz")], check=True)
    from bio2zarr import vcf as vcf2zarr

    vcf2zarr.convert([tmp_path / "g.vcf.gz"], tmp_path / "g.vcz", worker_processes=0, show_progress=False)
    store = read_genotypes(tmp_path / "g.vcz")
    vcf = read_genotypes(tmp_path / "g.vcf.gz")
    np.testing.assert_array_equal(store.counts(), vcf.counts())
    np.testing.assert_array_equal(store.variants.pos, vcf.variants.pos)
    np.testing.assert_array_equal(store.samples.iid, vcf.samples.iid)


def test_haploid_fill_is_read_as_homozygous_and_bad_stores_are_named(tmp_path):
    path = tmp_path / "h.vcz"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("call_genotype", data=np.array([[[1, -2], [0, 1]], [[0, -2], [-1, -1]]], np.int8))
    group.create_array("variant_position", data=np.array([5, 9]))
    group.create_array("variant_allele", data=np.array([["A", "G"], ["C", "T"]]))
    group.create_array("sample_id", data=np.array(["x", "y"]))
    np.testing.assert_array_equal(read_genotypes(path).counts(), [[2, 0], [1, -1]])
    del group["sample_id"]
    with pytest.raises(InputError, match="no sample_id"):
        read_genotypes(path)
    (tmp_path / "file.vcz").write_text("x")
    with pytest.raises(InputError, match="is a folder"):
        read_genotypes(tmp_path / "file.vcz")
