"""PLINK 2 genotypes: ``.pgen`` (read with pgenlib, PLINK 2's own reader), ``.pvar`` and ``.psam``.

Hard calls are read in ranges of variants and packed at once, so the calls never exist at more than 2 bits each
beyond one block.  The counted allele is ALT (= genoae's A2, the VCF convention); REF is A1.  A ``.pgen`` made from
a ``.bed`` by ``plink2 --make-pgen`` has REF = the ``.bim``'s A2, so its counts are 2 minus the ``.bed``'s and its
P is 1 − P: the same model, the same log-likelihood.  Multi-allelic records are skipped and counted, as for VCF;
records without an ALT allele (``.``, a monomorphic SNP) are kept, as PLINK keeps them.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import Genotypes, Samples, Variants, pack_calls

BLOCK_CALLS = 1 << 22  # int8 calls read per pgenlib call


def pgen_paths(path) -> tuple[Path, Path, Path]:
    """The .pgen/.pvar/.psam triple for PREFIX, PREFIX.pgen, PREFIX.pvar or PREFIX.psam."""
    text = os.fspath(path)
    prefix = text[:-5] if text.endswith((".pgen", ".pvar", ".psam")) else text
    return Path(prefix + ".pgen"), Path(prefix + ".pvar"), Path(prefix + ".psam")


def _table(path: Path, kind: str, need: tuple) -> tuple[list, list]:
    """Header (lower-cased names, ``#`` dropped) and rows of a .pvar/.psam; ``##`` meta lines skipped."""
    if not path.exists():
        raise InputError(path, f"missing {kind} file: PLINK 2 input needs .pgen, .pvar and .psam side by side")
    if path.is_dir():
        raise InputError(path, f"is a directory, not a {kind} file")
    if path.name.endswith(".zst"):
        raise InputError(path, "zstd-compressed .pvar is not read: decompress it first (plink2 --pfile ... "
                               "--make-pgen without vzs)")
    header, rows = None, []
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.startswith("##") or not line.strip():
                continue
            fields = line.split()
            if header is None and line.startswith("#"):
                header = [name.lstrip("#").lower() for name in fields]
                missing = [name for name in need if name not in header]
                if missing:
                    raise InputError(path, f"{kind} header lacks the column(s) {', '.join(missing).upper()}",
                                     line_no)
                continue
            if header is None:
                raise InputError(path, f"{kind} without a header line (#CHROM ... or #IID ...): genoae reads the "
                                       f"headed PLINK 2 layout", line_no)
            if len(fields) != len(header):
                raise InputError(path, f"{kind} line has {len(fields)} columns, the header has {len(header)}",
                                 line_no)
            rows.append(fields)
    if header is None or not rows:
        raise InputError(path, f"empty {kind} file")
    return header, rows


def read_psam(path) -> Samples:
    """Read a ``.psam`` (``#FID IID SEX ...`` or ``#IID SEX ...``)."""
    header, rows = _table(Path(path), ".psam", ("iid",))
    column = {name: k for k, name in enumerate(header)}
    iid = np.array([r[column["iid"]] for r in rows])
    fid = np.array([r[column["fid"]] for r in rows]) if "fid" in column else iid.copy()
    sex_text = [r[column["sex"]] for r in rows] if "sex" in column else ["0"] * len(rows)
    sex = np.array([{"1": 1, "2": 2, "male": 1, "female": 2}.get(s.lower(), 0) for s in sex_text], np.int8)
    return Samples(iid=iid, fid=fid, sex=sex)


def read_pvar(path):
    """Read a ``.pvar``: the variant table and a mask of the records kept (biallelic or without ALT)."""
    path = Path(path)
    header, rows = _table(path, ".pvar", ("chrom", "pos", "id", "ref", "alt"))
    column = {name: k for k, name in enumerate(header)}
    columns = list(zip(*rows))
    try:
        pos = np.array(columns[column["pos"]]).astype(np.int64)
    except ValueError:
        bad = next(k for k, v in enumerate(columns[column["pos"]]) if not v.lstrip("-").isdigit())
        raise InputError(path, f"POS {columns[column['pos']][bad]!r} is not an integer (record {bad + 1})") from None
    alt = np.array(columns[column["alt"]])
    keep = np.char.find(alt, ",") < 0
    cm = np.array(columns[column["cm"]], np.float64) if "cm" in column else np.zeros(len(rows))
    variants = Variants(chrom=np.array(columns[column["chrom"]]), pos=pos, id=np.array(columns[column["id"]]),
                        a1=np.array(columns[column["ref"]]), a2=alt, cm=cm)
    return variants, keep


def read_pgen(path, quiet: bool = False, variant_range: tuple | None = None) -> Genotypes:
    """Read PLINK 2 hard calls given PREFIX or any of PREFIX.pgen/.pvar/.psam (``variant_range``: only the
    biallelic variants ``[start, stop)``, counted as read, through pgenlib's range reads).

    Raises
    ------
    InputError
        A missing or malformed companion file, counts that disagree with the .pgen, or a damaged .pgen.
    """
    import sys

    import pgenlib

    pgen, pvar, psam = pgen_paths(path)
    if not pgen.exists():
        raise InputError(pgen, "missing .pgen file")
    if pgen.is_dir():
        raise InputError(pgen, "is a directory, not a .pgen file")
    samples = read_psam(psam)
    variants, keep = read_pvar(pvar)
    try:
        reader = pgenlib.PgenReader(os.fsencode(pgen))
    except Exception as error:  # noqa: BLE001 - pgenlib raises RuntimeError with PLINK's text
        raise InputError(pgen, f"not a readable .pgen file ({str(error).strip() or type(error).__name__})") from None
    with contextlib.closing(reader):
        n_samples, n_variants = reader.get_raw_sample_ct(), reader.get_variant_ct()
        if n_samples != len(samples):
            raise InputError(psam, f".psam lists {len(samples)} samples, the .pgen holds {n_samples}")
        if n_variants != len(variants):
            raise InputError(pvar, f".pvar lists {len(variants)} variants, the .pgen holds {n_variants}")
        block = max(1, BLOCK_CALLS // max(n_samples, 1))
        buffer = np.empty((min(block, n_variants), n_samples), np.int8)
        packed = []
        first, last = 0, n_variants
        if variant_range is not None and keep.any():  # the records that hold kept variants start..stop-1
            records = np.flatnonzero(keep)
            first, last = int(records[variant_range[0]]), int(records[variant_range[1] - 1]) + 1
        for start in range(first, last, block):
            stop = min(start + block, last)
            rows = buffer[: stop - start]
            try:
                reader.read_range(start, stop, rows, allele_idx=1)  # ALT copies; -9 missing
            except Exception as error:  # noqa: BLE001
                raise InputError(pgen, f"cannot read variants {start + 1}-{stop} ({error})") from None
            kept = rows[keep[start:stop]]
            packed.append(pack_calls(np.where(kept < 0, -1, kept)))
    n_skipped = int((~keep).sum())
    info = {"skipped records": f"{n_skipped} of {n_variants}" + (f" ({n_skipped} multi-allelic)" if n_skipped else ""),
            "reader": "pgenlib (PLINK 2 hard calls; ALT counted)"}
    if n_skipped and not quiet:
        print(f"genoae: {pgen}: skipped {n_skipped} of {n_variants} multi-allelic records", file=sys.stderr)
    if not keep.any():
        raise InputError(pgen, f"no biallelic variant to read ({n_variants} multi-allelic records)")
    variants = variants.subset(np.flatnonzero(keep))
    if variant_range is not None:
        variants = variants.subset(slice(*variant_range))
    return Genotypes(np.concatenate(packed), samples, variants, source=os.fspath(pgen), info=info)

