"""Hostile-user probes of genoae's readers, writers and commands: the figures of the robustness issue.

Generates malformed inputs, odd-but-valid inputs, nonsense options, kills mid-write, concurrent and interrupted runs
into one prefix, and malicious model files, runs each through the CLI as a user would, and classifies the outcome:

- refused cleanly: exit 2, one line ``genoae: error: ...`` on stderr (warnings on other lines are allowed);
- traceback: any other exception or exit code (for a case that should be refused);
- silent wrong: exit 0 where the input is bad, or a read whose shape or calls differ from the expected ones;
- partial output: a failed run left a file under an output name (or a stray temporary file).

Usage::

    python scripts/probe_faults.py [--only SECTION[,SECTION]] [--workdir DIR] [--verbose]

Sections: plink vcf text npy hdf5 hapt model options outputs valid kills runs malicious.
In-process cases run through ``genoae.cli.main`` in this interpreter (fast); kills and concurrent runs are
subprocesses.  Exit code 1 when any case misses.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genoae.cli import main  # noqa: E402
from genoae.genotypes import Genotypes, Samples, Variants  # noqa: E402
from genoae.io import read_genotypes, write_genotypes  # noqa: E402


@dataclass
class Case:
    """One probe: argv for ``genoae``, what must happen, and where its outputs would go."""

    section: str
    name: str
    argv: list
    expect: str = "refuse"          # refuse | ok | either
    shape: tuple | None = None      # (samples, variants) a successful read must have
    counts: np.ndarray | None = None  # the exact calls a successful read must give
    outputs: list = field(default_factory=list)  # paths that must not exist after a refusal
    cwd: Path | None = None         # run from this folder (default prefixes land here)
    outcome: str = ""
    detail: str = ""


# ------------------------------------------------------------------------------------------------- base data
def base_genotypes(n_samples=42, n_variants=120, seed=1) -> Genotypes:
    """A small admixed-looking set with 3 % missing calls; 42 samples (not a multiple of 4: padding bits)."""
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.05, 0.95, (n_variants, 2))
    q = rng.dirichlet([1, 1], n_samples)
    h = q @ freqs.T
    counts = rng.binomial(2, h).astype(np.int8)
    counts[rng.random(counts.shape) < 0.03] = -1
    variants = Variants(chrom=np.array(["1"] * n_variants), pos=np.arange(1, n_variants + 1) * 1000,
                        id=np.array([f"rs{j + 1}" for j in range(n_variants)]),
                        a1=np.array(["A"] * n_variants), a2=np.array(["G"] * n_variants))
    samples = Samples(np.array([f"ind{i + 1}" for i in range(n_samples)]))
    return Genotypes.from_counts(counts, samples=samples, variants=variants, source="probe")


def run_cli(argv):
    """Run ``genoae ARGV`` in this process: (exit code or 'exception', stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        except BaseException as error:  # noqa: BLE001 - what escapes main is exactly what we count
            import traceback

            code = "exception"
            err.write("Traceback\n" + "".join(traceback.format_exception_only(type(error), error)))
    return code, out.getvalue(), err.getvalue()


def stray_files(folder: Path, before: set) -> list:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and str(p) not in before)


def classify(case: Case, code, out: str, err: str, new_files: list):
    """Set case.outcome from what the run did."""
    error_lines = [line for line in err.strip().splitlines() if not line.startswith("genoae: warning:")]
    clean_refusal = code == 2 and len(error_lines) == 1 and error_lines[0].startswith("genoae: error:") \
        and "Traceback" not in err
    if code not in (0, 2):
        case.outcome, case.detail = "traceback", (err.strip().splitlines() or [""])[-1][:200]
        return
    if code == 2:
        if not clean_refusal:
            case.outcome, case.detail = "traceback", err.strip()[:200]
        elif new_files:
            case.outcome, case.detail = "partial", ", ".join(new_files)[:200]
        elif case.expect == "ok":
            case.outcome, case.detail = "refused valid", error_lines[0][:200]
        else:
            case.outcome, case.detail = "refused", error_lines[0][:200]
        return
    if case.expect in ("refuse", "warn"):
        warned = [line for line in err.splitlines() if line.startswith("genoae: warning:")]
        if warned and case.expect == "warn":
            case.outcome, case.detail = "warned", warned[0][:200]
        else:
            case.outcome, case.detail = "silent wrong", out.strip().replace("\n", " | ")[:200]
        return
    case.outcome = "ok"


def check_read(case: Case, path):
    """After exit 0 on an input that may be read: its shape (and calls) must be the expected ones."""
    if case.shape is None and case.counts is None:
        return
    try:
        geno = read_genotypes(path, quiet=True)
    except Exception as error:  # noqa: BLE001
        case.outcome, case.detail = "silent wrong", f"info read it, the library did not: {error}"[:200]
        return
    shape = (geno.n_samples, geno.n_variants)
    if case.shape is not None and shape != tuple(case.shape):
        case.outcome, case.detail = "silent wrong", f"read as {shape}, expected {case.shape}"
    elif case.counts is not None and not np.array_equal(geno.counts(), case.counts):
        case.outcome, case.detail = "silent wrong", "calls differ from the expected matrix"


# ------------------------------------------------------------------------------------------------- generators
def write_text(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def plink_cases(work: Path, base: Genotypes, rng) -> list:
    cases = []
    folder = work / "plink"
    folder.mkdir()
    write_genotypes(base, folder / "base.bed")
    bed, bim, fam = (folder / f"base.{e}" for e in ("bed", "bim", "fam"))
    bed_bytes, bim_lines, fam_lines = bed.read_bytes(), bim.read_text().splitlines(), fam.read_text().splitlines()
    shape = (base.n_samples, base.n_variants)

    def variant(name, bed_data=None, bim_text=None, fam_text=None, expect="refuse", shape_=None):
        stem = folder / name
        Path(f"{stem}.bed").write_bytes(bed_bytes if bed_data is None else bed_data)
        Path(f"{stem}.bim").write_text("\n".join(bim_lines) + "\n" if bim_text is None else bim_text)
        Path(f"{stem}.fam").write_text("\n".join(fam_lines) + "\n" if fam_text is None else fam_text)
        cases.append(Case("plink", name, ["info", f"{stem}.bed"], expect, shape_))

    row = (base.n_samples + 3) // 4
    variant("magic", bed_data=b"\x00\x00" + bed_bytes[2:])
    variant("mode02", bed_data=bed_bytes[:2] + b"\x02" + bed_bytes[3:])
    variant("mode00_wrong_size", bed_data=bed_bytes[:2] + b"\x00" + bed_bytes[3:])
    variant("truncated1", bed_data=bed_bytes[:-1])
    variant("truncated_row", bed_data=bed_bytes[:-row])
    variant("extra_byte", bed_data=bed_bytes + b"\x00")
    variant("extra_row", bed_data=bed_bytes + bed_bytes[3:3 + row])
    variant("header_only", bed_data=bed_bytes[:3])
    variant("two_bytes", bed_data=bed_bytes[:2])
    variant("empty_bed", bed_data=b"")
    variant("fam_minus1", fam_text="\n".join(fam_lines[:-1]) + "\n")
    variant("fam_minus2", fam_text="\n".join(fam_lines[:-2]) + "\n")
    # a .fam listing 1-2 more people than the .bed holds has the same row length: warned (not refused: a real
    # person may be homozygous A1 everywhere)
    variant("fam_plus1", fam_text="\n".join(fam_lines + ["x extra1 0 0 0 -9"]) + "\n", expect="warn")
    variant("fam_plus2", fam_text="\n".join(fam_lines + ["x extra1 0 0 0 -9", "x extra2 0 0 0 -9"]) + "\n",
            expect="warn")
    variant("fam_5cols", fam_text="\n".join(fam_lines[:3] + ["f i 0 0 0"] + fam_lines[4:]) + "\n")
    variant("fam_7cols", fam_text="\n".join(fam_lines[:3] + ["f i 0 0 0 -9 x"] + fam_lines[4:]) + "\n")
    variant("fam_empty", fam_text="")
    variant("fam_blank_lines", fam_text="\n\n\n")
    variant("fam_binary", fam_text="\x00\x01\x02\x03" * 50)
    variant("bim_minus1", bim_text="\n".join(bim_lines[:-1]) + "\n")
    variant("bim_plus1", bim_text="\n".join(bim_lines + ["1\trsX\t0\t999999\tA\tG"]) + "\n")
    variant("bim_5cols", bim_text="\n".join(bim_lines[:5] + ["1\trsX\t0\t5\tA"] + bim_lines[6:]) + "\n")
    variant("bim_pos_text", bim_text="\n".join(bim_lines[:5] + ["1\trsX\t0\tabc\tA\tG"] + bim_lines[6:]) + "\n")
    variant("bim_pos_float", bim_text="\n".join(bim_lines[:5] + ["1\trsX\t0\t5.5\tA\tG"] + bim_lines[6:]) + "\n")
    variant("bim_pos_huge", bim_text="\n".join(bim_lines[:5] + ["1\trsX\t0\t99999999999999999999999\tA\tG"]
                                              + bim_lines[6:]) + "\n")
    variant("bim_cm_text", bim_text="\n".join(bim_lines[:5] + ["1\trsX\tx\t5\tA\tG"] + bim_lines[6:]) + "\n")
    variant("bim_empty", bim_text="")
    variant("bim_binary", bim_text="\x00\xff" * 40)
    # a directory where a companion file should be
    for kind in ("bed", "bim", "fam"):
        stem = folder / f"dir_{kind}"
        for e in ("bed", "bim", "fam"):
            target = Path(f"{stem}.{e}")
            if e == kind:
                target.mkdir()
            else:
                shutil.copy(folder / f"base.{e}", target)
        cases.append(Case("plink", f"directory_as_{kind}", ["info", f"{stem}.bed"]))
    for kind in ("bim", "fam"):
        stem = folder / f"missing_{kind}"
        for e in ("bed", "bim", "fam"):
            if e != kind:
                shutil.copy(folder / f"base.{e}", Path(f"{stem}.{e}"))
        cases.append(Case("plink", f"missing_{kind}", ["info", f"{stem}.bed"]))
    cases.append(Case("plink", "no_such_prefix", ["info", folder / "nothing"]))
    # random byte edits of the .bed body: a read of the same shape, or a refusal (never another shape)
    for trial in range(12):
        data = bytearray(bed_bytes)
        for _ in range(rng.integers(1, 5)):
            data[rng.integers(3, len(data))] = rng.integers(0, 256)
        variant(f"bed_byte_edit{trial}", bed_data=bytes(data), expect="either", shape_=shape)
    # random line edits of the .bim and .fam: a line deleted, doubled, re-spaced, cut or replaced
    for kind, lines, separators in (("bim", bim_lines, ("\t", " ")), ("fam", fam_lines, (" ", "\t"))):
        for trial in range(10):
            edit = trial % 5
            text = "\n".join(_edit_line(list(lines), int(rng.integers(len(lines))), edit, separators)) + "\n"
            # re-spacing keeps a valid file; for the .fam, one more line within the same row length is warned
            # about (see fam_plus1); every other edit must be refused
            expect = "either" if edit == 2 else "warn" if edit == 1 and kind == "fam" else "refuse"
            variant(f"{kind}_line_edit{trial}", expect=expect, shape_=shape, **{f"{kind}_text": text})
    return cases


def _edit_line(lines: list, j: int, edit: int, separators: tuple) -> list:
    """Line ``j`` deleted (0), doubled (1), with two separators swapped for the other kind (2), cut in half (3) or
    replaced by garbage (4)."""
    if edit == 0:
        del lines[j]
    elif edit == 1:
        lines.insert(j, lines[j])
    elif edit == 2:
        lines[j] = lines[j].replace(separators[0], separators[1], 2)
    elif edit == 3:
        lines[j] = lines[j][: len(lines[j]) // 2]
    else:
        lines[j] = "garbage"
    return lines


def vcf_cases(work: Path, base: Genotypes, rng) -> list:
    cases = []
    folder = work / "vcf"
    folder.mkdir()
    write_genotypes(base, folder / "base.vcf")
    text = (folder / "base.vcf").read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    records = [line for line in text.splitlines() if not line.startswith("#")]
    shape = (base.n_samples, base.n_variants)

    def variant(name, body, gz=False, expect="refuse", shape_=None, raw=None):
        path = folder / (name + (".vcf.gz" if gz else ".vcf"))
        if raw is not None:
            path.write_bytes(raw)
        else:
            write_text(path, body, gz)
        cases.append(Case("vcf", name, ["info", path], expect, shape_))

    def with_record(j, new):
        lines = list(records)
        lines[j] = new
        return "\n".join(header + lines) + "\n"

    first = records[0].split("\t")
    variant("empty", "")
    variant("header_only", "\n".join(header) + "\n")
    variant("no_chrom_line", "\n".join(header[:-1] + records) + "\n")
    variant("no_fileformat", "\n".join(header[1:] + records) + "\n", expect="either", shape_=shape)
    variant("space_separated", "\n".join(header + [r.replace("\t", " ") for r in records]) + "\n")
    variant("short_record", with_record(3, "\t".join(first[:-1])))
    variant("long_record", with_record(3, "\t".join(first + ["0/1"])))
    variant("gt_allele_3", with_record(3, "\t".join(first[:9] + ["0/3"] + first[10:])))
    variant("gt_letters", with_record(3, "\t".join(first[:9] + ["a/b"] + first[10:])))
    variant("gt_empty", with_record(3, "\t".join(first[:9] + [""] + first[10:])))
    variant("pos_text", with_record(3, "\t".join(first[:1] + ["abc"] + first[2:])))
    variant("pos_negative", with_record(3, "\t".join(first[:1] + ["-5"] + first[2:])))
    variant("no_format", with_record(3, "\t".join(first[:8])))
    variant("format_without_gt", with_record(3, "\t".join(first[:8] + ["DP"] + ["3"] * base.n_samples)),
            expect="either", shape_=(base.n_samples, base.n_variants - 1))
    variant("triploid", with_record(3, "\t".join(first[:9] + ["0/1/1"] + first[10:])))
    variant("binary_garbage", None, raw=bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))
    variant("garbage_gz_name", "not a vcf at all\n", gz=False)
    (folder / "garbage.vcf.gz").write_bytes(b"\x1f\x8b" + bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    cases.append(Case("vcf", "garbage_after_gzip_magic", ["info", folder / "garbage.vcf.gz"]))
    compressed = gzip.compress(text.encode(), mtime=0)
    (folder / "truncated.vcf.gz").write_bytes(compressed[: len(compressed) // 2])
    cases.append(Case("vcf", "truncated_gz", ["info", folder / "truncated.vcf.gz"]))
    bad_crc = bytearray(compressed)
    bad_crc[-6] ^= 0xFF
    (folder / "bad_crc.vcf.gz").write_bytes(bytes(bad_crc))
    cases.append(Case("vcf", "bad_crc_gz", ["info", folder / "bad_crc.vcf.gz"]))
    flipped = bytearray(compressed)
    flipped[len(flipped) // 2] ^= 0x55
    (folder / "corrupt_middle.vcf.gz").write_bytes(bytes(flipped))
    cases.append(Case("vcf", "corrupt_deflate_stream", ["info", folder / "corrupt_middle.vcf.gz"]))
    (folder / "a_directory.vcf").mkdir()
    cases.append(Case("vcf", "directory", ["info", folder / "a_directory.vcf"]))
    # random line edits: a record's field replaced, removed or duplicated
    for trial in range(16):
        lines = list(records)
        j = int(rng.integers(len(lines)))
        fields = lines[j].split("\t")
        edit = trial % 4
        if edit == 0:
            k = int(rng.integers(9, len(fields)))
            fields[k] = rng.choice(["0/9", "x", "0|", "|", "0/1/2/3", "-1", "0:0", "1/.", "./1"])
        elif edit == 1:
            del fields[int(rng.integers(len(fields)))]
        elif edit == 2:
            fields[1] = rng.choice(["", "0x10", "1e5", "nan", "12a"])
        else:
            fields = fields[: int(rng.integers(1, len(fields)))]
        lines[j] = "\t".join(fields)
        body = "\n".join(header + lines) + "\n"
        token = fields[k] if edit == 0 else None
        valid_edit = edit == 0 and token in ("1/.", "./1", "0:0")  # half-missing and a value with a subfield
        variant(f"line_edit{trial}", body, expect="either" if valid_edit else "refuse",
                shape_=shape if valid_edit else None)
    return cases


def text_cases(work: Path, rng) -> list:
    folder = work / "text"
    folder.mkdir()
    cases = []

    def variant(name, body, expect="refuse", counts=None, gz=False, raw=None, suffix=".txt"):
        path = folder / (name + suffix + (".gz" if gz else ""))
        if raw is not None:
            path.write_bytes(raw)
        else:
            write_text(path, body, gz)
        matrix = None if counts is None else np.array(counts, np.int8)
        cases.append(Case("text", name, ["info", path], expect,
                          None if matrix is None else matrix.shape, matrix))

    # the three misreads
    variant("ids_no_header", "ind1 0 1 2\nind2 1 1 0\nind3 2 0 1\n", "ok", [[0, 1, 2], [1, 1, 0], [2, 0, 1]])
    variant("stray_token_row1", "0 1 x\n1 1 0\n2 0 1\n")
    variant("stray_value_col1", "0 1 2\n1 1 0\nx 0 1\n")
    variant("plain", "0 1 2\n1 1 0\n2 0 1\n", "ok", [[0, 1, 2], [1, 1, 0], [2, 0, 1]])
    variant("header_and_ids", "id s1 s2 s3\na 0 1 2\nb 1 1 0\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("header_no_id_name", "s1 s2 s3\na 0 1 2\nb 1 1 0\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("header_only_snps", "s1 s2 s3\n0 1 2\n1 1 0\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("missing_codes", "0 NA 2\n. 1 -1\n", "ok", [[0, -1, 2], [-1, 1, -1]])
    variant("crlf", "0 1 2\r\n1 1 0\r\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("tabs", "0\t1\t2\n1\t1\t0\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("gz_plain", "0 1 2\n1 1 0\n", "ok", [[0, 1, 2], [1, 1, 0]], gz=True)
    variant("value_3", "0 1 2\n1 3 0\n")
    variant("value_float", "0 1 2\n1 0.5 0\n")
    variant("ragged", "0 1 2\n1 1\n")
    variant("empty", "")
    variant("blank", "\n \n\t\n")
    variant("header_only", "s1 s2 s3\n")
    variant("mixed_header", "s1 1 s3\n0 1 2\n")
    variant("ids_some_rows", "a 0 1 2\n1 1 0 2\nc 2 0 1\n")
    variant("numeric_ids", "101 0 1 2\n102 1 1 0\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("header_too_long", "a b c d e\n0 1 2\n")
    variant("header_too_short", "a\n0 1 2\n1 1 0\n")
    variant("header_ids_width", "id s1 s2\na 0 1 2\nb 1 1 0\n", "ok", [[0, 1, 2], [1, 1, 0]])
    variant("binary", None, raw=bytes(rng.integers(0, 256, 400, dtype=np.uint8)))
    compressed = gzip.compress(b"0 1 2\n1 1 0\n" * 200, mtime=0)
    variant("gz_truncated", None, raw=compressed[: len(compressed) // 2], suffix=".txt.gz")
    bad = bytearray(compressed)
    bad[-6] ^= 0xFF
    variant("gz_bad_crc", None, raw=bytes(bad), suffix=".txt.gz")
    variant("gz_garbage", None, raw=b"\x1f\x8b" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)), suffix=".txt.gz")
    for trial in range(14):
        matrix = rng.integers(0, 3, (5, 6))
        lines = [" ".join(map(str, r)) for r in matrix]
        i, j = int(rng.integers(5)), int(rng.integers(6))
        tokens = lines[i].split()
        tokens[j] = str(rng.choice(["3", "x", "1.0", "-2", "22", "nan?", "0x1", "+1"]))
        lines[i] = " ".join(tokens)
        variant(f"value_edit{trial}", "\n".join(lines) + "\n")
    return cases


def npy_cases(work: Path, rng) -> list:
    folder = work / "npy"
    folder.mkdir()
    cases = []

    def variant(name, array=None, raw=None, expect="refuse", counts=None, allow_pickle=False):
        path = folder / f"{name}.npy"
        if raw is not None:
            path.write_bytes(raw)
        else:
            np.save(path, array, allow_pickle=allow_pickle)
        matrix = None if counts is None else np.asarray(counts, np.int8)
        cases.append(Case("npy", name, ["info", path], expect, None if matrix is None else matrix.shape, matrix))

    good = rng.integers(0, 3, (5, 7)).astype(np.int8)
    variant("int8", good, expect="ok", counts=good)
    with_nan = good.astype(float)
    with_nan[1, 2] = np.nan
    expected = good.copy()
    expected[1, 2] = -1
    variant("float_nan", with_nan, expect="ok", counts=expected)
    variant("three_d", good[None])
    variant("one_d", good[0])
    variant("scalar", np.array(1))
    variant("value_3", np.where(good == 2, 3, good))
    variant("half", good / 2)
    variant("strings", good.astype(str))
    variant("object_pickle", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    variant("empty_2d", np.zeros((0, 5), np.int8))
    variant("complex", good.astype(complex))
    variant("bool", good.astype(bool), expect="ok", counts=good.astype(bool).astype(np.int8))
    variant("garbage", raw=bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    variant("truncated", raw=(lambda b: b.getvalue()[:100])(_npy_bytes(rng.integers(0, 3, (50, 50)))))
    variant("inf", np.where(good == 2, np.inf, good.astype(float)))
    return cases


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer


def hdf5_cases(work: Path, base: Genotypes) -> list:
    import h5py

    folder = work / "hdf5"
    folder.mkdir()
    cases = []
    write_genotypes(base, folder / "base.h5")
    shape = (base.n_samples, base.n_variants)

    def variant(name, edit, expect="refuse", shape_=None):
        path = folder / f"{name}.h5"
        shutil.copy(folder / "base.h5", path)
        with h5py.File(path, "r+") as h5:
            edit(h5)
        cases.append(Case("hdf5", name, ["info", path], expect, shape_))

    def replace(name, value):
        def edit(h5):
            del h5[name]
            h5[name] = value
        return edit

    gt = None
    with h5py.File(folder / "base.h5", "r") as h5:
        gt = h5["calldata/GT"][()]
        pos = h5["variants/POS"][()]
    variant("gt_group", lambda h5: (h5.__delitem__("calldata/GT"), h5.create_group("calldata/GT")))
    variant("gt_missing", lambda h5: h5.__delitem__("calldata/GT"))
    variant("gt_2d_haploid", replace("calldata/GT", gt[:, :, 0]), expect="either", shape_=shape)
    variant("gt_float", replace("calldata/GT", gt.astype(float) + 0.5))
    variant("gt_scalar", replace("calldata/GT", 1))
    variant("gt_allele_5", replace("calldata/GT", np.where(gt == 1, 5, gt).astype(np.int8)),
            expect="either", shape_=None)
    variant("gt_strings", replace("calldata/GT", gt.astype("S1")))
    variant("gt_4d", replace("calldata/GT", gt[..., None]))
    variant("gt_ploidy3", replace("calldata/GT", np.concatenate([gt, gt[:, :, :1]], axis=2)))
    variant("samples_short", replace("samples", np.array([b"a", b"b"])))
    variant("samples_2d", replace("samples", np.array([[b"a"] * base.n_samples] * 2)))
    variant("samples_int", replace("samples", np.arange(base.n_samples)), expect="either", shape_=shape)
    variant("samples_missing", lambda h5: h5.__delitem__("samples"), expect="either", shape_=shape)
    variant("pos_2d", replace("variants/POS", np.stack([pos, pos], axis=1)))
    variant("pos_short", replace("variants/POS", pos[:3]))
    variant("pos_float", replace("variants/POS", pos + 0.5))
    variant("pos_strings", replace("variants/POS", np.array([b"x"] * len(pos))))
    variant("chrom_short", replace("variants/CHROM", np.array([b"1"])))
    variant("ref_2d", replace("variants/REF", np.array([[b"A", b"C"]] * len(pos))))
    variant("alt_3d", replace("variants/ALT", np.zeros((len(pos), 1, 1), "S1")))
    packed_path = folder / "packed.h5"
    write_genotypes_packed(base, packed_path)

    def packed_variant(name, value, expect="refuse"):
        path = folder / f"{name}.h5"
        shutil.copy(packed_path, path)
        with h5py.File(path, "r+") as h5:
            del h5["calldata/packed"]
            h5["calldata/packed"] = value
        cases.append(Case("hdf5", name, ["info", path], expect))

    with h5py.File(packed_path, "r") as h5:
        packed = h5["calldata/packed"][()]
    packed_variant("packed_float", packed.astype(float))
    packed_variant("packed_scalar", 7)
    packed_variant("packed_int64_big", packed.astype(np.int64) + 300)
    packed_variant("packed_negative", packed.astype(np.int16) - 1)
    packed_variant("packed_short_rows", packed[:, :-1])
    packed_variant("packed_1d", packed[0])
    (folder / "not_hdf5.h5").write_text("hello\n")
    cases.append(Case("hdf5", "not_hdf5", ["info", folder / "not_hdf5.h5"]))
    (folder / "truncated.h5").write_bytes((folder / "base.h5").read_bytes()[:2000])
    cases.append(Case("hdf5", "truncated", ["info", folder / "truncated.h5"]))
    with h5py.File(folder / "empty.h5", "w"):
        pass
    cases.append(Case("hdf5", "empty_file", ["info", folder / "empty.h5"]))
    (folder / "dir.h5").mkdir()
    cases.append(Case("hdf5", "directory", ["info", folder / "dir.h5"]))
    return cases


def write_genotypes_packed(genotypes, path):
    from genoae.io.hdf5 import write_hdf5

    write_hdf5(genotypes, path, layout="packed")


def hapt_cases(work: Path, rng) -> list:
    folder = work / "hapt"
    folder.mkdir()
    cases = []
    haps = rng.integers(0, 2, (8, 10))
    lines = [f"POP ind{i // 2}_{'AB'[i % 2]} " + " ".join(map(str, h)) for i, h in enumerate(haps)]

    def variant(name, body=None, raw=None, expect="refuse", shape_=None, suffix=".hapt"):
        path = folder / (name + suffix)
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text(body)
        cases.append(Case("hapt", name, ["info", path], expect, shape_))

    variant("good", "\n".join(lines) + "\n", expect="ok", shape_=(4, 10))
    variant("odd_lines", "\n".join(lines[:-1]) + "\n")
    variant("allele_2", "\n".join(lines[:-1] + [lines[-1][:-1] + "2"]) + "\n")
    variant("ragged", "\n".join(lines[:-1] + [lines[-1][:-2]]) + "\n")
    variant("two_columns", "POP ind0\n" * 2)
    variant("empty", "")
    compressed = gzip.compress(("\n".join(lines) + "\n").encode() * 50, mtime=0)
    variant("gz_truncated", raw=compressed[: len(compressed) // 2], suffix=".hapt.gz")
    bad = bytearray(compressed)
    bad[-6] ^= 0xFF
    variant("gz_bad_crc", raw=bytes(bad), suffix=".hapt.gz")
    variant("gz_garbage", raw=b"\x1f\x8b\x08" + bytes(rng.integers(0, 256, 100, dtype=np.uint8)), suffix=".hapt.gz")
    path = folder / "legend_short.hapt"
    path.write_text("\n".join(lines) + "\n")
    legend = folder / "legend_short.legend"
    legend.write_text("id position a0 a1\n" + "".join(f"1:{j} {j} A G\n" for j in range(1, 5)))
    cases.append(Case("hapt", "legend_short", ["info", path]))
    path = folder / "legend_bad_pos.hapt"
    path.write_text("\n".join(lines) + "\n")
    (folder / "legend_bad_pos.legend").write_text("id position a0 a1\n" + "".join(
        f"1:{j} {'x' if j == 3 else j} A G\n" for j in range(1, 11)))
    cases.append(Case("hapt", "legend_bad_pos", ["info", path]))
    return cases


def model_cases(work: Path, base: Genotypes) -> list:
    """``project`` with malformed model .json files (and .pt files)."""
    folder = work / "model"
    folder.mkdir()
    write_genotypes(base, folder / "data.bed")
    code, out, err = run_cli(["admix", folder / "data.bed", "-k", "2", "-o", folder / "fit", "--quiet"])
    if code != 0:
        raise RuntimeError(f"probe setup: admix failed: {err}")
    meta = json.loads((folder / "fit.2.model.json").read_text())
    cases = []

    def variant(name, edit=None, text=None, pt_bytes=None):
        stem = folder / f"{name}.2.model"
        shutil.copy(folder / "fit.2.model.pt", f"{stem}.pt")
        if pt_bytes is not None:
            Path(f"{stem}.pt").write_bytes(pt_bytes)
        if text is None:
            data = json.loads(json.dumps(meta))
            edit(data)
            text = json.dumps(data)
        Path(f"{stem}.json").write_text(text)
        out_prefix = folder / f"out_{name}"
        cases.append(Case("model", name, ["project", folder / "data.bed", "--model", f"{stem}.pt", "-o", out_prefix],
                          outputs=[f"{out_prefix}.2.Q", f"{out_prefix}.h5", f"{out_prefix}.log"]))

    variant("invalid_json", text="{not json")
    variant("empty_json", text="")
    variant("json_list", text="[1, 2, 3]")
    variant("json_null", text="null")
    variant("no_format", lambda d: d.pop("format"))
    variant("no_K", lambda d: d.pop("K"))
    variant("K_string", lambda d: d.update(K="two"))
    variant("K_zero", lambda d: d.update(K=0))
    variant("K_float", lambda d: d.update(K=2.5))
    variant("K_mismatch", lambda d: d.update(K=3))
    variant("n_variants_negative", lambda d: d.update(n_variants=-4))
    variant("version_missing", lambda d: d.pop("version"))
    variant("version_1", lambda d: d.update(version=1))
    variant("n_variants_mismatch", lambda d: d.update(n_variants=7))
    variant("no_variants", lambda d: d.pop("variants"))
    variant("variants_list", lambda d: d.update(variants=[1, 2]))
    variant("variants_missing_column", lambda d: d["variants"].pop("pos"))
    variant("variants_short", lambda d: d["variants"].update(pos=d["variants"]["pos"][:3]))
    variant("variants_pos_text", lambda d: d["variants"].update(pos=["x"] * len(d["variants"]["pos"])))
    variant("variants_extra_column", lambda d: d["variants"].update(colour=[1]))
    variant("populations_int", lambda d: d.update(populations=5))
    variant("weights_garbage", lambda d: None, pt_bytes=b"garbage")
    variant("weights_empty", lambda d: None, pt_bytes=b"")
    return cases


def option_cases(work: Path, base: Genotypes) -> list:
    """Nonsense option values: refused by click before any work."""
    folder = work / "options"
    folder.mkdir()
    write_genotypes(base, folder / "data.bed")
    data = folder / "data.bed"
    cases = []
    bad = [("threads0", ["--threads", "0"]), ("threads_neg", ["--threads", "-1"]),
           ("max_iter0", ["--max-iter", "0"]), ("reference_fraction0", ["--reference-fraction", "0"]),
           ("reference_fraction1", ["--reference-fraction", "1"]),
           ("reference_fraction_nan", ["--reference-fraction", "nan"]),
           ("max_iter_neg", ["--max-iter", "-5"]), ("tol_nan", ["--tol", "nan"]), ("tol0", ["--tol", "0"]),
           ("tol_neg", ["--tol", "-1e-3"]), ("tol_inf", ["--tol", "inf"]), ("cv1", ["--cv", "1"]),
           ("cv_neg", ["--cv", "-2"]), ("cv_huge", ["--cv", "100000"]), ("empty_out", ["-o", ""]),
           ("k0", ["-k", "0"]), ("k_text", ["-k", "abc"]), ("k_range_backwards", ["-k", "5-2"]),
           ("k_too_big", ["-k", "500"]), ("device_bogus", ["--device", "tpu"]), ("seed_text", ["--seed", "x"]),
           ("precision_bogus", ["--precision", "half"])]
    for name, extra in bad:
        argv = ["admix", data, "--quiet"] + (["-k", "2"] if "-k" not in extra else []) + extra
        if "-o" not in extra:
            argv += ["-o", folder / f"out_{name}"]
        cases.append(Case("options", name, argv, outputs=[folder / f"out_{name}.h5", folder / f"out_{name}.2.Q"]))
    for name, extra in [("vae_epochs_neg", ["--epochs", "-1"]), ("vae_block0", ["--block-size", "0"]),
                        ("vae_batch0", ["--batch-size", "0"]), ("vae_lr_neg", ["--lr", "-1"]),
                        ("vae_validation_1", ["--validation", "1.5"]), ("vae_beta_nan", ["--beta", "nan"]),
                        ("vae_latent0", ["--latent-dim", "0"]), ("vae_hidden0", ["--hidden", "0"])]:
        cases.append(Case("options", name, ["vae", "train", data, "-o", folder / f"{name}.pt", "--quiet"] + extra,
                          outputs=[folder / f"{name}.pt"]))
    for name, extra in [("sample_n0", ["-n", "0"]), ("sample_n_neg", ["-n", "-5"]),
                        ("sample_temperature_neg", ["-n", "5", "--temperature", "-1"])]:
        cases.append(Case("options", name, ["vae", "sample", folder / "none.pt", "-o", folder / f"{name}.vcf"]
                          + extra, outputs=[folder / f"{name}.vcf"]))
    for name, extra in [("convert_maf_neg", ["--maf", "-0.1"]), ("convert_missing_2", ["--max-missing", "2"])]:
        cases.append(Case("options", name, ["convert", data, folder / f"{name}.vcf"] + extra,
                          outputs=[folder / f"{name}.vcf"]))
    return cases


def output_cases(work: Path, base: Genotypes) -> list:
    """Outputs that would overwrite an input, land under a file, in a directory, or somewhere unwritable."""
    folder = work / "outputs"
    folder.mkdir()
    write_genotypes(base, folder / "geno.h5")
    write_genotypes(base, folder / "geno.bed")
    write_genotypes(base, folder / "geno.vcf")
    np.save(folder / "geno.npy", base.counts())
    (folder / "afile").write_text("x\n")
    (folder / "adir").mkdir()
    cases = [
        Case("outputs", "admix_h5_default_prefix", ["admix", "geno.h5", "-k", "2", "--quiet"], cwd=folder),
        Case("outputs", "admix_npy_default_prefix_beside_h5", ["admix", "geno.npy", "-k", "2", "--quiet"],
             cwd=folder),
        Case("outputs", "admix_onto_bed_prefix", ["admix", folder / "geno.bed", "-k", "2", "-o", folder / "geno",
                                                  "--quiet"]),
        Case("outputs", "admix_under_file", ["admix", folder / "geno.bed", "-k", "2", "-o", folder / "afile" / "x",
                                             "--quiet"]),
        Case("outputs", "admix_unwritable", ["admix", folder / "geno.bed", "-k", "2", "-o", "/proc/genoae_probe/x",
                                             "--quiet"]),
        Case("outputs", "admix_prefix_is_dir", ["admix", folder / "geno.bed", "-k", "2", "-o", f"{folder}/adir/",
                                                "--quiet"]),
        Case("outputs", "project_prefix_empty", ["project", folder / "geno.bed", "--model", folder / "none.pt",
                                                 "-o", ""]),
        Case("outputs", "convert_onto_input", ["convert", folder / "geno.vcf", folder / "geno.vcf"]),
        Case("outputs", "convert_bed_onto_itself", ["convert", folder / "geno.bed", folder / "geno.bed"]),
        Case("outputs", "convert_to_dir", ["convert", folder / "geno.bed", folder / "adir"]),
        Case("outputs", "convert_to_dir_ext", ["convert", folder / "geno.bed", folder / "adir2.vcf"]),
        Case("outputs", "convert_under_file", ["convert", folder / "geno.bed", folder / "afile" / "x.vcf"]),
        Case("outputs", "convert_unwritable", ["convert", folder / "geno.bed", "/proc/genoae_probe/x.vcf"]),
        Case("outputs", "convert_npy_onto_npy", ["convert", folder / "geno.npy", folder / "geno.npy"]),
        Case("outputs", "convert_h5_onto_h5", ["convert", folder / "geno.h5", folder / "geno.h5"]),
        Case("outputs", "vae_train_onto_input", ["vae", "train", folder / "geno.vcf", "-o", folder / "geno.vcf",
                                                 "--quiet", "--epochs", "1"]),
        Case("outputs", "admix_h5_prefix_is_genotypes", ["admix", folder / "geno.bed", "-k", "2", "-o",
                                                         folder / "geno", "--quiet"]),
    ]
    (folder / "adir2.vcf").mkdir()
    for case in cases:
        case.outputs = []
    # all-missing and all-monomorphic data
    counts = base.counts()
    for name, matrix in [("all_missing", np.full_like(counts, -1)), ("all_monomorphic", np.zeros_like(counts)),
                         ("one_variant", counts[:, :1]), ("one_sample", counts[:1]),
                         ("person_no_calls", np.vstack([counts[:-1], np.full((1, counts.shape[1]), -1)]))]:
        np.save(folder / f"{name}.npy", matrix)
        expect = "either" if name == "one_variant" else "refuse"
        cases.append(Case("outputs", f"admix_{name}", ["admix", folder / f"{name}.npy", "-k", "2", "-o",
                                                       folder / f"run_{name}", "--quiet"],
                          expect=expect, outputs=[folder / f"run_{name}.h5"] if expect == "refuse" else []))
    return cases


def valid_cases(work: Path, base: Genotypes, rng) -> list:
    """Odd but valid inputs: each must be read, with the calls of the base set."""
    folder = work / "valid"
    folder.mkdir()
    cases = []
    counts = base.counts()
    shape = counts.shape
    write_genotypes(base, folder / "base.vcf")
    text = (folder / "base.vcf").read_text()
    path = write_text(folder / "trailing_tab.vcf", text.replace("\n", "\t\n"))  # an empty sample name: refused
    cases.append(Case("valid", "vcf_trailing_tab_refused", ["info", path], "refuse"))
    for name, body in [("crlf", text.replace("\n", "\r\n")),
                       ("no_trailing_newline", text.rstrip("\n")),
                       ("blank_line_end", text + "\n\n"),
                       ("extra_format", _vcf_extra_format(text)),
                       ("phased_bars", _vcf_phase(text))]:
        path = write_text(folder / f"{name}.vcf", body)
        cases.append(Case("valid", f"vcf_{name}", ["info", path], "ok", shape, counts))
    path = write_text(folder / "gz.vcf.gz", text, gz=True)
    cases.append(Case("valid", "vcf_gz", ["info", path], "ok", shape, counts))
    # sizes around the byte boundary of the .bed rows
    for n in (1, 2, 3, 4, 5, 7, 8, 9):
        sub = base.subset_samples(np.arange(n)) if hasattr(base, "subset_samples") else None
        if sub is None:
            sub = Genotypes.from_counts(counts[:n], samples=Samples(base.samples.iid[:n]), variants=base.variants)
        write_genotypes(sub, folder / f"n{n}.bed")
        cases.append(Case("valid", f"bed_n{n}", ["info", folder / f"n{n}.bed"], "ok", (n, shape[1]), counts[:n]))
    for name in ("data.v2", "with space"):
        write_genotypes(base, folder / f"{name}.bed")
        cases.append(Case("valid", f"prefix_{name.replace(' ', '_')}", ["info", folder / name], "ok", shape, counts))
    bim = (folder / "data.v2.bim").read_text()
    (folder / "data.v2.bim").write_text(bim.replace("\t", "  "))
    cases.append(Case("valid", "bim_spaces", ["info", folder / "data.v2.bed"], "ok", shape, counts))
    (folder / "data.v2.bim").write_text(bim.replace("\n", "\r\n"))
    cases.append(Case("valid", "bim_crlf", ["info", folder / "data.v2.bed"], "ok", shape, counts))
    write_genotypes(base, folder / "base.h5")
    cases.append(Case("valid", "h5", ["info", folder / "base.h5"], "ok", shape, counts))
    np.save(folder / "base.npy", counts)
    cases.append(Case("valid", "npy", ["info", folder / "base.npy"], "ok", shape, counts))
    np.save(folder / "base_f32.npy", np.where(counts < 0, np.nan, counts).astype(np.float32))
    cases.append(Case("valid", "npy_f32", ["info", folder / "base_f32.npy"], "ok", shape, counts))
    body = "\n".join(f"{base.samples.iid[i]} " + " ".join("NA" if v < 0 else str(v) for v in row)
                     for i, row in enumerate(counts)) + "\n"
    write_text(folder / "ids.txt", body)
    cases.append(Case("valid", "text_ids", ["info", folder / "ids.txt"], "ok", shape, counts))
    header = "id " + " ".join(base.variants.id) + "\n"
    write_text(folder / "ids_header.txt.gz", header + body, gz=True)
    cases.append(Case("valid", "text_ids_header_gz", ["info", folder / "ids_header.txt.gz"], "ok", shape, counts))
    # round trips through genoae's writers: names with spaces, tabs, odd characters must survive or be refused
    odd = Genotypes.from_counts(counts, samples=Samples(np.array([f"s {i}\tx" if i % 3 == 0 else f"s{i}"
                                                                  for i in range(shape[0])])),
                                variants=Variants(chrom=base.variants.chrom, pos=base.variants.pos,
                                                  id=np.array([f"rs {j}" for j in range(shape[1])]),
                                                  a1=base.variants.a1, a2=base.variants.a2), source="odd")
    from genoae.io.hdf5 import write_hdf5

    write_hdf5(odd, folder / "odd_names.h5")
    for target in ("odd.bed", "odd.vcf", "odd.vcf.gz", "odd.h5"):
        out = folder / f"rt_{target}"
        cases.append(Case("valid", f"roundtrip_{target}", ["convert", folder / "odd_names.h5", out], "ok",
                          shape, counts))
        cases[-1].readback = out
    # plink2 reads what genoae writes
    return cases


def _vcf_extra_format(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        fields = line.split("\t")
        fields[8] = "GT:DP:GQ"
        fields[9:] = [f"{g}:12:99" for g in fields[9:]]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def _vcf_phase(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        fields = line.split("\t")
        fields[9:] = [g.replace("/", "|") if "." not in g else g for g in fields[9:]]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def malicious_cases(work: Path, base: Genotypes) -> list:
    """Model files whose pickle would run code: the marker file must never appear."""
    folder = work / "malicious"
    folder.mkdir()
    write_genotypes(base, folder / "data.bed")
    run_cli(["admix", folder / "data.bed", "-k", "2", "-o", folder / "fit", "--quiet"])
    cases = []
    import pickle
    import zipfile

    marker = folder / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import torch

    payloads = {
        "raw_pickle": pickle.dumps(Payload()),
        "torch_save_object": _torch_bytes(torch, {"state": Payload()}),
        "torch_save_list": _torch_bytes(torch, [Payload()]),
        "pickle_protocol0": pickle.dumps(Payload(), protocol=0),
        "pickle_in_zip": _zip_bytes(zipfile, pickle.dumps(Payload())),
    }
    for name, blob in payloads.items():
        stem = folder / f"{name}.2.model"
        Path(f"{stem}.pt").write_bytes(blob)
        shutil.copy(folder / "fit.2.model.json", f"{stem}.json")
        case = Case("malicious", f"admix_model_{name}", ["project", folder / "data.bed", "--model", f"{stem}.pt",
                                                         "-o", folder / f"out_{name}"])
        case.marker = marker
        cases.append(case)
        vae_path = folder / f"{name}.vae.pt"
        vae_path.write_bytes(blob)
        case = Case("malicious", f"vae_model_{name}", ["vae", "sample", vae_path, "-n", "3", "-o",
                                                       folder / f"out_{name}.vcf"])
        case.marker = marker
        cases.append(case)
    return cases


def _torch_bytes(torch, obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _zip_bytes(zipfile, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", data)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------- subprocess probes
def genoae_command(args):
    return [sys.executable, "-m", "genoae", *map(str, args)]


def _default_sigint():
    """In the child: Ctrl-C as in a terminal.  A probe started in the background (``cmd &`` in a script) has
    SIGINT ignored, which its children inherit, and then Python installs no KeyboardInterrupt at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_probes(work: Path, n_trials: int, rng) -> list:
    """Kill ``convert`` and ``admix`` at random moments: every output is either absent or whole and readable."""
    folder = work / "kills"
    folder.mkdir()
    big = base_genotypes(n_samples=2000, n_variants=30000, seed=3)  # convert ~2 s, admix ~15 s: kills land inside
    write_genotypes(big, folder / "big.bed")
    cases = []
    targets = ["out.h5", "out.vcf.gz", "out.bed", "out.vcf", "out.npy"]
    for trial in range(n_trials):
        kind = trial % 6
        with contextlib.suppress(FileNotFoundError):
            (folder / "out.lock").unlink()  # a SIGKILL leaves it; the next run takes over a dead process's lock
        for leftover in folder.glob("out*"):
            leftover.unlink()
        for leftover in folder.glob(".out*"):
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        if kind < 5:
            args = ["convert", folder / "big.bed", folder / targets[kind]]
        else:
            args = ["admix", folder / "big.bed", "-k", "2", "-o", folder / "out", "--quiet"]
        sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGINT
        delay = float(rng.uniform(0.4, 2.0) if kind < 5 else rng.uniform(1.0, 6.0))
        process = subprocess.Popen(genoae_command(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=folder, start_new_session=True, preexec_fn=_default_sigint)
        time.sleep(delay)
        finished_first = process.poll() is not None
        if not finished_first:
            os.killpg(process.pid, sig)
        _, err = process.communicate(timeout=120)
        case = Case("kills", f"{'kill9' if sig == signal.SIGKILL else 'ctrl-c'}_{args[0]}_{trial}",
                    args, expect="either")
        problems = []
        outputs = sorted(folder.glob("out*"))
        for out in outputs:
            if out.suffix in (".bim", ".fam", ".log", ".json", ".P", ".pt") or out.name.endswith(".Q"):
                continue
            try:
                geno = read_genotypes(out, quiet=True) if out.suffix != ".h5" or kind < 5 else None
                if out.suffix == ".h5" and kind == 5:
                    from genoae.io.results import read_results_h5

                    read_results_h5(out)
                elif geno is not None and (geno.n_samples, geno.n_variants) != (2000, 30000):
                    problems.append(f"{out.name} has shape {(geno.n_samples, geno.n_variants)}")
            except Exception as error:  # noqa: BLE001
                problems.append(f"{out.name} unreadable: {type(error).__name__}")
        if sig == signal.SIGINT and not finished_first:
            if process.returncode == 0:
                problems.append("Ctrl-C ignored: exit 0")
            if "Traceback" in err.decode(errors="replace"):
                problems.append("traceback on Ctrl-C")
            temps = sorted(p.name for p in folder.glob(".out*")) + sorted(p.name for p in folder.glob("out.lock"))
            if temps:
                problems.append(f"temporary files left after Ctrl-C: {temps}")
            if kind == 5 and outputs:
                problems.append(f"outputs after Ctrl-C: {[p.name for p in outputs]}")
        case.outcome = "corrupt" if problems else "ok"
        case.detail = "; ".join(problems) + (" (finished before the signal)" if finished_first else "")
        cases.append(case)
    return cases


def run_probes(work: Path, base: Genotypes) -> list:
    """Concurrent runs into one prefix, and an interrupted rerun: a prefix never holds two runs' files."""
    folder = work / "runs"
    folder.mkdir()
    data_a = base_genotypes(n_samples=1000, n_variants=8000, seed=5)
    data_b = base_genotypes(n_samples=1000, n_variants=8000, seed=6)
    write_genotypes(data_a, folder / "a.bed")
    write_genotypes(data_b, folder / "b.bed")
    cases = []
    for trial in range(4):
        prefix = folder / f"same{trial}"
        args = lambda data: genoae_command(["admix", folder / data, "-k", "2", "-o", prefix,  # noqa: E731
                                            "--quiet"])
        first = subprocess.Popen(args("a.bed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3 * trial)
        second = subprocess.Popen(args("b.bed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first.communicate(timeout=300)
        second.communicate(timeout=300)
        case = Case("runs", f"concurrent_{trial}", ["admix x2", prefix], "either")
        codes = (first.returncode, second.returncode)
        problems = []
        if codes == (0, 0):
            problems.append("both runs exited 0 into one prefix")
        problems += _mixed(prefix)
        case.outcome = "mixed" if problems else "ok"
        case.detail = f"exit codes {codes}; " + "; ".join(problems)
        cases.append(case)
    for trial in range(4):
        prefix = folder / f"rerun{trial}"
        subprocess.run(genoae_command(["admix", folder / "a.bed", "-k", "2,3", "-o", prefix,
                                       "--quiet"]), check=True, capture_output=True)
        process = subprocess.Popen(genoae_command(["admix", folder / "b.bed", "-k", "2,3", "-o", prefix,
                                                   "--quiet"]), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True, preexec_fn=_default_sigint)
        time.sleep(2.5 + 1.0 * trial)
        finished_first = process.poll() is not None
        if not finished_first:
            os.killpg(process.pid, signal.SIGKILL if trial % 2 else signal.SIGINT)
        process.communicate(timeout=120)
        problems = _mixed(prefix)
        case = Case("runs", f"interrupted_rerun_{trial}", ["admix", prefix], "either")
        case.outcome = "mixed" if problems else "ok"
        case.detail = "; ".join(problems) + (" (finished before the signal)" if finished_first else "")
        cases.append(case)
    return cases


def _mixed(prefix: Path) -> list:
    """Files of PREFIX that come from different runs (told apart by the input recorded in the .log/.h5 and by
    the Q's number of rows... both inputs have 400 rows, so compare each Q against the .h5's Q)."""
    from genoae.io.qp import read_q
    from genoae.io.results import read_results_h5

    h5 = Path(f"{prefix}.h5")
    qs = sorted(prefix.parent.glob(prefix.name + ".*.Q"))
    if not h5.exists():
        return [f"Q files without their .h5: {[q.name for q in qs]}"] if qs else []
    try:
        results, _, _ = read_results_h5(h5)
    except Exception as error:  # noqa: BLE001
        return [f"{h5.name} unreadable: {error}"]
    problems = []
    for q_path in qs:
        K = int(q_path.name.split(".")[-2])
        if K not in results:
            problems.append(f"{q_path.name} is not in {h5.name}")
            continue
        if not np.allclose(read_q(q_path), results[K].Q, atol=2e-6):
            problems.append(f"{q_path.name} differs from {h5.name}'s K={K}")
    log = Path(f"{prefix}.log")
    if log.exists() and h5.exists():
        source = log.read_text().splitlines()[0]
        settings_input = results[min(results)].settings.get("input", "")
        if settings_input and settings_input not in source:
            problems.append(f"{log.name} is from another run than {h5.name}")
    return problems


# ------------------------------------------------------------------------------------------------- driver
def execute(case: Case, work: Path):
    before = {str(p) for p in work.rglob("*") if p.is_file()}
    marker = getattr(case, "marker", None)
    old_cwd = os.getcwd()
    if case.cwd is not None:
        os.chdir(case.cwd)
    try:
        code, out, err = run_cli(case.argv)
    finally:
        os.chdir(old_cwd)
    new_files = [f for f in stray_files(work, before) if not f.endswith(".lock")]
    if case.expect == "refuse" or code != 0:
        leftovers = [str(p) for p in case.outputs if Path(p).exists()]
        if code != 0:
            classify(case, code, out, err, sorted(set(new_files) | set(leftovers)))
        else:
            classify(case, code, out, err, [])
    else:
        classify(case, code, out, err, [])
        if case.outcome == "ok" and case.argv[0] == "info":
            check_read(case, case.argv[1])
        elif case.outcome == "ok" and hasattr(case, "readback"):
            check_read(case, case.readback)
    if case.expect == "either" and case.outcome == "silent wrong":
        case.outcome = "ok"
        if case.argv[0] == "info":
            check_read(case, case.argv[1])
    if marker is not None and Path(marker).exists():
        case.outcome, case.detail = "executed", "the pickle payload ran"
        Path(marker).unlink()


SECTIONS = ["plink", "vcf", "text", "npy", "hdf5", "hapt", "model", "options", "outputs", "valid", "malicious",
            "kills", "runs"]


def main_probe(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    sections = args.only.split(",")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="genoae_probe_"))
    if work.exists() and args.workdir:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2026)
    base = base_genotypes()
    makers = {"plink": lambda: plink_cases(work, base, rng), "vcf": lambda: vcf_cases(work, base, rng),
              "text": lambda: text_cases(work, rng), "npy": lambda: npy_cases(work, rng),
              "hdf5": lambda: hdf5_cases(work, base), "hapt": lambda: hapt_cases(work, rng),
              "model": lambda: model_cases(work, base), "options": lambda: option_cases(work, base),
              "outputs": lambda: output_cases(work, base), "valid": lambda: valid_cases(work, base, rng),
              "malicious": lambda: malicious_cases(work, base)}
    cases = []
    old_cwd = os.getcwd()
    os.chdir(work)
    try:
        for section in sections:
            if section in makers:
                made = makers[section]()
                for case in made:
                    execute(case, work)
                cases += made
            elif section == "kills":
                cases += kill_probes(work, args.kills, rng)
            elif section == "runs":
                cases += run_probes(work, base)
    finally:
        os.chdir(old_cwd)
    report(cases, args.verbose)
    bad = [c for c in cases if c.outcome not in ("ok", "refused", "warned")]
    return 1 if bad else 0


def report(cases, verbose):
    rows = {}
    for case in cases:
        rows.setdefault(case.section, []).append(case)
    print("| section | cases | read / ran correctly | refused cleanly | warned | traceback | silent wrong "
          "| partial output | other misses |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = np.zeros(8, int)
    for section, group in rows.items():
        counts = np.array([len(group), sum(c.outcome == "ok" for c in group),
                           sum(c.outcome == "refused" for c in group), sum(c.outcome == "warned" for c in group),
                           sum(c.outcome == "traceback" for c in group),
                           sum(c.outcome == "silent wrong" for c in group), sum(c.outcome == "partial" for c in group),
                           sum(c.outcome in ("refused valid", "corrupt", "mixed", "executed") for c in group)])
        totals += counts
        print(f"| {section} | " + " | ".join(map(str, counts)) + " |")
    print("| **all** | " + " | ".join(map(str, totals)) + " |")
    for section in ("kills", "runs"):
        group = rows.get(section, [])
        if group:
            landed = sum("finished before" not in c.detail for c in group)
            print(f"{section}: {landed} of {len(group)} signals landed while the command was still running")
    for case in cases:
        if case.outcome not in ("ok", "refused", "warned") or verbose:
            print(f"  {case.outcome:>13}  {case.section}/{case.name}: {case.detail}")


if __name__ == "__main__":
    sys.exit(main_probe())
