"""Plain genotype matrices: ``.npy``, whitespace text, and 1000 Genomes / IMPUTE-style ``.hapt`` haplotype text.

Matrices are samples x SNPs of A2 allele counts 0/1/2; missing is -1 (``.npy`` may also use NaN; text may also use
``NA``, ``.``, ``-9``... see :data:`TEXT_MISSING`).  Plain matrices know nothing about variants, so they get
placeholder variants (``snp1``.., A1=A, A2=B, chromosome 1).

``.hapt`` (Yelmen et al. 2021): one haplotype per line, ``label id a_1 .. a_M`` with alleles 0/1; rows 2i and 2i+1 are
the two haplotypes of person i.  An IMPUTE-style legend (header ``id position a0 a1``, one row per column, in column
order) supplies chromosome (from ids like ``1:1243896_C_T``), position and alleles: allele 0 = a0 = A1 and
allele 1 = a1 = A2 (the counted allele), IMPUTE's convention.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.io.atomic import atomic_path

TEXT_MISSING = {"-1", "NA", "na", "NaN", "nan", ".", "-9", "-"}
_VALUE_OF = {"0": 0, "1": 1, "2": 2, **{m: -1 for m in TEXT_MISSING}}


def _open_text(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, "r", encoding="utf-8", errors="replace")


def _check_counts(values: np.ndarray, path, what: str = "value") -> np.ndarray:
    """Validate a samples x SNPs float/int matrix and return int8 counts (-1 missing)."""
    values = np.asarray(values)
    if values.ndim != 2:
        raise InputError(path, f"expected a 2-D samples x SNPs matrix, got shape {values.shape}")
    if values.size == 0:
        raise InputError(path, f"empty matrix of shape {values.shape}")
    if values.dtype.kind == "f":
        missing = np.isnan(values) | (values == -1)
        bad = ~missing & ~np.isin(values, (0.0, 1.0, 2.0))
    elif values.dtype.kind in "iub":
        missing = values == -1
        bad = ~missing & ~np.isin(values, (0, 1, 2))
    else:
        raise InputError(path, f"matrix of dtype {values.dtype} is not numeric: expected 0/1/2 and -1/NaN")
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(path, f"{what} {values[row, col].item()!r} at sample row {row + 1}, SNP column {col + 1}: "
                               f"expected 0, 1, 2 or -1/NaN for missing ({int(bad.sum())} such entries)")
    return np.where(missing, -1, np.nan_to_num(values)).astype(np.int8)


def read_npy(path) -> Genotypes:
    """Read a ``.npy`` samples x SNPs matrix of A2 counts (0/1/2; -1 or NaN missing)."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(path, f"not a readable .npy array: {error}") from None
    counts = _check_counts(values, path)
    return Genotypes.from_counts(counts, source=os.fspath(path))


def read_text_matrix(path) -> Genotypes:
    """Read a whitespace-separated samples x SNPs matrix (0/1/2; -1/NA missing), optionally ``.gz``.

    A first row that is not all genotype values is read as a header of SNP IDs; a first column that is not a
    genotype value is read as sample IDs.
    """
    path = Path(path)
    rows, line_nos = [], []
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if fields:
                rows.append(fields)
                line_nos.append(line_no)
    if not rows:
        raise InputError(path, "empty file: expected a samples x SNPs matrix of 0/1/2")
    header = None
    if not all(f in _VALUE_OF for f in rows[0]):
        header, rows, line_nos = rows[0], rows[1:], line_nos[1:]
        if not rows:
            raise InputError(path, "only a header line, no genotype rows")
    has_ids = any(r[0] not in _VALUE_OF for r in rows)
    if header is not None and not has_ids and len(header) == len(rows[0]) - 1:
        has_ids = True
    ids = [r[0] for r in rows] if has_ids else None
    width = len(rows[0])
    counts = np.empty((len(rows), width - has_ids), np.int8)
    missing_codes = np.array(sorted(TEXT_MISSING))
    for i, (fields, line_no) in enumerate(zip(rows, line_nos)):
        if len(fields) != width:
            raise InputError(path, f"row has {len(fields)} columns, the first row has {width}", line_no)
        tokens = np.array(fields[has_ids:], dtype=str)
        row = np.full(len(tokens), -2, np.int8)
        for value in (0, 1, 2):
            row[tokens == str(value)] = value
        row[np.isin(tokens, missing_codes)] = -1
        if (row == -2).any():
            raise InputError(path, f"genotype {str(tokens[np.argmax(row == -2)])!r} is not 0, 1, 2 or a missing "
                                   f"code ({'/'.join(sorted(TEXT_MISSING))})", line_no)
        counts[i] = row
    variants = None
    if header is not None:
        snp_ids = header[-counts.shape[1]:] if len(header) >= counts.shape[1] else None
        if snp_ids is None:
            raise InputError(path, f"header has {len(header)} names for {counts.shape[1]} SNP columns", line_nos[0] - 1)
        variants = Variants.placeholder(counts.shape[1])
        variants.id = np.asarray(snp_ids, dtype=str)
    samples = Samples(np.array(ids)) if ids is not None else None
    return Genotypes.from_counts(counts, samples=samples, variants=variants, source=os.fspath(path))


def read_legend(path, n_variants: int | None = None) -> Variants:
    """Read an IMPUTE-style legend (header ``id position a0 a1``); chromosome from ``chr:pos...`` ids, else 0.

    Returns
    -------
    Variants with A1 = a0 (hapt allele 0) and A2 = a1 (hapt allele 1, counted).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "legend file not found")
    with _open_text(path) as handle:
        lines = [(n, line.split()) for n, line in enumerate(handle, start=1) if line.strip()]
    if not lines:
        raise InputError(path, "empty legend file: expected header 'id position a0 a1'")
    header = [h.lower() for h in lines[0][1]]
    need = ("id", "position", "a0", "a1")
    if not all(h in header for h in need):
        raise InputError(path, f"legend header is {' '.join(lines[0][1])!r}: expected columns id position a0 a1", 1)
    col = {h: header.index(h) for h in need}
    ids, pos, a0, a1, chrom = [], [], [], [], []
    for line_no, fields in lines[1:]:
        if len(fields) != len(header):
            raise InputError(path, f"legend row has {len(fields)} columns, the header has {len(header)}", line_no)
        try:
            pos.append(int(fields[col["position"]]))
        except ValueError:
            raise InputError(path, f"position {fields[col['position']]!r} is not an integer", line_no) from None
        ids.append(fields[col["id"]])
        a0.append(fields[col["a0"]])
        a1.append(fields[col["a1"]])
        chrom.append(ids[-1].split(":", 1)[0] if ":" in ids[-1] else "0")
    if n_variants is not None and len(ids) != n_variants:
        raise InputError(path, f"legend has {len(ids)} variants but the haplotype file has {n_variants} columns")
    return Variants(chrom=np.array(chrom), pos=np.array(pos), id=np.array(ids), a1=np.array(a0), a2=np.array(a1))


def find_legend(path) -> Path | None:
    """A ``.legend`` beside ``path`` whose name (without ``.legend``) starts ``path``'s name, e.g.
    ``805_SNP.legend`` for ``805_SNP_1000G_real.hapt.gz``; the longest such name wins."""
    path = Path(path)
    candidates = [p for p in path.parent.glob("*.legend") if path.name.startswith(p.name[:-len(".legend")])]
    return max(candidates, key=lambda p: len(p.name)) if candidates else None


def read_hapt(path, legend="auto") -> Genotypes:
    """Read ``.hapt``/``.hapt.gz`` haplotype text into phased Genotypes.

    Parameters
    ----------
    path : str or Path
    legend : str, Path, None or "auto"
        Legend file for chromosome/position/alleles; "auto" looks for one beside the file (:func:`find_legend`),
        None uses placeholder variants.

    Returns
    -------
    Genotypes, phased; sample IDs are the haplotype IDs without their ``_A``/``_B`` suffix.
    """
    path = Path(path)
    hap_ids, rows, line_nos = [], [], []
    width = None
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split(maxsplit=2)
            if not fields:
                continue
            if len(fields) < 3:
                raise InputError(path, f"line has {len(fields)} columns: expected label, haplotype id, then "
                                       f"0/1 alleles", line_no)
            tokens = fields[2].split()
            alleles = np.array(tokens, dtype=str)
            if width is None:
                width = len(alleles)
            n_values = len(tokens)
            if n_values != width:
                raise InputError(path, f"line has {n_values} alleles, the first line has {width}", line_no)
            row = np.full(width, 255, np.uint8)
            row[alleles == "0"] = 0
            row[alleles == "1"] = 1
            if (row == 255).any():
                bad = tokens[int(np.argmax(row == 255))]
                raise InputError(path, f"allele {bad!r} is not 0 or 1", line_no)
            hap_ids.append(fields[1])
            rows.append(row)
            line_nos.append(line_no)
    if not rows:
        raise InputError(path, "empty file: expected haplotype lines 'label id 0 1 0 ...'")
    if len(rows) % 2:
        raise InputError(path, f"{len(rows)} haplotype lines: rows 2i and 2i+1 are one person's two "
                               f"haplotypes, so the count must be even", line_nos[-1])
    haps = np.stack(rows).reshape(len(rows) // 2, 2, width)
    iids = []
    for first, second in zip(hap_ids[0::2], hap_ids[1::2]):
        stem1, stem2 = first.rsplit("_", 1)[0], second.rsplit("_", 1)[0]
        iids.append(stem1 if stem1 == stem2 and "_" in first else first)
    if legend == "auto":
        legend = find_legend(path)
    variants = read_legend(legend, width) if legend is not None else None
    genotypes = Genotypes.from_haplotypes(haps, samples=Samples(np.array(iids)), variants=variants,
                                          source=os.fspath(path))
    genotypes.info["legend"] = os.fspath(legend) if legend is not None else "none (placeholder variants)"
    return genotypes


def write_npy(genotypes: Genotypes, path) -> Path:
    """Write samples x SNPs int8 A2 counts (-1 missing) as ``.npy``, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, genotypes.counts())
    return path
