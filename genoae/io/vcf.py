"""VCF / bgzipped VCF genotypes: a chunked, vectorised reader and a BGZF writer.

Reading keeps biallelic SNPs (REF and ALT one character each) and monomorphic ones (one REF base, ALT ``.``, kept as
PLINK keeps them, with A2 = PLINK's missing allele code ``0``), and skips, counting them, multi-allelic, symbolic
(``<DEL>``, ``*``, breakends), indel/MNP records, reference blocks (a longer REF with ALT ``.``) and records whose
FORMAT has no GT.  The counted allele is ALT (= PLINK A2), the ADMIXTURE convention.

Why not ``allel.read_vcf``: scikit-allel drops the phase of ``0|1`` calls, cannot tell a haploid ``1`` from ``1/.``,
and pads short rows silently without saying which line was short.  This reader splits each line's fixed columns in
Python (one ``split`` per record) and decodes all genotype calls of a block of records at once with NumPy on the raw
bytes: the common calls (``0/1``, ``1|0``, ``./.``, haploid ``1``, with or without trailing ``:DP...`` sub-fields) are
read by looking at four byte offsets per call; the rare rest (``10/0``, VCF 4.4 ``/0|1``, triploid ...) goes through
a small Python parser that also produces the error messages.  The test suite checks it against scikit-allel.

Genotype rules
--------------
- ``./.``, ``.``, ``0/.``, ``./1`` -> missing call.
- Haploid calls (``0``, ``1``, e.g. male chrX) are read as homozygous (``0/0``, ``1/1``), as PLINK does; their number
  is reported.  Calls of ploidy > 2 are refused with the line and sample.
- An allele index other than 0/1 in a kept SNP record is an error naming line and sample.
- When every observed diploid call in the kept records is phased (``|``), haplotypes are kept
  (``Genotypes.haplotypes_packed``); otherwise they are dropped and the number of unphased calls is reported.
"""
from __future__ import annotations

import itertools
import os
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

try:  # ISA-L inflates about twice as fast as zlib; the files are the same gzip/BGZF either way
    from isal import isal_zlib as _inflate_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency, zlib is the fallback
    _inflate_zlib = zlib

from genoae.errors import InputError
from genoae.genotypes import ALLELE_CONVENTION, Genotypes, Samples, Variants, pack_codes, unpack_calls
from genoae.io.atomic import atomic_path, check_interrupt
from genoae.io.names import TAB_OR_NEWLINE, safe_names

# calls decoded together: about 2**18 per block keeps the block's index arrays (8 bytes per call) at a few MB, which
# the allocator reuses; blocks of 2 M calls were ~10% slower from page faults on fresh memory
BATCH_CALLS = 1 << 18
BATCH_BYTES = 64 << 20

_TAB, _NEWLINE, _COLON, _SLASH, _PIPE, _DOT, _ZERO, _ONE = (ord(c) for c in "\t\n:/|.01")

SKIP_REASONS = ("multi-allelic", "symbolic ALT", "indel/MNP", "no ALT allele", "no GT in FORMAT")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as probe:
        return probe.read(2) == b"\x1f\x8b"


def _blocks(path: Path, raw_size: int = 1 << 20):
    """Decompressed (or plain) bytes of a file in large blocks.

    gzip and BGZF (many concatenated gzip members) are inflated member by member with ISA-L (``isal``; ``zlib``
    when it is not installed) directly: the ``gzip`` module adds a Python-level CRC pass and small reads.
    """
    with open(path, "rb") as handle:
        if not _is_gzip(path):
            while True:
                block = handle.read(raw_size * 8)
                if not block:
                    return
                yield block
        inflater = _inflate_zlib.decompressobj(31)
        in_member = False
        while True:
            raw = handle.read(raw_size)
            if not raw:
                break
            pieces = []
            while raw:
                pieces.append(inflater.decompress(raw))
                in_member = True
                if inflater.eof:
                    raw = inflater.unused_data
                    inflater = _inflate_zlib.decompressobj(31)
                    in_member = False
                    if raw and not raw.startswith(b"\x1f\x8b"):
                        if raw.strip(b"\0"):
                            raise EOFError("trailing bytes after the last gzip member are not gzip data")
                        raw = b""
                else:
                    raw = b""
            yield b"".join(pieces)
        if in_member:
            raise EOFError("compressed file ended before the end-of-stream marker (truncated?)")


def _bcftools_blocks(path: Path, region: str | None = None, raw_size: int = 1 << 22):
    """Uncompressed VCF text of a BCF (or a region of an indexed VCF/BCF) from ``bcftools view``, in blocks.

    htslib decodes BCF and answers region queries from the index; genoae's own parser then reads the text, so
    every input goes through the same checks.
    """
    import shutil
    import subprocess

    if shutil.which("bcftools") is None:
        what = "reading BCF" if region is None else "--region"
        raise InputError(path, f"{what} needs bcftools on PATH (Debian/Ubuntu: apt-get install bcftools; conda: "
                               f"bcftools), or convert first: bcftools view -Oz -o out.vcf.gz {path.name}")
    command = ["bcftools", "view", "--no-version", "-Ov", os.fspath(path)]
    if region is not None:
        command[3:3] = ["-r", region]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            block = process.stdout.read(raw_size)
            if not block:
                break
            yield block
        error = process.stderr.read().decode(errors="replace").strip()
        if process.wait() != 0:
            last = error.splitlines()[-1] if error else f"exit code {process.returncode}"
            raise InputError(path, f"bcftools could not read it: {last}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def _line_lists(blocks):
    """Lists of lines (without line ends) from an iterator of byte blocks: one list per block, so the caller loops
    over plain lists instead of resuming a generator per line."""
    leftover = b""
    for block in blocks:
        text = leftover + block
        lines = text.split(b"\n")
        leftover = lines.pop()
        if b"\r" in text:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        yield lines
    if leftover:
        yield [leftover[:-1] if leftover.endswith(b"\r") else leftover]


def _classify(ref: bytes, alt: bytes) -> str | None:
    """None for a biallelic SNP (or a monomorphic one: one REF base, ALT '.'), else the skip reason."""
    if b"," in alt:
        return "multi-allelic"
    if alt == b".":
        return None if len(ref) == 1 else "no ALT allele"  # a longer REF without ALT is a reference block
    if alt.startswith(b"<") or alt == b"*" or b"[" in alt or b"]" in alt:
        return "symbolic ALT"
    if len(ref) != 1 or len(alt) != 1:
        return "indel/MNP"
    return None


_SPLIT_GT = re.compile(r"[/|]")


def _parse_call(token: str, path, line_no: int, sample: str):
    """Parse one GT token the slow way.

    Returns
    -------
    (a, b, phased, haploid) with alleles 0/1/-1 (missing).
    """
    if token == ".":
        return -1, -1, True, True
    if token == "":
        raise InputError(path, f"sample {sample}: empty GT (a missing call is written '.' or './.')", line_no)
    body = token[1:] if token[0] in "/|" else token  # VCF 4.4 explicit phase prefix of the first allele
    separators = [c for c in body if c in "/|"]
    alleles = _SPLIT_GT.split(body)
    if len(alleles) > 2:
        raise InputError(path, f"sample {sample}: GT {token!r} has ploidy {len(alleles)}; genoae reads diploid "
                               f"and haploid calls only", line_no)
    values = []
    for allele in alleles:
        if allele == ".":
            values.append(-1)
            continue
        if not allele.isdigit():
            raise InputError(path, f"sample {sample}: GT {token!r} is not a genotype (alleles must be integers "
                                   f"or '.')", line_no)
        value = int(allele)
        if value > 1:
            raise InputError(path, f"sample {sample}: GT {token!r} allele index {value} is out of range for a "
                                   f"biallelic record (REF=0, ALT=1)", line_no)
        values.append(value)
    if len(values) == 1:
        return values[0], values[0], True, True
    return values[0], values[1], separators == ["|"], False


class _Accumulator:
    """Collects decoded blocks of records."""

    def __init__(self, n_samples: int):
        self.n_samples = n_samples
        self.packed, self.haps = [], []
        self.n_unphased = 0  # observed diploid calls written with '/'
        self.n_phased = 0    # observed diploid calls written with '|'
        self.n_haploid = 0


def _fixed_width_tables():
    """Lookup tables for 3-character GT fields ``a?b`` + tab, read as two little-endian uint16 (``a?`` and ``b\\t``).

    ``_LO[a?]`` holds a's code in bits 0-1 ('0' 0, '1' 1, '.' 2), bit 2 set for '|', bit 6 set if not valid;
    ``_HI[b\\t]`` holds b's code in bits 4-5, bit 7 set if not valid.  OR-ing them gives one byte per call, and
    small tables on that byte give the PLINK code, the two haplotype bits and the phase/observed status.
    """
    allele = {ord("0"): 0, ord("1"): 1, ord("."): 2}
    lo = np.full(65536, 0x40, np.uint8)
    hi = np.full(65536, 0x80, np.uint8)
    for c, code in allele.items():
        for sep, phased in ((ord("/"), 0), (ord("|"), 4)):
            lo[c | (sep << 8)] = code | phased
        hi[c | (_TAB << 8)] = code << 4
    key = np.arange(256)
    a, b, phased, invalid = key & 3, (key >> 4) & 3, (key & 4) != 0, key >= 64
    missing = (a == 2) | (b == 2) | invalid | (a == 3) | (b == 3)
    count = np.where(missing, 0, a + b)
    plink_code = np.where(missing, 0b01, np.array([0b00, 0b10, 0b11])[count.clip(0, 2)]).astype(np.uint8)
    bits = np.stack([a == 1, b == 1], axis=1) & ~missing[:, None]
    status = np.where(missing, 0, np.where(phased, 1, 2)).astype(np.uint8)  # 1 observed phased, 2 unphased
    return lo, hi, plink_code, bits, status


_LO, _HI, _KEY_TO_CODE, _KEY_TO_BITS, _KEY_TO_STATUS = _fixed_width_tables()


def _decode_fixed_width(rests: list[bytes], n_samples: int, want_haplotypes: bool = True):
    """Decode records whose sample columns are all 3-character GTs (``0|1``, ``./.`` ...), the common case.

    Two 65,536-entry table lookups per call on the raw bytes (see :func:`_fixed_width_tables`).

    Returns
    -------
    codes : ndarray, uint8, shape (n_records, n_samples)   PLINK 2-bit codes
    hap_bits : ndarray, bool, shape (n_records, 2 n_samples)   allele 1 per haplotype (None if not wanted)
    status : ndarray, uint8, shape (n_records, n_samples)   0 missing, 1 observed phased, 2 observed unphased
    ok : ndarray, bool, shape (n_records,)   False for records with any call that is not of this simple form
    """
    n_records = len(rests)
    halves = np.frombuffer(b"\t".join(rests) + b"\t", "<u2").reshape(n_records, n_samples, 2)
    key = _LO.take(halves[..., 0])
    key |= _HI.take(halves[..., 1])
    ok = (key < 64).all(axis=1)
    codes = _KEY_TO_CODE.take(key)
    hap_bits = _KEY_TO_BITS.take(key, axis=0).reshape(n_records, 2 * n_samples) if want_haplotypes else None
    return codes, hap_bits, _KEY_TO_STATUS.take(key), ok


def _general_tables():
    """Tables for the first four bytes of any GT field, read as two little-endian uint16 (bytes 0-1 and 2-3).

    ``lo``: bits 0-1 allele code of byte 0 ('0' 0, '1' 1, '.' 2), bit 2 '|' separator, bit 3 haploid (byte 1 ends
    the GT: ':', tab or newline), bit 6 not a simple call.  ``hi``: bits 4-5 allele code of byte 2, bit 7 set unless
    byte 2 is an allele and byte 3 ends the GT.  ``lo | hi`` is one key byte per call; 256-entry tables on it give
    the PLINK code, the haplotype bits, the call's status, and whether it was simple (for a haploid key, the ``hi``
    bits are ignored).  Anything else (multi-digit alleles, VCF 4.4 prefixes, ploidy > 2) goes to
    :func:`_parse_call`.
    """
    allele = {ord("0"): 0, ord("1"): 1, ord("."): 2}
    lo = np.full(65536, 0x40, np.uint8)
    hi = np.full(65536, 0x80, np.uint8)
    for c, code in allele.items():
        for sep, bits in ((ord("/"), 0), (ord("|"), 4), (_COLON, 8 | 4), (_TAB, 8 | 4), (_NEWLINE, 8 | 4)):
            lo[c | (sep << 8)] = code | bits
        for end in (_COLON, _TAB, _NEWLINE):
            hi[c | (end << 8)] = code << 4
    key = np.arange(256)
    haploid = (key & 8) != 0
    a = key & 3
    b = np.where(haploid, a, (key >> 4) & 3)
    simple = ((key & 0x40) == 0) & (haploid | ((key & 0x80) == 0))  # byte 2-3 do not matter for haploid
    missing = ~simple | (a == 2) | (b == 2)
    count = np.where(missing, 0, a + b).clip(0, 2)
    plink_code = np.where(missing, 0b01, np.array([0b00, 0b10, 0b11])[count]).astype(np.uint8)
    bits = np.stack([a == 1, b == 1], axis=1) & ~missing[:, None]
    # status: 0 missing, 1 observed phased diploid, 2 observed unphased diploid, 3 observed haploid
    status = np.where(missing, 0, np.where(haploid, 3, np.where((key & 4) != 0, 1, 2))).astype(np.uint8)
    return lo, hi, plink_code, bits, status, simple


_LO_GENERAL, _HI_GENERAL, _G_CODE, _G_BITS, _G_STATUS, _G_SIMPLE = _general_tables()
_AB_TO_CODE = np.array([0b00, 0b10, 0b10, 0b11], np.uint8)  # index 2 a + b for observed calls


def _decode_general(rests: list[bytes], line_nos: list[int], samples: np.ndarray, path, want_haplotypes: bool):
    """Decode records with any GT form (extra sub-fields, haploid, multi-digit alleles, VCF 4.4 prefixes).

    Every field's first four bytes are gathered as one uint32 (an unaligned overlapping view of the text), then
    classified with two table lookups; the rare fields that are not simple calls go through :func:`_parse_call`.

    Returns
    -------
    codes : ndarray, uint8, shape (n_records, n_samples)   PLINK 2-bit codes
    hap_bits : ndarray, bool, shape (n_records, 2 n_samples), or None when not wanted
    status : ndarray, uint8, shape (n_records, n_samples)   0 missing, 1 phased, 2 unphased diploid, 3 haploid
    """
    n_records, n_samples = len(rests), len(samples)
    buf = b"\n".join(rests) + b"\n\0\0\0\0"
    arr = np.frombuffer(buf, np.uint8)[:-4]
    record_ends = np.flatnonzero(arr == _NEWLINE)
    ends = np.flatnonzero((arr == _TAB) | (arr == _NEWLINE))
    # field count per record, checked here for all records of the block at once
    n_fields = np.diff(np.searchsorted(ends, record_ends, side="right"), prepend=0)
    if (n_fields != n_samples).any():
        bad = int(np.argmax(n_fields != n_samples))
        raise InputError(path, f"record has {n_fields[bad]} sample columns, the header has {n_samples}",
                         line_nos[bad])
    # next_starts[k] = start of field k + 1 (in place: no second index array of 8 bytes per call)
    next_starts = ends
    next_starts += 1
    text_words = np.ndarray((len(buf) - 3,), dtype="<u4", buffer=buf, strides=(1,))
    words = np.empty(len(next_starts), np.uint32)
    words[0] = text_words[0]
    words[1:] = text_words[next_starts[:-1]]
    key = _LO_GENERAL.take(words & 0xFFFF)
    key |= _HI_GENERAL.take(words >> 16)
    codes = _G_CODE.take(key)
    status = _G_STATUS.take(key)
    hap_bits = _G_BITS.take(key, axis=0) if want_haplotypes else None  # (n_calls, 2)
    for k in np.flatnonzero(~_G_SIMPLE.take(key)):
        field = buf[(next_starts[k - 1] if k else 0):next_starts[k] - 1]
        token = field.split(b":", 1)[0].decode("ascii", errors="replace")
        record, sample = divmod(int(k), n_samples)
        a, b, phased, haploid = _parse_call(token, path, line_nos[record], samples[sample])
        missing = a < 0 or b < 0
        codes[k] = 0b01 if missing else _AB_TO_CODE[2 * a + b]
        status[k] = 0 if missing else 3 if haploid else 1 if phased else 2
        if want_haplotypes:
            hap_bits[k] = (a > 0 and not missing, b > 0 and not missing)
    shape = (n_records, n_samples)
    return (codes.reshape(shape), None if hap_bits is None else hap_bits.reshape(n_records, 2 * n_samples),
            status.reshape(shape))


def _decode_block(rests: list[bytes], line_nos: list[int], samples: np.ndarray, path, acc: _Accumulator):
    """Decode the sample columns of a block of kept records into packed calls and haplotype bits.

    Parameters
    ----------
    rests : list of bytes, length n_records
        The sample columns of each record (tab-separated, no newline), each with exactly n_samples fields.
    """
    n_records, n_samples = len(rests), len(samples)
    want_haplotypes = acc.n_unphased == 0  # one unphased call and the file's haplotypes are dropped anyway
    simple_width = 4 * n_samples - 1
    fixed = np.array([len(r) == simple_width for r in rests], bool)
    codes = np.empty((n_records, n_samples), np.uint8)
    status = np.empty((n_records, n_samples), np.uint8)
    hap_bits = np.empty((n_records, 2 * n_samples), bool) if want_haplotypes else None
    general = ~fixed
    if fixed.any():
        rows = np.flatnonzero(fixed)
        every_row = rows.size == n_records
        f_codes, f_bits, f_status, ok = _decode_fixed_width(rests if every_row else [rests[i] for i in rows],
                                                            n_samples, want_haplotypes)
        if every_row and ok.all():  # the usual case: nothing to copy
            _accumulate(acc, f_codes, f_bits, f_status)
            return
        general[rows[~ok]] = True  # a 4N-1 byte row that is not all 3-character calls: the general path checks it
        rows = rows[ok]
        codes[rows], status[rows] = f_codes[ok], f_status[ok]
        if want_haplotypes:
            hap_bits[rows] = f_bits[ok]
    if general.any():
        rows = np.flatnonzero(general)
        g_codes, g_bits, g_status = _decode_general([rests[i] for i in rows], [line_nos[i] for i in rows],
                                                    samples, path, want_haplotypes)
        codes[rows], status[rows] = g_codes, g_status
        if want_haplotypes:
            hap_bits[rows] = g_bits
    _accumulate(acc, codes, hap_bits, status)


def _accumulate(acc: _Accumulator, codes: np.ndarray, hap_bits, status: np.ndarray):
    """Add a decoded block: pack its calls, keep its haplotype bits while the file still looks phased."""
    counts = np.bincount(status.ravel(), minlength=4) if status.size else np.zeros(4, np.int64)
    acc.n_phased += int(counts[1])
    acc.n_unphased += int(counts[2])
    acc.n_haploid += int(counts[3])
    acc.packed.append(pack_codes(codes))
    if acc.n_unphased:  # haplotypes will be dropped: stop spending memory on them
        acc.haps.clear()
    else:
        acc.haps.append(np.packbits(hap_bits, axis=1, bitorder="little"))


def _gt_first(rest: bytes, gt_index: int) -> bytes:
    """Sample columns rewritten to hold only the GT sub-field (for records whose FORMAT has GT later than first)."""
    out = []
    for field in rest.split(b"\t"):
        sub = field.split(b":")
        out.append(sub[gt_index] if gt_index < len(sub) else b".")
    return b"\t".join(out)


def _parse_sample_meta(line: str) -> tuple[str, dict] | None:
    """``##SAMPLE=<ID=x,FID=y,SEX=1>`` -> ("x", {"FID": "y", "SEX": "1"}) (genoae writes these to keep .fam data)."""
    if not line.startswith("##SAMPLE=<") or not line.rstrip().endswith(">"):
        return None
    fields = {}
    for item in line.rstrip()[len("##SAMPLE=<"):-1].split(","):
        key, _, value = item.partition("=")
        fields[key] = value
    return (fields.pop("ID"), fields) if "ID" in fields else None


def read_vcf(path, quiet: bool = False, region: str | None = None) -> Genotypes:
    """Read biallelic SNP genotypes from a VCF, a (b)gzipped VCF or a BCF.

    Parameters
    ----------
    path : str or Path
    quiet : bool
        When False, print one line on stderr saying how many records were skipped and why.
    region : str, optional
        ``chr1:1-5000000`` (bcftools' syntax): only the records there, from the file's index (``.tbi``/``.csi``).
        BCF files and regions are decoded by ``bcftools view`` (htslib); the text is parsed here either way.

    Returns
    -------
    Genotypes
        ``info`` holds the skipped-record counts (and haploid / unphased call counts when there are any).

    Raises
    ------
    InputError
        Empty file, no ``#CHROM`` header, no samples, a record with a sample-column count that differs from the
        header, an unparsable POS, a GT of ploidy > 2 or with an allele index out of range, or no SNP kept at all.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes): expected a VCF header")
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    samples = None
    sample_meta = {}
    acc = None
    rests, line_nos, block_bytes = [], [], 0
    records = []  # (line number, CHROM, POS, ID, REF, ALT, INFO) of kept records
    n_records = 0
    try:
        line_no = 0
        use_bcftools = region is not None or path.name.lower().endswith(".bcf")
        blocks = _bcftools_blocks(path, region) if use_bcftools else _blocks(path)
        for line in itertools.chain.from_iterable(_line_lists(blocks)):
            line_no += 1
            if samples is None:
                if line.startswith(b"##"):
                    meta = _parse_sample_meta(line.decode("utf-8", errors="replace"))
                    if meta:
                        sample_meta[meta[0]] = meta[1]
                    continue
                if line.startswith(b"#CHROM"):
                    header = line.decode("utf-8", errors="replace").split("\t")
                    if len(header) < 8:
                        raise InputError(path, f"#CHROM header has {len(header)} tab-separated columns, "
                                               f"expected at least 8", line_no)
                    if len(header) < 10:
                        raise InputError(path, "the VCF has no sample columns: no genotypes to read", line_no)
                    samples = np.array(header[9:])
                    if (samples == "").any():
                        raise InputError(path, f"sample column {int(np.argmax(samples == '')) + 1} of the #CHROM "
                                               f"line has an empty name (a trailing tab?)", line_no)
                    n_samples = len(samples)
                    batch_records = max(16, BATCH_CALLS // n_samples)
                    acc = _Accumulator(n_samples)
                    continue
                if not line.strip():
                    continue
                raise InputError(path, "data line before the #CHROM header line (is this a VCF?)", line_no)
            if not line or line.isspace():
                continue
            n_records += 1
            parts = line.split(b"\t", 9)
            if len(parts) < 10:
                raise InputError(path, f"record has {len(parts)} tab-separated columns, the header has "
                                       f"{9 + len(samples)} (9 fixed + {len(samples)} samples)", line_no)
            rest = parts[9]  # its field count is checked, vectorised, when its block is decoded
            ref, alt, fmt = parts[3], parts[4], parts[8]
            # fast path for the usual biallelic SNP with GT first; everything else goes through _classify
            if len(ref) != 1 or len(alt) != 1 or alt == b"." or alt == b"*" or \
                    not (fmt == b"GT" or fmt.startswith(b"GT:")):
                reason = _classify(ref, alt)
                if reason is None:
                    format_keys = fmt.split(b":")
                    if b"GT" not in format_keys:
                        reason = "no GT in FORMAT"
                    elif fmt != b"GT":  # GT not first, or other sub-fields: keep the GT only
                        rest = _gt_first(rest, format_keys.index(b"GT"))
                    if reason is None and alt == b"." and b"1" in rest:
                        # a monomorphic record (kept, as PLINK keeps it) whose calls name an ALT it does not have
                        raise InputError(path, "ALT is '.' but a call carries allele 1 or higher", line_no)
                if reason is not None:
                    # a skipped record is still checked for its shape: a lost tab must not pass as "no GT"
                    n_columns = rest.count(b"\t") + 1
                    if n_columns != n_samples:
                        raise InputError(path, f"record has {n_columns} sample columns, the header has "
                                               f"{n_samples}", line_no)
                    skipped[reason] += 1
                    continue
            records.append((line_no, parts[0], parts[1], parts[2], ref, alt, parts[7]))
            rests.append(rest)
            line_nos.append(line_no)
            block_bytes += len(rest)
            if len(rests) >= batch_records or block_bytes >= BATCH_BYTES:
                _decode_block(rests, line_nos, samples, path, acc)
                rests, line_nos, block_bytes = [], [], 0
        if rests:
            _decode_block(rests, line_nos, samples, path, acc)
    except (OSError, EOFError, zlib.error, _inflate_zlib.error) as error:
        raise InputError(path, f"cannot read compressed/plain text: {error}") from None
    if samples is None:
        raise InputError(path, "no #CHROM header line: not a VCF file")
    n_skipped = sum(skipped.values())
    if not records:
        detail = ", ".join(f"{n} {k}" for k, n in skipped.items() if n) or "the file has no records"
        raise InputError(path, f"no biallelic SNP with a GT call to read ({n_records} records; {detail})")
    variants = _variant_table(records, path)
    # ##SAMPLE lines (genoae writes them) restore the .fam family ID and sex; anything else is ignored
    fid = [sample_meta.get(s, {}).get("FID") or s for s in samples]
    sex_text = [sample_meta.get(s, {}).get("SEX", "0") for s in samples]
    sex = [int(x) if x in ("0", "1", "2") else 0 for x in sex_text]
    sample_table = Samples(iid=samples, fid=np.array(fid), sex=np.array(sex, np.int8))
    packed = np.concatenate(acc.packed)
    haps = np.concatenate(acc.haps) if acc.n_unphased == 0 else None
    info = {"skipped records": f"{n_skipped} of {n_records}" + (
        " (" + ", ".join(f"{n} {k}" for k, n in skipped.items() if n) + ")" if n_skipped else "")}
    if acc.n_haploid:
        info["haploid calls"] = f"{acc.n_haploid} (read as homozygous, as PLINK does)"
    if acc.n_unphased and acc.n_phased:
        info["phasing"] = (f"partly phased ({acc.n_phased} phased, {acc.n_unphased} unphased diploid calls): "
                           f"haplotypes dropped")
    if use_bcftools:
        info["reader"] = "bcftools view (htslib) -> genoae's VCF parser" + (f"; region {region}" if region else "")
    genotypes = Genotypes(packed, sample_table, variants, haps, source=os.fspath(path), info=info)
    if n_skipped and not quiet:
        detail = ", ".join(f"{n} {k}" for k, n in skipped.items() if n)
        print(f"genoae: {path}: skipped {n_skipped} of {n_records} records ({detail}); kept {len(variants)} "
              f"biallelic SNPs", file=sys.stderr)
    return genotypes


def _variant_table(records: list[tuple], path) -> Variants:
    """Variants from the kept records' fixed columns (vectorised conversions; errors name the line)."""
    columns = list(zip(*records))
    pos_text = np.array(columns[2])
    try:
        pos = pos_text.astype(np.int64)
    except (ValueError, OverflowError):
        for line_no, value in zip(columns[0], columns[2]):
            try:
                int(value)
            except ValueError:
                raise InputError(path, f"POS {value.decode(errors='replace')!r} is not an integer", line_no) from None
        raise InputError(path, "POS column holds a value that does not fit a 64-bit integer") from None
    if pos.size and pos.min() < 0:
        bad = int(np.argmin(pos))
        raise InputError(path, f"POS {int(pos[bad])} is negative", columns[0][bad])
    cm = np.array([_info_cm(info) for info in columns[6]], np.float64)
    ref = np.char.decode(np.array(columns[4]), "utf-8", "replace")
    alt = np.char.decode(np.array(columns[5]), "utf-8", "replace")
    return Variants(chrom=np.char.decode(np.array(columns[1]), "utf-8", "replace"), pos=pos,
                    id=np.char.decode(np.array(columns[3]), "utf-8", "replace"),
                    # '.': PLINK's missing allele code 0 (a monomorphic SNP's other allele), as genoae writes it
                    a1=np.where(ref == ".", "0", ref), a2=np.where(alt == ".", "0", alt), cm=cm)


def _info_cm(info: bytes) -> float:
    """Genetic position from an INFO ``CM=`` key (genoae writes it to keep .bim column 3), else 0."""
    if b"CM=" not in info:
        return 0.0
    for item in info.split(b";"):
        if item.startswith(b"CM="):
            try:
                return float(item[3:])
            except ValueError:
                return 0.0
    return 0.0


# ---------------------------------------------------------------------------------------------------- writing
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_BGZF_BLOCK = 65280  # uncompressed bytes per block, as htslib uses


class BgzfWriter:
    """Minimal BGZF (blocked gzip) writer: a valid gzip file that ``tabix``/``bcftools`` can index.

    Parameters
    ----------
    handle : binary file object
    level : int
        zlib compression level.
    """

    def __init__(self, handle, level: int = 4):
        self.handle = handle
        self.level = level
        self.buffer = bytearray()

    def write(self, data: bytes):
        self.buffer += data
        while len(self.buffer) >= _BGZF_BLOCK:
            self._write_block(bytes(self.buffer[:_BGZF_BLOCK]))
            del self.buffer[:_BGZF_BLOCK]

    def _write_block(self, data: bytes):
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        payload = compressor.compress(data) + compressor.flush()
        block_size = len(payload) + 25  # 18-byte header + payload + 8-byte trailer, minus 1
        header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00" + struct.pack("<H", block_size)
        self.handle.write(header + payload + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data)))

    def close(self):
        if self.buffer:
            self._write_block(bytes(self.buffer))
            self.buffer.clear()
        self.handle.write(_BGZF_EOF)


_UNPHASED_TEXT = np.frombuffer(b"0/00/11/1./.", np.uint8).reshape(4, 3)  # index: A2 count, 3 = missing
_PHASED_TEXT = np.frombuffer(b"0|00|11|01|1.|.", np.uint8).reshape(5, 3)  # index: 2 a + b, 4 = missing


def _genotype_lines(genotypes: Genotypes, start: int, stop: int) -> np.ndarray:
    """GT text of variants [start, stop): uint8 array (n, n_samples * 4), fields tab-separated, ending in newline."""
    n_samples = genotypes.n_samples
    counts = unpack_calls(np.asarray(genotypes.packed[start:stop]), n_samples)  # (n, N)
    missing = counts < 0
    if genotypes.haplotypes_packed is not None:
        bits = np.unpackbits(np.asarray(genotypes.haplotypes_packed[start:stop]), axis=1, count=2 * n_samples,
                             bitorder="little")
        index = np.where(missing, 4, 2 * bits[:, 0::2] + bits[:, 1::2])
        table = _PHASED_TEXT
    else:
        index = np.where(missing, 3, counts)
        table = _UNPHASED_TEXT
    text = np.empty(counts.shape + (4,), np.uint8)
    text[..., :3] = table[index]
    text[..., 3] = _TAB
    text[:, -1, 3] = ord("\n")
    return text.reshape(len(counts), -1)


def vcf_header(genotypes: Genotypes, target="VCF") -> str:
    """The meta lines and ``#CHROM`` line genoae writes (allele convention, contigs, .fam extras)."""
    v, s = genotypes.variants, genotypes.samples
    iid = safe_names(s.iid, "sample IDs", target, TAB_OR_NEWLINE)  # VCF splits on tabs; spaces are fine
    lines = ["##fileformat=VCFv4.2", "##source=genoae",
             f'##genoae_allele_convention="REF = PLINK A1 (.bim column 5), ALT = A2 (column 6), the counted '
             f'allele; {ALLELE_CONVENTION}"']
    lines += [f"##contig=<ID={chrom}>" for chrom in dict.fromkeys(v.chrom.tolist())]
    if np.any(v.cm != 0):
        lines.append('##INFO=<ID=CM,Number=1,Type=Float,Description="Genetic position (cM), .bim column 3">')
    lines.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    if np.any(s.fid != s.iid) or np.any(s.sex != 0):
        lines.append('##genoae_samples="##SAMPLE lines keep the PLINK family ID (FID) and sex (1 male, 2 female, '
                     '0 unknown)"')
        fid = safe_names(s.fid, "family IDs", target, TAB_OR_NEWLINE)
        lines += [f"##SAMPLE=<ID={i},FID={f},SEX={sex}>" for i, f, sex in zip(iid, fid, s.sex)]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *iid]))
    return "\n".join(lines) + "\n"


def write_vcf(genotypes: Genotypes, path, chunk: int = 4096, level: int = 4) -> Path:
    """Write genotypes as VCF (``.vcf``) or BGZF-compressed VCF (``.vcf.gz``/``.vcf.bgz``), atomically.

    REF = A1, ALT = A2 (the counted allele).  Calls are phased (``0|1``) when the genotypes carry haplotypes.
    """
    path = Path(path)
    compressed = path.name.lower().endswith((".gz", ".bgz"))
    v = genotypes.variants
    chrom, ids, ref, alt = (safe_names(values, what, path) for values, what in (
        (v.chrom, "chromosome names"), (v.id, "variant IDs"), (v.a1, "REF alleles"), (v.a2, "ALT alleles")))
    # PLINK's missing allele code 0 (a monomorphic SNP's A1) is no base: written '.', which htslib and plink2 read
    # and genoae's reader turns back into 0
    ref = np.where(ref == "0", ".", ref)
    alt = np.where(alt == "0", ".", alt)
    write_cm = bool(np.any(v.cm != 0))
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        out = BgzfWriter(raw, level) if compressed else raw
        out.write(vcf_header(genotypes, path).encode())
        for start in range(0, genotypes.n_variants, chunk):
            check_interrupt()
            stop = min(start + chunk, genotypes.n_variants)
            text = _genotype_lines(genotypes, start, stop)
            pieces = []
            for j in range(start, stop):
                info = f"CM={v.cm[j]:g}" if write_cm else "."
                pieces.append(f"{chrom[j]}\t{v.pos[j]}\t{ids[j]}\t{ref[j]}\t{alt[j]}\t.\t.\t{info}\tGT\t"
                              .encode())
                pieces.append(text[j - start].tobytes())
            out.write(b"".join(pieces))
        if compressed:
            out.close()
    return path
