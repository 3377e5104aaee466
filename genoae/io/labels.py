"""Population labels per sample, from a table with a header (``FID IID POP``, ``sample pop super_pop``...) or a plain
file with one label per line (in sample order, like ADMIXTURE's ``.pop``, where ``-`` means unlabelled).
The one label reader of genoae: compare, plot, admix --supervised and vae --pop all use it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.errors import InputError
from genoae.genotypes import Samples

ID_COLUMNS = ("iid", "sample", "sample_id", "sampleid", "sample name", "id", "individual")
LABEL_COLUMNS = ("pop", "population", "label", "super_pop", "superpopulation", "region", "group", "cluster")


def _split(line: str) -> list[str]:
    return line.rstrip("\r\n").split("\t") if "\t" in line else line.split()


def read_labels(path, samples=None, column: str | None = None, n_samples: int | None = None,
                missing_ok: bool = False) -> np.ndarray:
    """One label per sample, in sample order.

    Parameters
    ----------
    path : str or Path
        A table whose header names an ID column (IID, sample, ...) and a label column (POP, pop, super_pop,
        REGION, ...), tab- or whitespace-separated; or a plain file with one label per line (no header), taken
        in sample order.
    samples : Samples or sequence of str, optional
        The samples to label, matched by IID.  Without it, all rows are returned in file order.
    column : str, optional
        The label column to use (case-insensitive); default the first of :data:`LABEL_COLUMNS` present, else the
        last column.
    n_samples : int, optional
        Number of individuals when no IDs are known (checked against a one-label-per-line file).
    missing_ok : bool
        Samples absent from a table get ``""`` instead of an error (plots and per-population means skip them);
        at least one sample must still be found.  ``-`` in a one-label-per-line file (ADMIXTURE's ``.pop``) is
        always read as ``""``.

    Returns
    -------
    labels : ndarray, str, shape (n_samples,)

    Raises
    ------
    InputError
        Missing file, no usable columns, a requested column that is absent, or a sample without a label.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "labels file not found")
    iids = None
    if samples is not None:
        iids = np.asarray(samples.iid if isinstance(samples, Samples) else samples, dtype=str)
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        lines = [(n, line) for n, line in enumerate(handle, start=1) if line.strip()]
    if not lines:
        raise InputError(path, "empty labels file")
    header = [h.strip().lower() for h in _split(lines[0][1])]
    id_col = next((header.index(c) for c in ID_COLUMNS if c in header), None)
    if id_col is None or len(header) < 2:
        # plain one-label-per-line file, in sample order
        if any(len(_split(line)) != 1 for _, line in lines):
            n, line = next((n, line) for n, line in lines if len(_split(line)) != 1)
            raise InputError(path, f"expected a header with an ID column ({', '.join(ID_COLUMNS)}) or one label "
                                   f"per line; this line has {len(_split(line))} fields", n)
        labels = np.array(["" if line.strip() == "-" else line.strip() for _, line in lines])
        expected = len(iids) if iids is not None else n_samples
        if expected is not None and len(labels) != expected:
            raise InputError(path, f"{len(labels)} labels (one per line) for {expected} samples")
        return labels
    if column is not None:
        if column.lower() not in header:
            raise InputError(path, f"no column {column!r} in header {' '.join(_split(lines[0][1]))!r}", 1)
        label_col = header.index(column.lower())
    else:
        label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), len(header) - 1)
    table = {}
    for line_no, line in lines[1:]:
        fields = _split(line)
        if len(fields) <= max(id_col, label_col):
            raise InputError(path, f"row has {len(fields)} columns, the header has {len(header)}", line_no)
        table.setdefault(fields[id_col].strip(), fields[label_col].strip())
    if iids is None:
        return np.array(list(table.values()))
    missing = [iid for iid in iids if iid not in table]
    if missing_ok and len(missing) < len(iids):
        return np.array([table.get(iid, "") for iid in iids])
    if missing:
        raise InputError(path, f"no label for sample {str(missing[0])!r}" +
                         (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return np.array([table[iid] for iid in iids])


GROUP_COLUMNS = ("super_pop", "superpopulation", "super_population", "continent", "region")


def read_label_groups(path, column: str | None = None) -> dict | None:
    """Population -> super-population (or continent) from a labels table that has both columns, for colouring
    and ordering plots by group; None for a file without such a column or when ``column`` is the group itself.

    ``column`` is the label column :func:`read_labels` uses (default: its own choice).
    """
    path = Path(path)
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        lines = [line for line in handle if line.strip()]
    if not lines:
        return None
    header = [h.strip().lower() for h in _split(lines[0])]
    if column is not None:
        label_col = header.index(column.lower()) if column.lower() in header else None
    else:
        label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    group_col = next((header.index(c) for c in GROUP_COLUMNS if c in header), None)
    if label_col is None or group_col is None or group_col == label_col:
        return None
    groups = {}
    for line in lines[1:]:
        fields = _split(line)
        if len(fields) > max(label_col, group_col):
            groups.setdefault(fields[label_col].strip(), fields[group_col].strip())
    return groups
