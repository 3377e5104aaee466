"""PLINK 2 .pgen/.pvar/.psam through pgenlib, on files made by the real plink2."""
import shutil
import subprocess

import numpy as np
import pytest

from genoae.errors import InputError
from genoae.io import input_files, read_genotypes, write_genotypes
from tests.test_io_vcf import HEADER, record

pytestmark = pytest.mark.skipif(shutil.which("plink2") is None,
                                reason="needs plink2 on PATH to make .pgen test files (apt-get install plink2)")


def plink2(*args, cwd):
    subprocess.run(["plink2", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def random_set(n=23, m=50, seed=0):
    from genoae.genotypes import Genotypes

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 3, (n, m)).astype(np.int8)
    counts[rng.random(counts.shape) < 0.1] = -1
    return Genotypes.from_counts(counts)


def test_pgen_from_bed_gives_the_flipped_calls_of_the_bed(tmp_path):
    geno = random_set()
    write_genotypes(geno, tmp_path / "g.bed")
    plink2("--bfile", "g", "--make-pgen", "--out", "p", cwd=tmp_path)
    for name in ("p.pgen", "p", "p.pvar", "p.psam"):  # the prefix is found as a .bed prefix is
        pgen = read_genotypes(tmp_path / name)
        assert (pgen.n_samples, pgen.n_variants) == (23, 50)
    # plink2 imports .bed A2 as REF and A1 as ALT; genoae counts ALT, so the counts are the .bed's flipped
    counts, pgen_counts = geno.counts(), pgen.counts()
    np.testing.assert_array_equal(pgen_counts, np.where(counts < 0, -1, 2 - counts))
    np.testing.assert_array_equal(pgen.variants.a1, geno.variants.a2)
    np.testing.assert_array_equal(pgen.variants.a2, geno.variants.a1)
    np.testing.assert_array_equal(pgen.samples.iid, geno.samples.iid)
    assert sorted(p.name for p in input_files(tmp_path / "p")) == ["p.pgen", "p.psam", "p.pvar"]


def test_pgen_from_vcf_keeps_alt_counts_and_skips_multiallelic(tmp_path):
    body = (record(1, "A", "G", "0/1", "1/1", "./.") + record(2, "C", "T,G", "0/2", "1/1", "0/0")
            + record(3, "G", "C", "0/0", "0/1", "1/1"))
    (tmp_path / "v.vcf").write_text(HEADER + body)
    plink2("--vcf", "v.vcf", "--make-pgen", "--out", "p", "--allow-extra-chr", cwd=tmp_path)
    pgen = read_genotypes(tmp_path / "p.pgen", quiet=True)
    assert pgen.info["skipped records"].startswith("1 of 3")
    np.testing.assert_array_equal(pgen.counts(), read_genotypes(tmp_path / "v.vcf", quiet=True).counts())
    assert list(pgen.samples.iid) == ["S1", "S2", "S3"]


def test_hapmap3_pgen_gives_the_bed_likelihood(hapmap3_bed, tmp_path):
    """The same ℓ through .pgen as through .bed (P becomes 1 - P under the allele flip)."""
    from genoae.ancestry import Admixture

    plink2("--bfile", str(hapmap3_bed)[:-4], "--make-pgen", "--out", "h", cwd=tmp_path)
    fits = [Admixture(3, progress=False, seed=1).fit(read_genotypes(path))
            for path in (hapmap3_bed, tmp_path / "h.pgen")]
    assert fits[1].loglik_ == pytest.approx(fits[0].loglik_, rel=1e-9)


def test_broken_pgen_companions_are_named(tmp_path):
    write_genotypes(random_set(), tmp_path / "g.bed")
    plink2("--bfile", "g", "--make-pgen", "--out", "p", cwd=tmp_path)
    psam = (tmp_path / "p.psam").read_text().splitlines()
    (tmp_path / "p.psam").write_text("\n".join(psam[:-1]) + "\n")
    with pytest.raises(InputError, match="psam lists 22 samples, the .pgen holds 23"):
        read_genotypes(tmp_path / "p.pgen")
    (tmp_path / "p.psam").write_text("\n".join(psam) + "\n")
    pvar = (tmp_path / "p.pvar").read_text().splitlines()
    (tmp_path / "p.pvar").write_text("\n".join(pvar[:5] + ["1\tx\trsX\tA"] + pvar[6:]) + "\n")
    with pytest.raises(InputError, match="pvar line has 4 columns"):
        read_genotypes(tmp_path / "p.pgen")
    (tmp_path / "p.pvar").write_text("\n".join(pvar) + "\n")
    (tmp_path / "p.pgen").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable .pgen"):
        read_genotypes(tmp_path / "p.pgen")
