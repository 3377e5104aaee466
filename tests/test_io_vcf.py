"""VCF reader/writer: hand-made records for each rule and fault, scikit-allel as an independent check on real files."""
import gzip

import numpy as np
import pytest

from genoae.errors import InputError
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.io import read_genotypes, write_genotypes
from genoae.io.vcf import read_vcf, write_vcf
from tests.conftest import shared_path
from conftest import assert_same_genotypes

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\tS3\n"


def write_text(tmp_path, body, name="x.vcf", header=HEADER):
    path = tmp_path / name
    text = header + body
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def record(pos, ref, alt, *calls, fmt="GT"):
    return "\t".join(["1", str(pos), f"rs{pos}", ref, alt, ".", ".", ".", fmt, *calls]) + "\n"


def test_calls_missing_forms_and_skips(tmp_path, capsys):
    body = (record(1, "A", "G", "0/0", "0/1", "1/1")
            + record(2, "A", "G", "./.", "0/.", ".")                    # all missing
            + record(3, "A", "G,T", "0/1", "1/2", "0/0")                 # multi-allelic: skipped
            + record(4, "AT", "A", "0/1", "0/0", "0/0")                  # indel: skipped
            + record(5, "A", "<DEL>", "0/1", "0/0", "0/0")               # symbolic: skipped
            + record(6, "A", ".", "0/0", "0/0", "0/0")                   # monomorphic: kept, as PLINK does
            + record(7, "C", "T", "1/0:30", "1/1:5", "./1:.", fmt="GT:DP")
            + record(8, "C", "T", "5", "7", "9", fmt="DP"))              # no GT: skipped
    geno = read_vcf(write_text(tmp_path, body, "x.vcf.gz"))
    np.testing.assert_array_equal(geno.counts(), [[0, -1, 0, 1], [1, -1, 0, 2], [2, -1, 0, -1]])
    assert list(geno.variants.pos) == [1, 2, 6, 7]
    assert list(geno.variants.a1) == ["A", "A", "A", "C"] and list(geno.variants.a2) == ["G", "G", "0", "T"]
    assert list(geno.samples.iid) == ["S1", "S2", "S3"]
    assert not geno.phased
    skipped = geno.info["skipped records"]
    assert skipped.startswith("4 of 8")
    for part in ("1 multi-allelic", "1 symbolic ALT", "1 indel/MNP", "1 no GT in FORMAT"):
        assert part in skipped
    err = capsys.readouterr().err
    assert "skipped 4 of 8" in err and len(err.strip().splitlines()) == 1


def test_monomorphic_records_keep_only_allele_zero(tmp_path):
    (tmp_path / "m.vcf").write_text(HEADER + record(6, "A", ".", "0/0", "0/1", "0/0"))
    with pytest.raises(InputError, match="ALT is '.' but a call carries allele 1"):
        read_vcf(tmp_path / "m.vcf")
    (tmp_path / "b.vcf").write_text(HEADER + record(6, "AT", ".", "0/0", "0/0", "0/0") + record(7, "C", "T", "0/1",
                                                                                          "0/0", "1/1"))
    geno = read_vcf(tmp_path / "b.vcf", quiet=True)  # a longer REF without ALT is a reference block: skipped
    assert geno.n_variants == 1 and "1 no ALT allele" in geno.info["skipped records"]


def test_phased_calls_become_haplotypes(tmp_path):
    body = record(1, "A", "G", "0|1", "1|0", "1|1") + record(2, "A", "G", "1|0", ".|.", "0|0")
    geno = read_vcf(write_text(tmp_path, body))
    assert geno.phased
    haps = geno.haplotypes()
    np.testing.assert_array_equal(haps[:, :, 0], [[0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(haps[:, :, 1], [[1, 0], [-1, -1], [0, 0]])
    # one unphased call drops the haplotypes and says so
    geno = read_vcf(write_text(tmp_path, body + record(3, "A", "G", "0/1", "0|0", "0|0")))
    assert not geno.phased and "partly phased" in geno.info["phasing"]


def test_haploid_and_mixed_ploidy(tmp_path):
    body = record(1, "A", "G", "0", "1", ".") + record(2, "A", "G", "0/1", "1", "0|0")
    geno = read_vcf(write_text(tmp_path, body))
    np.testing.assert_array_equal(geno.counts(), [[0, 1], [2, 2], [-1, 0]])
    assert geno.info["haploid calls"].startswith("3 ")


def test_vcf44_phase_prefix_and_multi_digit(tmp_path):
    body = record(1, "A", "G", "/0|1", "|1/0", "0/00") + record(2, "A", "G", "01/1", "1|00", "0")
    geno = read_vcf(write_text(tmp_path, body))
    np.testing.assert_array_equal(geno.counts(), [[1, 2], [1, 1], [0, 0]])


@pytest.mark.parametrize("body, fault", [
    (record(1, "A", "G", "0/1", "0/0"), "2 sample columns, the header has 3"),
    (record(1, "A", "G", "0/1", "0/0", "0/0", "1/1"), "4 sample columns, the header has 3"),
    ("1\t5\trs1\tA\tG\n", "record has 5 tab-separated columns"),
    (record(1, "A", "G", "0/2", "0/0", "0/0"), "allele index 2 is out of range"),
    (record(1, "A", "G", "0/0", "0/10:3", "0/0", fmt="GT:DP"), "allele index 10 is out of range"),
    (record(1, "A", "G", "0/0/1", "0/0", "0/0"), "ploidy 3"),
    (record(1, "A", "G", "0/0", "A/G", "0/0"), "is not a genotype"),
    (record(1, "A", "G", "0/0", "0/0", "0/0").replace("\t1\t", "\tone\t", 1), "POS 'one' is not an integer"),
])
def test_bad_records_name_file_line_and_fault(tmp_path, body, fault):
    path = write_text(tmp_path, record(9, "C", "T", "0/0", "0/1", "1/1") + body)
    with pytest.raises(InputError) as info:
        read_vcf(path)
    assert fault in str(info.value)
    assert info.value.line == 4 and str(path) in str(info.value)


@pytest.mark.parametrize("text, fault", [
    ("", "empty file"),
    ("##fileformat=VCFv4.2\n", "no #CHROM header"),
    ("1\t1\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", "before the #CHROM header"),
    ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n1\t1\t.\tA\tG\t.\t.\t.\n", "no sample"),
    (HEADER, "no biallelic SNP"),
    (HEADER + record(1, "A", "G,C", "0/1", "0/0", "0/0"), "1 multi-allelic"),
])
def test_bad_files(tmp_path, text, fault):
    path = tmp_path / "bad.vcf"
    path.write_text(text)
    with pytest.raises(InputError, match=fault):
        read_vcf(path)


def test_corrupt_gzip_is_an_input_error(tmp_path):
    path = tmp_path / "x.vcf.gz"
    data = gzip.compress((HEADER + record(1, "A", "G", "0/1", "0/0", "0/0") * 2000).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read"):
        read_vcf(path)


def test_gt_not_first_in_format_is_picked_out(tmp_path):
    body = record(1, "A", "G", "7:0/1", "8:1|1", "9", fmt="DP:GT")
    geno = read_vcf(write_text(tmp_path, body))
    np.testing.assert_array_equal(geno.counts(), [[1], [2], [-1]])


def random_genotypes(n_samples, n_variants, seed, phased):
    rng = np.random.default_rng(seed)
    samples = Samples(iid=[f"s{i}" for i in range(n_samples)], fid=[f"f{i % 3}" for i in range(n_samples)],
                      sex=rng.integers(0, 3, n_samples))
    variants = Variants(chrom=rng.choice(["1", "2", "23", "26"], n_variants), pos=rng.integers(1, 10**9, n_variants),
                        id=[f"rs{j}" for j in range(n_variants)], a1=rng.choice(list("ACGT0"), n_variants),
                        a2=rng.choice(list("ACGT"), n_variants), cm=rng.random(n_variants).round(4))
    if phased:
        geno = Genotypes.from_haplotypes(rng.integers(0, 2, (n_samples, 2, n_variants)), samples, variants)
    else:
        geno = Genotypes.from_counts(rng.integers(-1, 3, (n_samples, n_variants)), samples, variants)
    return geno


@pytest.mark.parametrize("phased", [False, True])
@pytest.mark.parametrize("name", ["out.vcf.gz", "out.vcf"])
def test_write_read_round_trip(tmp_path, phased, name):
    geno = random_genotypes(13, 37, seed=3, phased=phased)
    path = write_genotypes(geno, tmp_path / name)
    back = read_genotypes(path)
    assert back.phased == phased
    assert_same_genotypes(back, geno)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left behind


def test_written_vcf_gz_is_bgzf_that_bcftools_reads(tmp_path):
    import shutil
    import subprocess

    if shutil.which("bcftools") is None:
        pytest.skip("bcftools not installed")
    geno = random_genotypes(5, 3000, seed=4, phased=False)
    geno.variants.chrom[:] = "1"
    geno.variants.pos = np.sort(geno.variants.pos)  # tabix needs sorted positions
    path = write_vcf(geno, tmp_path / "x.vcf.gz")
    assert "ALT = A2" in gzip.open(path, "rt").read(2000)  # the header records the allele convention
    out = subprocess.run(["bcftools", "view", "-H", str(path)], capture_output=True, text=True, check=True)
    assert len(out.stdout.splitlines()) == 3000
    subprocess.run(["bcftools", "index", str(path)], check=True, capture_output=True)


def allel_counts(path):
    """Biallelic-SNP A2 counts by scikit-allel (independent of genoae's parser), variants x samples."""
    allel = pytest.importorskip("allel")
    data = allel.read_vcf(str(path), fields=["calldata/GT", "variants/POS", "variants/REF", "variants/ALT"],
                          alt_number=2)
    ref, alt = data["variants/REF"], data["variants/ALT"]
    snp = (np.char.str_len(ref.astype(str)) == 1) & (np.char.str_len(alt[:, 0].astype(str)) == 1) \
        & (alt[:, 1] == "") & (alt[:, 0] != "*") & (alt[:, 0] != ".")
    gt = data["calldata/GT"][snp]
    counts = np.where((gt < 0).any(axis=2), -1, gt.sum(axis=2))
    return data["variants/POS"][snp], counts, gt


@pytest.mark.parametrize("parts", [
    ("vcf_edge_cases", "variantannotation", "extdata_chr22.vcf.gz"),
    ("vcf_edge_cases", "variantannotation", "extdata_hapmap_exome_chr22.vcf.gz"),
    ("vcf_edge_cases", "real_multisample", "toy.1000GP.vcf.gz"),
    ("vcf_edge_cases", "real_multisample", "chr20.unphased.vcf.gz"),
    ("vcf_edge_cases", "bio2zarr", "chr22.vcf.gz"),
    ("vcf_edge_cases", "cyvcf2", "test.vcf.gz"),
])
def test_agrees_with_scikit_allel(parts):
    path = shared_path(*parts)
    geno = read_vcf(path, quiet=True)
    pos, counts, _ = allel_counts(path)
    np.testing.assert_array_equal(geno.variants.pos, pos)
    np.testing.assert_array_equal(geno.counts().T, counts)


def test_phased_1kg_haplotypes_agree_with_scikit_allel():
    path = shared_path("1kg_phase3_chr1_region_vcf", "1kg_phase3_chr1_11697036-11836540.vcf.gz")
    geno = read_vcf(path, quiet=True)
    assert geno.phased and geno.n_samples == 2504
    pos, counts, gt = allel_counts(path)
    np.testing.assert_array_equal(geno.variants.pos, pos)
    haps = geno.haplotypes()  # (N, 2, M)
    np.testing.assert_array_equal(haps.transpose(2, 0, 1), gt)


def test_crlf_line_ends_and_no_final_newline(tmp_path):
    text = (HEADER + record(1, "A", "G", "0/1", "1/1", "./.") + record(2, "C", "T", "0/0", "0/1", "0/0"))
    path = tmp_path / "crlf.vcf"
    path.write_bytes(text.replace("\n", "\r\n").rstrip("\r\n").encode())
    np.testing.assert_array_equal(read_vcf(path).counts(), [[1, 0], [2, 1], [-1, 0]])


def test_sample_meta_lines_from_other_tools_are_harmless(tmp_path):
    header = HEADER.replace("#CHROM", '##SAMPLE=<ID=S1,Description="tumour, left">\n##SAMPLE=<ID=S2,SEX=>\n#CHROM')
    geno = read_vcf(write_text(tmp_path, record(1, "A", "G", "0/1", "1/1", "0/0"), header=header))
    assert list(geno.samples.fid) == ["S1", "S2", "S3"] and list(geno.samples.sex) == [0, 0, 0]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import genoae.io.vcf as vcf_module

    geno = random_genotypes(4, 50, seed=1, phased=False)
    calls = {"n": 0}
    original = vcf_module._genotype_lines

    def fail_on_second_chunk(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return original(*args)

    monkeypatch.setattr(vcf_module, "_genotype_lines", fail_on_second_chunk)
    with pytest.raises(RuntimeError):
        write_vcf(geno, tmp_path / "x.vcf.gz", chunk=10)
    assert list(tmp_path.iterdir()) == []


def test_plain_zlib_fallback_reads_the_same(tmp_path, monkeypatch):
    import zlib

    import genoae.io.vcf as vcf_module

    geno = random_genotypes(7, 300, seed=2, phased=True)
    path = write_vcf(geno, tmp_path / "x.vcf.gz", chunk=50)
    fast = read_vcf(path)
    monkeypatch.setattr(vcf_module, "_inflate_zlib", zlib)
    slow = read_vcf(path)
    np.testing.assert_array_equal(fast.counts(), slow.counts())
    np.testing.assert_array_equal(fast.haplotypes(), geno.haplotypes())
    path.write_bytes(path.read_bytes()[:-40])  # cut into the last member
    with pytest.raises(InputError, match="cannot read"):
        read_vcf(path)


@pytest.mark.parametrize("token", ["0/0", "0/1", "1/0", "1/1", "./.", "0/.", "./1", "0|1", "1|1", ".|.", "1|.",
                                   "0", "1", ".", "0:3", "1:", ".:x", "0/1:5", "1|0:7,8", "1:1:1"])
def test_call_tables_agree_with_the_slow_parser(token):
    """The 4-byte lookup tables of the vectorised paths against the plain Python GT parser."""
    from genoae.io import vcf as v

    gt = token.split(":")[0]
    a, b, phased, haploid = v._parse_call(gt, "x", 1, "s")
    missing = a < 0 or b < 0
    code = 0b01 if missing else v._AB_TO_CODE[2 * a + b]
    status = 0 if missing else 3 if haploid else 1 if phased else 2
    bits = (a > 0 and not missing, b > 0 and not missing)
    word = int.from_bytes((token + "\t\0\0\0").encode()[:4], "little")
    key = v._LO_GENERAL[word & 0xFFFF] | v._HI_GENERAL[word >> 16]
    assert v._G_SIMPLE[key]
    assert (v._G_CODE[key], v._G_STATUS[key], tuple(v._G_BITS[key])) == (code, status, bits)
    if len(token) == 3 and not haploid:  # the fixed-width table sees exactly 'a?b<tab>'
        key = v._LO[word & 0xFFFF] | v._HI[word >> 16]
        assert key < 64
        assert (v._KEY_TO_CODE[key], v._KEY_TO_STATUS[key], tuple(v._KEY_TO_BITS[key])) == (code, status, bits)


def test_non_utf8_bytes_in_fixed_columns_do_not_crash(tmp_path):
    path = tmp_path / "latin1.vcf"
    path.write_bytes(HEADER.encode() + b"1\t5\trs\xff\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t1/1\n")
    geno = read_vcf(path)
    assert geno.variants.id[0].startswith("rs") and geno.n_variants == 1


def test_many_small_blocks_give_the_same_result(tmp_path, monkeypatch):
    import genoae.io.vcf as vcf_module

    geno = random_genotypes(5, 103, seed=9, phased=True)
    path = write_vcf(geno, tmp_path / "p.vcf")
    one_block = read_vcf(path)
    monkeypatch.setattr(vcf_module, "BATCH_CALLS", 5)  # 16 records per block
    many_blocks = read_vcf(path)
    np.testing.assert_array_equal(many_blocks.haplotypes(), one_block.haplotypes())
    np.testing.assert_array_equal(many_blocks.haplotypes(), geno.haplotypes())
    # one unphased call in the last block drops the haplotypes of the earlier blocks too
    text = path.read_text().splitlines()
    text[-1] = text[-1][: text[-1].rindex("\t")] + "\t0/1"
    path.write_text("\n".join(text) + "\n")
    mixed = read_vcf(path)
    assert not mixed.phased and "1 unphased" in mixed.info["phasing"]
    np.testing.assert_array_equal(mixed.counts()[:4], geno.counts()[:4])


def test_a_record_that_lost_a_tab_is_refused_not_skipped(tmp_path):
    """Without its INFO column the FORMAT field is a call: the record must not pass as 'no GT in FORMAT'."""
    text = HEADER + record(1, "A", "G", "0/1", "1/1", "0/0") + "1\t2\trs2\tA\tG\t.\t.\tGT\t0/1\t1/1\t0/0\n"
    (tmp_path / "lost.vcf").write_text(text)
    with pytest.raises(InputError, match="record has 2 sample columns, the header has 3") as info:
        read_genotypes(tmp_path / "lost.vcf")
    assert info.value.line == text.count("\n")


@pytest.mark.parametrize("call, fault", [("", "empty GT"), (":3", "empty GT")])
def test_empty_calls_are_refused(tmp_path, call, fault):
    (tmp_path / "e.vcf").write_text(HEADER + record(1, "A", "G", "0/1", call, "0/0"))
    with pytest.raises(InputError, match=fault):
        read_genotypes(tmp_path / "e.vcf")


def test_plink_missing_allele_code_is_not_written_as_a_base(tmp_path):
    from genoae.genotypes import Genotypes, Variants

    geno = Genotypes.from_counts(np.array([[2, 0], [2, 0]], np.int8), variants=Variants(
        chrom=np.array(["1", "1"]), pos=np.array([10, 20]), id=np.array(["rsA", "rsB"]),
        a1=np.array(["0", "C"]), a2=np.array(["T", "0"])))
    write_genotypes(geno, tmp_path / "m.vcf")
    records = [line.split("\t") for line in (tmp_path / "m.vcf").read_text().splitlines() if line[0] != "#"]
    assert [r[3:5] for r in records] == [[".", "T"], ["C", "."]]
    back = read_genotypes(tmp_path / "m.vcf", quiet=True)  # '.' reads back as PLINK's 0
    assert list(back.variants.a1) == ["0", "C"] and list(back.variants.a2) == ["T", "0"]
    np.testing.assert_array_equal(back.counts(), geno.counts())
