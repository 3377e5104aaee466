"""Every file in ../shared/data/vcf_edge_cases and plink_edge_cases is read correctly or refused with one line.

Through the library: a Genotypes of sane shape or an InputError (never another exception type).  Through the CLI
(`genoae info`): exit 0, or exit 2 with exactly one line on stderr naming the file and no traceback.
"""
import numpy as np
import pytest

from genoae.cli import main
from genoae.errors import InputError
from genoae.genotypes import Genotypes
from genoae.io import read_genotypes
from tests.conftest import SHARED_DATA

EDGE_FILES = sorted(
    p for folder in ("vcf_edge_cases", "plink_edge_cases") if (SHARED_DATA / folder).exists()
    for p in (SHARED_DATA / folder).rglob("*") if p.is_file() and p.suffix not in (".md", ".tsv", ".tbi"))
IDS = [str(p.relative_to(SHARED_DATA)) for p in EDGE_FILES]


def _manifest() -> dict:
    path = SHARED_DATA / "vcf_edge_cases" / "MANIFEST.tsv"
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:] if line.strip()]
    return {row["file"]: {"samples": int(row["samples"]), "records": int(row["records"])} for row in rows
            if row.get("samples", "").isdigit() and row.get("records", "").isdigit()}


MANIFEST = _manifest()

# files that must be read (not refused), with (samples, kept variants)
EXPECTED_SHAPES = {
    "vcf_edge_cases/real_multisample/1kg_phase3_chr1_example_multi.vcf.gz": (2504, 4293),
    "vcf_edge_cases/real_multisample/chr20.unphased.vcf.gz": (51, 7824),
    "vcf_edge_cases/real_multisample/kinship_demo_no_meta_header.vcf.gz": (2504, 45),
    "vcf_edge_cases/real_multisample/toy.1000GP.vcf.gz": (20, 3296),
    "vcf_edge_cases/variantannotation/extdata_chr22.vcf.gz": (5, 9969),
    "vcf_edge_cases/cyvcf2/test-haploidX.vcf": (3, 700),
    "vcf_edge_cases/cyvcf2/test.snpeff.bcf": (4, 9),  # through bcftools view
    "plink_edge_cases/some_missing.bed": (100, 100),
    "plink_edge_cases/smallmode0.bed": (4, 3),
}
# files that must be refused, with a phrase of the reason
EXPECTED_REFUSALS = {
    "vcf_edge_cases/cyvcf2/empty.vcf": "empty file",
    "vcf_edge_cases/cyvcf2/test-invalid-header.vcf": "sample column 2 of the #CHROM line has an empty name",
    "vcf_edge_cases/variantannotation/VarScan_header.vcf": "tab-separated columns",
    "vcf_edge_cases/bio2zarr/triploid.vcf.gz": "ploidy 3",
    "vcf_edge_cases/bio2zarr/empty.vcf": "no biallelic SNP",
    "vcf_edge_cases/htslib/vcf_meta_meta.vcf": "no sample columns",
    "plink_edge_cases/badfile.bed": "magic bytes",
    "plink_edge_cases/smallmodebad.bed": "mode byte 0x30",
    "plink_edge_cases/empty.bed": "empty .bed",
    "plink_edge_cases/small_too_short.bed": ".bed has 6 bytes",
    "plink_edge_cases/small_no_bim.bed": "missing .bim",
    "plink_edge_cases/small_no_fam.bed": "missing .fam",
}


@pytest.mark.parametrize("path", EDGE_FILES, ids=IDS)
def test_library_reads_or_refuses(path):
    key = str(path.relative_to(SHARED_DATA))
    try:
        geno = read_genotypes(path, quiet=True)
    except InputError as error:
        assert key not in EXPECTED_SHAPES, f"{key} should be readable: {error}"
        assert error.path is not None
        if key in EXPECTED_REFUSALS:
            assert EXPECTED_REFUSALS[key] in str(error)
        return
    assert key not in EXPECTED_REFUSALS, f"{key} should be refused"
    assert isinstance(geno, Genotypes) and geno.n_samples > 0 and geno.n_variants > 0
    assert geno.packed.shape == (geno.n_variants, (geno.n_samples + 3) // 4)
    counts = geno.counts()
    assert counts.shape == (geno.n_samples, geno.n_variants) and set(np.unique(counts)) <= {-1, 0, 1, 2}
    assert len(geno.variants.chrom) == geno.n_variants
    if key in EXPECTED_SHAPES:
        assert (geno.n_samples, geno.n_variants) == EXPECTED_SHAPES[key]
    manifest = MANIFEST.get(key.removeprefix("vcf_edge_cases/"))
    if manifest is not None:  # the manifest's own count of samples and records, made by another program
        assert geno.n_samples == manifest["samples"]
        skipped = int(geno.info["skipped records"].split()[0])
        assert geno.n_variants + skipped == manifest["records"], (geno.n_variants, skipped, manifest)


@pytest.mark.parametrize("path", EDGE_FILES, ids=IDS)
def test_cli_info_exit_code_and_one_line(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if exit_info.value.code == 0:
        assert "samples:" in out
        assert len(err.strip().splitlines()) <= 1  # at most the skipped-records note
    else:
        assert exit_info.value.code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("genoae: error: ")
        assert path.name.split(".")[0] in lines[0]


def test_mutated_vcf_text_never_raises_anything_but_input_error(tmp_path):
    """Random byte edits of a small real VCF: each read gives Genotypes or an InputError, never another exception."""
    import random

    from tests.test_io_vcf import HEADER, record

    text = (HEADER + record(1, "A", "G", "0|1", "1/1:3", ".") + record(2, "AT", "A", "0/1", "0/0", "0/0")
            + record(3, "C", "T,G", "0/2", "1/1", "./.") + record(4, "G", "C", "1", "0/1", "1|1")).encode()
    rng = random.Random(0)
    alphabet = b"\t\n01./|:,ACGT<>*#2 \r"
    path = tmp_path / "fuzz.vcf"
    outcomes = {"read": 0, "refused": 0}
    for _ in range(400):
        mutated = bytearray(text)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(mutated))
            op = rng.random()
            if op < 0.4:
                mutated[i] = rng.choice(alphabet)
            elif op < 0.7:
                del mutated[i:i + rng.randint(1, 5)]
            else:
                mutated[i:i] = bytes([rng.choice(alphabet)])
        path.write_bytes(bytes(mutated))
        try:
            geno = read_genotypes(path, quiet=True)
            assert set(np.unique(geno.counts())) <= {-1, 0, 1, 2}
            outcomes["read"] += 1
        except InputError:
            outcomes["refused"] += 1
    assert outcomes["read"] > 50 and outcomes["refused"] > 50  # the edits exercise both outcomes
