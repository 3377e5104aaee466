"""PLINK 1 binary genotypes: ``.bed`` (memory-mapped, SNP-major), ``.bim`` and ``.fam``.

The ``.bed`` bytes are PLINK's 2-bit codes, which is also how :class:`genoae.Genotypes` stores calls, so a SNP-major
``.bed`` is used in place (a read-only memory map) and decoded in vectorised blocks only when asked.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from genoae.errors import InputError, InputWarning
from genoae.genotypes import Genotypes, Samples, Variants, pack_calls, unpack_calls
from genoae.io.atomic import atomic_group
from genoae.io.names import safe_names

BED_MAGIC = b"\x6c\x1b"
MODE_SNP_MAJOR = 0x01
MODE_INDIVIDUAL_MAJOR = 0x00


def plink_paths(path) -> tuple[Path, Path, Path]:
    """The .bed/.bim/.fam triple for a path given as PREFIX, PREFIX.bed, PREFIX.bim or PREFIX.fam."""
    # PLINK appends the extension to the prefix, so a prefix may itself contain dots ("data.v2")
    text = os.fspath(path)
    prefix = text[:-4] if text.endswith((".bed", ".bim", ".fam")) else text
    return Path(prefix + ".bed"), Path(prefix + ".bim"), Path(prefix + ".fam")


def _read_columns(path: Path, n_columns: int, kind: str) -> list[list[str]]:
    """Whitespace-separated lines, each checked to have exactly ``n_columns`` fields."""
    rows = []
    if path.is_dir():
        raise InputError(path, f"is a directory, not a {kind} file")
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_columns:
                raise InputError(path, f"{kind} line has {len(fields)} columns, expected {n_columns}", line_no)
            rows.append(fields)
    return rows


def read_fam(path) -> Samples:
    """Read a ``.fam`` file (FID IID father mother sex phenotype)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "missing .fam file (PLINK needs .bed, .bim and .fam side by side)")
    rows = _read_columns(path, 6, ".fam")
    if not rows:
        raise InputError(path, "empty .fam file: no individuals")
    fid = np.array([r[0] for r in rows])
    iid = np.array([r[1] for r in rows])
    sex = np.array([int(r[4]) if r[4] in ("0", "1", "2") else 0 for r in rows], dtype=np.int8)
    return Samples(iid=iid, fid=fid, sex=sex)


def read_bim(path) -> Variants:
    """Read a ``.bim`` file (chrom id cM pos A1 A2); A2 (column 6) is the counted allele."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "missing .bim file (PLINK needs .bed, .bim and .fam side by side)")
    rows = _read_columns(path, 6, ".bim")
    if not rows:
        raise InputError(path, "empty .bim file: no variants")
    columns = list(zip(*rows))
    cm = _numeric_column(path, columns[2], np.float64, "genetic position (column 3)", "a number")
    pos = _numeric_column(path, columns[3], np.int64, "base-pair position (column 4)", "an integer")
    return Variants(chrom=np.array(columns[0]), pos=pos, id=np.array(columns[1]),
                    a1=np.array(columns[4]), a2=np.array(columns[5]), cm=cm)


def _numeric_column(path, values, dtype, what: str, expected: str) -> np.ndarray:
    """Convert a text column in one vectorised step; on failure, find and name the first bad line."""
    convert = float if dtype == np.float64 else int
    try:
        return np.array(values).astype(dtype)
    except (ValueError, OverflowError):
        for line_no, value in enumerate(values, start=1):
            try:
                convert(value)
            except ValueError:
                raise InputError(path, f"{what} {value!r} is not {expected}", line_no) from None
        raise InputError(path, f"{what} holds a value out of range") from None


def _check_bed_header(path: Path) -> int:
    """Check a ``.bed`` exists and starts with PLINK's magic bytes; return its mode byte."""
    if not path.exists():
        raise InputError(path, "missing .bed file")
    if path.is_dir():
        raise InputError(path, "is a directory, not a .bed file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty .bed file (0 bytes)")
    with open(path, "rb") as handle:
        header = handle.read(3)
    if len(header) < 3 or header[:2] != BED_MAGIC:
        raise InputError(path, f"not a PLINK .bed file: magic bytes are {header[:2].hex(' ') or 'absent'}, "
                               f"expected 6c 1b")
    mode = header[2]
    if mode not in (MODE_SNP_MAJOR, MODE_INDIVIDUAL_MAJOR):
        raise InputError(path, f"invalid .bed mode byte 0x{mode:02x}: expected 0x01 (SNP-major) or "
                               f"0x00 (individual-major)")
    return mode


def _warn_padding_people(path: Path, data: np.ndarray, n_samples: int, chunk: int = 1 << 20) -> None:
    """Warn when the last individuals of the .fam carry code 00 at every variant, as padding bits do.

    A .fam that lists 1-3 more individuals than the .bed holds has the same row length, so those people are read
    from the zero padding bits as homozygous A1 everywhere.  A real person can be homozygous A1 at every variant
    (rare-variant panels with A1 = REF), so this warns rather than refuses.
    """
    first_in_last_byte = 4 * ((n_samples - 1) // 4)
    suspects = list(range(first_in_last_byte + 1, n_samples))  # the first person of the last byte must exist
    if not suspects or data.shape[0] < 20:
        return
    seen = 0  # bits of the last byte that hold a nonzero code somewhere
    for start in range(0, data.shape[0], chunk):
        seen |= int(np.bitwise_or.reduce(np.asarray(data[start:start + chunk, -1])))
    trailing = []
    for person in reversed(suspects):
        if seen >> (2 * (person % 4)) & 0b11:
            break
        trailing.insert(0, person)
    if not trailing:
        return
    who = f"individual {n_samples}" if len(trailing) == 1 else f"individuals {trailing[0] + 1}-{n_samples}"
    warnings.warn(InputWarning(
        f"{path}: {who} (the last of the .fam) {'has' if len(trailing) == 1 else 'have'} code 00 (homozygous A1) "
        f"at all {data.shape[0]} variants, as the padding bits of a .bed with {trailing[0]} individuals would: "
        f"check that the .fam lists the same individuals as the .bed"), stacklevel=3)


def _check_padding(path: Path, data: np.ndarray, n_samples: int, chunk: int = 1 << 20, first: int = 0) -> None:
    """Refuse a .bed whose rows carry calls in their padding bits: PLINK writes padding as 0b00, so a nonzero
    padding call means the .bed holds more individuals than the .fam lists (4k+1..4k+4 individuals share a row
    length, so the file size alone cannot tell)."""
    used = n_samples % 4
    if used == 0 or data.shape[0] == 0:
        return
    padding_mask = (0xFF << (2 * used)) & 0xFF
    for start in range(0, data.shape[0], chunk):
        bad = np.flatnonzero(np.asarray(data[start:start + chunk, -1]) & padding_mask)
        if bad.size:
            raise InputError(path, f"variant {first + start + int(bad[0]) + 1} has calls in the padding bits of its "
                                   f"last byte: the .bed holds more individuals than the {n_samples} of the .fam")


def read_bed(path, n_samples: int, n_variants: int, variant_range: tuple | None = None) -> np.ndarray:
    """Memory-map a ``.bed`` file and return SNP-major packed calls, shape (n_variants, ceil(n_samples/4)).

    An individual-major file (mode byte 0x00) is read and transposed into SNP-major order.  ``variant_range``
    ``(start, stop)``: only those rows (of a SNP-major file: the map covers, and the checks read, nothing else).
    """
    path = Path(path)
    mode = _check_bed_header(path)
    size = path.stat().st_size
    if mode == MODE_SNP_MAJOR:
        rows, row_len = n_variants, (n_samples + 3) // 4
    else:
        rows, row_len = n_samples, (n_variants + 3) // 4
    expected = 3 + rows * row_len
    if size != expected:
        raise InputError(path, f".bed has {size} bytes but .bim ({n_variants} variants) and .fam "
                               f"({n_samples} samples) imply {expected}")
    if mode == MODE_SNP_MAJOR and variant_range is not None:
        start, stop = variant_range
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=3 + start * row_len, shape=(stop - start, row_len))
        _check_padding(path, data, n_samples, first=start)
        return data
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=3, shape=(rows, row_len))
    if mode == MODE_SNP_MAJOR:
        _check_padding(path, data, n_samples)
        _warn_padding_people(path, data, n_samples)
        return data
    # individual-major: decode blocks of individuals (a multiple of 4: whole bytes of the SNP-major rows) and pack
    # each along its individual axis into its bytes of the SNP-major rows
    packed = np.empty((n_variants, (n_samples + 3) // 4), np.uint8)
    block = max(4, ((1 << 24) // max(n_variants, 1)) // 4 * 4)
    for start in range(0, n_samples, block):
        counts = unpack_calls(np.asarray(data[start:start + block]), n_variants)  # (b, n_variants)
        packed[:, start // 4:(start + counts.shape[0] + 3) // 4] = pack_calls(counts, axis=0)
    return packed if variant_range is None else packed[variant_range[0]:variant_range[1]].copy()


def read_plink(path, variant_range: tuple | None = None) -> Genotypes:
    """Read PLINK 1 binary genotypes given PREFIX or any of PREFIX.bed/.bim/.fam (``variant_range``: only the
    calls of variants ``[start, stop)``, with their rows of the ``.bim``)."""
    bed, bim, fam = plink_paths(path)
    if bed.exists():
        _check_bed_header(bed)  # a wrong file is named as such before its companions are looked for
    for companion in (bed, bim, fam):
        if not companion.exists():
            raise InputError(companion, f"missing {companion.suffix} file: PLINK input needs "
                                        f"{bed.name}, {bim.name} and {fam.name} side by side")
    samples = read_fam(fam)
    variants = read_bim(bim)
    packed = read_bed(bed, len(samples), len(variants), variant_range)
    if variant_range is not None:
        variants = variants.subset(slice(*variant_range))
    return Genotypes(packed, samples, variants, source=os.fspath(bed))


def write_plink(genotypes: Genotypes, path) -> tuple[Path, Path, Path]:
    """Write ``.bed`` (SNP-major), ``.bim`` and ``.fam``; all three appear together or not at all."""
    bed, bim, fam = plink_paths(path)
    with atomic_group([bed, bim, fam]) as (bed_tmp, bim_tmp, fam_tmp):
        with open(bed_tmp, "wb") as handle:
            handle.write(BED_MAGIC + bytes([MODE_SNP_MAJOR]))
            chunk = 65536
            for start in range(0, genotypes.n_variants, chunk):
                handle.write(np.ascontiguousarray(genotypes.packed[start:start + chunk]).tobytes())
        v = genotypes.variants
        chrom, ids, a1, a2 = (safe_names(values, what, bim) for values, what in (
            (v.chrom, "chromosome names"), (v.id, "variant IDs"), (v.a1, "A1 alleles"), (v.a2, "A2 alleles")))
        with open(bim_tmp, "w") as handle:
            for j in range(len(v)):
                handle.write(f"{chrom[j]}\t{ids[j]}\t{v.cm[j]:g}\t{v.pos[j]}\t{a1[j]}\t{a2[j]}\n")
        s = genotypes.samples
        fid, iid = safe_names(s.fid, "family IDs", fam), safe_names(s.iid, "sample IDs", fam)
        with open(fam_tmp, "w") as handle:
            for i in range(len(s)):
                handle.write(f"{fid[i]} {iid[i]} 0 0 {s.sex[i]} -9\n")
    return bed, bim, fam
