"""BCF and --region through bcftools (htslib), parsed by genoae's VCF reader; files made by the real bcftools."""
import shutil
import subprocess

import numpy as np
import pytest

from genoae.cli import main
from genoae.errors import InputError
from genoae.io import read_genotypes, write_genotypes
from tests.test_io_pgen import random_set

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None,
                                reason="needs bcftools on PATH to make BCF test files (apt-get install bcftools)")


def bcftools(*args, cwd):
    subprocess.run(["bcftools", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def two_chromosomes(tmp_path):
    from genoae.genotypes import Genotypes, Variants

    geno = random_set(n=9, m=40)
    variants = Variants(chrom=np.array(["1"] * 20 + ["2"] * 20), pos=np.tile(np.arange(1, 21) * 100, 2),
                        id=np.array([f"rs{j}" for j in range(40)]), a1=np.array(["A"] * 40), a2=np.array(["G"] * 40))
    geno = Genotypes(geno.packed, geno.samples, variants)
    write_genotypes(geno, tmp_path / "g.vcf.gz")
    bcftools("view", "-Ob", "-o", "g.bcf", "g.vcf.gz", cwd=tmp_path)
    bcftools("index", "g.bcf", cwd=tmp_path)
    bcftools("index", "-t", "g.vcf.gz", cwd=tmp_path)
    return geno


def test_bcf_gives_the_vcf_calls(tmp_path):
    geno = two_chromosomes(tmp_path)
    bcf = read_genotypes(tmp_path / "g.bcf")
    np.testing.assert_array_equal(bcf.counts(), geno.counts())
    np.testing.assert_array_equal(bcf.variants.pos, geno.variants.pos)
    assert "bcftools view" in bcf.info["reader"]


@pytest.mark.parametrize("name", ["g.bcf", "g.vcf.gz"])
def test_region_reads_only_its_records(tmp_path, name):
    geno = two_chromosomes(tmp_path)
    part = read_genotypes(tmp_path / name, region="2:500-1200")
    keep = (geno.variants.chrom == "2") & (geno.variants.pos >= 500) & (geno.variants.pos <= 1200)
    np.testing.assert_array_equal(part.counts(), geno.counts()[:, keep])


def test_region_faults_are_one_line(tmp_path, capsys):
    two_chromosomes(tmp_path)
    (tmp_path / "plain.vcf").write_text("not a VCF, and no index\n")
    with pytest.raises(InputError, match="bcftools could not read it"):
        read_genotypes(tmp_path / "plain.vcf", region="1:1-100")
    np.save(tmp_path / "m.npy", np.zeros((3, 3), np.int8))
    with pytest.raises(InputError, match="--region needs a VCF or BCF"):
        read_genotypes(tmp_path / "m.npy", region="1:1-100")
    with pytest.raises(SystemExit) as stop:
        main(["info", str(tmp_path / "g.bcf"), "--region", "nochrom:1-5"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1


def test_hapmap3_in_every_container_gives_the_same_likelihood(hapmap3_bed, tmp_path):
    """bed, pgen, BCF, VCF.gz and VCF Zarr copies made by plink2, bcftools and bio2zarr: same ℓ at K = 3, seed 1."""
    from genoae.ancestry import Admixture

    if shutil.which("plink2") is None:
        pytest.skip("needs plink2 on PATH to make the .pgen and VCF copies")
    prefix = str(hapmap3_bed)[:-4]
    subprocess.run(["plink2", "--bfile", prefix, "--make-pgen", "--out", "h"], cwd=tmp_path, check=True,
                   capture_output=True)
    subprocess.run(["plink2", "--bfile", prefix, "--export", "vcf", "bgz", "--out", "h"], cwd=tmp_path,
                   check=True, capture_output=True)
    bcftools("view", "-Ob", "-o", "h.bcf", "h.vcf.gz", cwd=tmp_path)
    paths = [hapmap3_bed, tmp_path / "h.pgen", tmp_path / "h.vcf.gz", tmp_path / "h.bcf"]
    try:
        from bio2zarr import vcf as vcf2zarr
    except ImportError:  # a test dependency; without it the other four containers are still compared
        vcf2zarr = None
    if vcf2zarr is not None:
        bcftools("index", "-t", "h.vcf.gz", cwd=tmp_path)
        vcf2zarr.convert([tmp_path / "h.vcf.gz"], tmp_path / "h.vcz", worker_processes=0, show_progress=False)
        paths.append(tmp_path / "h.vcz")
    logliks = {}
    for path in paths:
        geno = read_genotypes(path, quiet=True)
        assert geno.n_samples == 324
        logliks[path.name] = (Admixture(3, progress=False, seed=1).fit(geno).loglik_, geno.n_variants)
    # every container holds the 324 x 13,928 calls (the 169 monomorphic SNPs, ALT '.', included) and gives the
    # .bed's ℓ (P becomes 1 - P where plink2 swapped the alleles)
    for name, (value, n_variants) in logliks.items():
        assert n_variants == 13928, name
        assert value == pytest.approx(logliks["hapmap3.bed"][0], rel=1e-9), name
