"""Round trips on real data and cross-checks against plink2 (skipped when plink2 is absent)."""
import shutil
import subprocess

import numpy as np
import pytest

from genoae.cli import main
from genoae.io import read_genotypes
from tests.conftest import shared_path


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    assert info.value.code == 0


def assert_same(a, b):
    np.testing.assert_array_equal(a.counts(), b.counts())
    for field in ("chrom", "pos", "id", "a1", "a2", "cm"):
        np.testing.assert_array_equal(getattr(a.variants, field), getattr(b.variants, field), err_msg=field)
    for field in ("iid", "fid", "sex"):
        np.testing.assert_array_equal(getattr(a.samples, field), getattr(b.samples, field), err_msg=field)


def test_hapmap3_bed_vcf_hdf5_bed(tmp_path, hapmap3_bed, capsys):
    original = read_genotypes(hapmap3_bed)
    run_cli("convert", hapmap3_bed, tmp_path / "h.vcf.gz")
    run_cli("convert", tmp_path / "h.vcf.gz", tmp_path / "h.h5")
    run_cli("convert", tmp_path / "h.h5", tmp_path / "back.bed")
    back = read_genotypes(tmp_path / "back.bed")
    assert_same(back, original)
    assert {"23", "25", "26"} <= set(back.variants.chrom)
    assert (back.maf() == 0).sum() == (original.maf() == 0).sum() > 0  # monomorphic SNPs survive
    assert (tmp_path / "back.bed").read_bytes() == hapmap3_bed.read_bytes()
    assert (tmp_path / "back.bim").read_text().split() == hapmap3_bed.with_suffix(".bim").read_text().split()
    fam = [line.split()[:5] for line in hapmap3_bed.with_suffix(".fam").read_text().splitlines()]
    assert [line.split()[:5] for line in (tmp_path / "back.fam").read_text().splitlines()] == fam


def test_phased_hapt_to_vcf_keeps_haplotypes(tmp_path):
    hapt = shared_path("1kg_805snp_haplotypes", "805_SNP_1000G_real.hapt.gz")
    original = read_genotypes(hapt)
    run_cli("convert", hapt, tmp_path / "k.vcf.gz")
    back = read_genotypes(tmp_path / "k.vcf.gz")
    assert back.phased
    np.testing.assert_array_equal(back.haplotypes(), original.haplotypes())


def oriented_counts(genotypes, reference):
    """``genotypes`` counts re-expressed as counts of ``reference``'s A2, matching variants by ID and alleles."""
    index = {vid: j for j, vid in enumerate(genotypes.variants.id)}
    rows = np.array([index.get(vid, -1) for vid in reference.variants.id])
    counts = genotypes.counts()
    out = np.full((genotypes.n_samples, reference.n_variants), -9, np.int8)
    for j, r in enumerate(rows):
        if r < 0:
            continue
        if genotypes.variants.a2[r] == reference.variants.a2[j]:
            out[:, j] = counts[:, r]
        else:
            assert genotypes.variants.a1[r] == reference.variants.a2[j], reference.variants.id[j]
            out[:, j] = np.where(counts[:, r] < 0, -1, 2 - counts[:, r])
    return out


needs_plink2 = pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not installed")


@needs_plink2
def test_plink2_vcf_export_read_by_vcf_path_equals_plink_path(tmp_path, hapmap3_bed):
    subprocess.run(["plink2", "--bfile", str(hapmap3_bed.with_suffix("")), "--export", "vcf", "bgz",
                    "--threads", "1", "--out", str(tmp_path / "exp")], check=True, capture_output=True)
    via_plink = read_genotypes(hapmap3_bed)
    via_vcf = read_genotypes(tmp_path / "exp.vcf.gz", quiet=True)
    # plink2 writes the 169 monomorphic SNPs (A1 '0') with ALT '.': kept, as PLINK keeps them, A2 = '0'
    assert via_vcf.info["skipped records"] == "0 of 13928"
    np.testing.assert_array_equal(oriented_counts(via_vcf, via_plink), via_plink.counts())
    assert [s.split("_", 1)[1] for s in via_vcf.samples.iid] == list(via_plink.samples.iid)


@needs_plink2
def test_plink2_imports_our_vcf_to_the_same_matrix(tmp_path, hapmap3_bed):
    run_cli("convert", hapmap3_bed, tmp_path / "ours.vcf.gz")
    subprocess.run(["plink2", "--vcf", str(tmp_path / "ours.vcf.gz"), "--make-bed", "--threads", "1",
                    "--out", str(tmp_path / "imp")], check=True, capture_output=True)
    original = read_genotypes(hapmap3_bed)
    imported = read_genotypes(tmp_path / "imp.bed")
    np.testing.assert_array_equal(imported.samples.iid, original.samples.iid)
    np.testing.assert_array_equal(imported.variants.pos, original.variants.pos)
    np.testing.assert_array_equal(oriented_counts(imported, original), original.counts())
