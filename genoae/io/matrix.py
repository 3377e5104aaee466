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
import zlib
from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.io.atomic import atomic_path

TEXT_MISSING = {"-1", "NA", "na", "NaN", "nan", ".", "-9", "-"}
_VALUE_OF = {"0": 0, "1": 1, "2": 2, **{m: -1 for m in TEXT_MISSING}}


def _open_text(path: Path):
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, "r", encoding="utf-8", errors="replace")


def _text_lines(path: Path):
    """``(line number, fields)`` of every non-blank line of a plain or gzipped text file.

    A damaged or truncated gzip stream is an InputError naming the file (gzip raises BadGzipFile, EOFError or
    zlib.error, and click would turn the EOFError into a silent "aborted").
    """
    line_no = 0
    try:
        with _open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                fields = line.split()
                if fields:
                    yield line_no, fields
    except (EOFError, OSError, zlib.error) as error:
        detail = "ended before the end of its gzip stream (truncated?)" if isinstance(error, EOFError) \
            else f"is damaged ({error})"
        raise InputError(path, f"cannot be read: the compressed file {detail}", line_no + 1 or None) from None


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


def read_npy(path, variant_range: tuple | None = None) -> Genotypes:
    """Read a ``.npy`` samples x SNPs matrix of A2 counts (0/1/2; -1 or NaN missing); ``variant_range``: only
    those columns, from a memory map of the file."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False, mmap_mode=None if variant_range is None else "r")
    except (ValueError, OSError, EOFError) as error:
        raise InputError(path, f"not a readable .npy array: {error}") from None
    if variant_range is None:
        return Genotypes.from_counts(_check_counts(values, path), source=os.fspath(path))
    if values.ndim != 2:
        raise InputError(path, f"array of shape {values.shape}: expected samples x SNPs")
    start, stop = variant_range
    counts = _check_counts(np.asarray(values[:, start:stop]), path)
    return Genotypes.from_counts(counts, variants=Variants.placeholder(values.shape[1]).subset(slice(start, stop)),
                                 source=os.fspath(path))


def npy_shape(path) -> tuple:
    """(samples, SNPs) of a ``.npy`` matrix, from its header."""
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r").shape
    except (ValueError, OSError, EOFError) as error:
        raise InputError(path, f"not a readable .npy array: {error}") from None


def _is_value(token: str) -> bool:
    return token in _VALUE_OF


def read_text_matrix(path, header: bool | None = None, ids: bool | None = None) -> Genotypes:
    """Read a whitespace-separated samples x SNPs matrix (0/1/2; -1/NA missing), optionally ``.gz``.

    The layout is never guessed from a few tokens: a header line of SNP names and a first column of sample IDs are
    either declared (``header``, ``ids``) or recognised beyond doubt:

    - header: every field of line 1 (after an optional name of the ID column) is a name, not a genotype value;
      a line 1 that mixes names and values is refused.
    - sample IDs: the first field of every data line is a name, not a genotype value; a first column with names on
      some lines and values on others is refused, naming the first line that differs.

    Parameters
    ----------
    header, ids : bool or None
        None recognises the layout as above; True/False declares it.

    Raises
    ------
    InputError
        Naming the file, line and column of a value that is not 0, 1, 2 or a missing code, a ragged line, or a
        layout that cannot be told apart (see above).
    """
    path = Path(path)
    rows, line_nos = [], []
    for line_no, fields in _text_lines(path):
        rows.append(fields)
        line_nos.append(line_no)
    if not rows:
        raise InputError(path, "empty file: expected a samples x SNPs matrix of 0/1/2")
    if header is None:
        names = [not _is_value(token) for token in rows[0]]
        header = all(names[1:]) and len(rows[0]) > 1 or all(names)
        if not header and any(names[1:]):
            column = names.index(True, 1) + 1
            raise InputError(path, f"line 1 mixes names ({rows[0][column - 1]!r}, column {column}) and genotype "
                                   f"values: a header line must hold only SNP names, and a data line only 0/1/2 or "
                                   f"missing codes after an optional sample ID", line_nos[0])
    names_line = None
    if header:
        names_line, rows, line_nos = rows[0], rows[1:], line_nos[1:]
        if not rows:
            raise InputError(path, "only a header line, no genotype rows")
    if ids is None:
        named = [not _is_value(r[0]) for r in rows]
        ids = all(named)
        if any(named) and not ids:
            first_value = named.index(False) if named[0] else named.index(True)
            raise InputError(path, f"column 1 holds a sample ID on some lines and a genotype value on others "
                                   f"({rows[first_value][0]!r} here): either every line starts with a sample ID "
                                   f"or none does", line_nos[first_value])
    width = len(rows[0])
    n_snps = width - ids
    if n_snps < 1:
        raise InputError(path, "no genotype columns after the sample IDs", line_nos[0])
    if names_line is not None and len(names_line) not in (n_snps, n_snps + 1):
        raise InputError(path, f"header has {len(names_line)} names for {n_snps} SNP columns (expected {n_snps}, "
                               f"or {n_snps + 1} with a name for the ID column)", line_nos[0] - 1)
    counts = np.empty((len(rows), n_snps), np.int8)
    missing_codes = np.array(sorted(TEXT_MISSING))
    for i, (fields, line_no) in enumerate(zip(rows, line_nos)):
        if len(fields) != width:
            raise InputError(path, f"row has {len(fields)} columns, the first row has {width}", line_no)
        tokens = np.array(fields[ids:], dtype=str)
        row = np.full(len(tokens), -2, np.int8)
        for value in (0, 1, 2):
            row[tokens == str(value)] = value
        row[np.isin(tokens, missing_codes)] = -1
        if (row == -2).any():
            column = int(np.argmax(row == -2))
            raise InputError(path, f"column {column + 1 + ids}: genotype {str(tokens[column])!r} is not 0, 1, 2 or "
                                   f"a missing code ({'/'.join(sorted(TEXT_MISSING))})", line_no)
        counts[i] = row
    variants = None
    if names_line is not None:
        variants = Variants.placeholder(n_snps)
        variants.id = np.asarray(names_line[-n_snps:], dtype=str)
    samples = Samples(np.array([r[0] for r in rows])) if ids else None
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
    lines = list(_text_lines(path))
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
    for line_no, fields in _text_lines(path):
        if len(fields) < 3:
            raise InputError(path, f"line has {len(fields)} columns: expected label, haplotype id, then "
                                   f"0/1 alleles", line_no)
        tokens = fields[2:]
        alleles = np.array(tokens, dtype=str)
        if width is None:
            width = len(alleles)
        if len(tokens) != width:
            raise InputError(path, f"line has {len(tokens)} alleles, the first line has {width}", line_no)
        row = np.full(width, 255, np.uint8)
        row[alleles == "0"] = 0
        row[alleles == "1"] = 1
        if (row == 255).any():
            column = int(np.argmax(row == 255))
            raise InputError(path, f"column {column + 3}: allele {tokens[column]!r} is not 0 or 1", line_no)
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
