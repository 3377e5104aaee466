"""ADMIXTURE-style text files: ``PREFIX.K.Q`` (individuals × K), ``PREFIX.K.P`` (SNPs × K) and ``.pop`` labels.

Format (as ADMIXTURE writes it): space-separated, 6 decimals, one row per individual (Q) or SNP (P), no header.
ADMIXTURE's P is the A2 frequency (``.bim`` column 6); Neural ADMIXTURE's is the A1 frequency.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.io.atomic import atomic_open


def read_matrix_text(path, what: str) -> np.ndarray:
    """Read a whitespace-separated numeric matrix, naming the file and line of any fault.

    Returns
    -------
    ndarray, float64, shape (n_rows, n_columns)
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"missing {what} file")
    rows = []
    width = None
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if width is None:
                width = len(fields)
            elif len(fields) != width:
                raise InputError(path, f"{what} line has {len(fields)} columns, expected {width}", line_no)
            try:
                rows.append([float(x) for x in fields])
            except ValueError:
                bad = next(x for x in fields if not _is_float(x))
                raise InputError(path, f"{what} value {bad!r} is not a number", line_no) from None
    if not rows:
        raise InputError(path, f"empty {what} file")
    return np.array(rows, dtype=np.float64)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_q(path) -> np.ndarray:
    """Read ancestry proportions (n_individuals × K); rows are checked to lie on the simplex (±1e-3)."""
    Q = read_matrix_text(path, ".Q")
    if (Q < -1e-9).any() or (Q > 1 + 1e-9).any():
        line = int(np.flatnonzero(((Q < -1e-9) | (Q > 1 + 1e-9)).any(axis=1))[0]) + 1
        raise InputError(path, "Q value outside [0, 1]", line)
    bad = np.flatnonzero(np.abs(Q.sum(axis=1) - 1) > 1e-3)
    if bad.size:
        raise InputError(path, f"Q row sums to {Q[bad[0]].sum():.6f}, expected 1", int(bad[0]) + 1)
    return Q


def read_p(path) -> np.ndarray:
    """Read allele frequencies (n_snps × K), values in [0, 1]."""
    P = read_matrix_text(path, ".P")
    if (P < 0).any() or (P > 1).any():
        line = int(np.flatnonzero(((P < 0) | (P > 1)).any(axis=1))[0]) + 1
        raise InputError(path, "P value outside [0, 1]", line)
    return P


def write_matrix_text(matrix: np.ndarray, path) -> Path:
    """Write a matrix in ADMIXTURE's format (space-separated, 6 decimals), atomically."""
    path = Path(path)
    with atomic_open(path, "w") as handle:
        np.savetxt(handle, np.asarray(matrix, dtype=np.float64), fmt="%.6f", delimiter=" ")
    return path


write_q = write_matrix_text
write_p = write_matrix_text


def read_pop(path, n_individuals: int | None = None) -> np.ndarray:
    """Read an ADMIXTURE ``.pop`` file: one label per individual, ``-`` (or empty) for unknown.

    Returns
    -------
    ndarray, str, shape (n_individuals,), ``""`` for unlabelled individuals.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "missing population label file")
    labels = []
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if len(fields) > 1:
                raise InputError(path, f".pop line has {len(fields)} fields, expected one label or '-'", line_no)
            labels.append("" if not fields or fields[0] == "-" else fields[0])
    if n_individuals is not None and len(labels) != n_individuals:
        raise InputError(path, f".pop file has {len(labels)} lines, expected one per individual ({n_individuals})")
    return np.array(labels, dtype=str)
