"""Names on the way out: sample and variant names that the target format cannot hold are made safe, with a warning.

PLINK's .fam/.bim split on any whitespace and VCF on tabs, so a name with a space (possible in VCF sample IDs and
HDF5 tables) would shift every column after it and the file could not be read back.  As PLINK does with
``--vcf-idspace-to``, such characters are replaced by ``_``; the user is told how many names changed.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from genoae.errors import InputWarning

WHITESPACE = re.compile(r"\s")
TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")


def safe_names(values, what: str, target, pattern: re.Pattern = WHITESPACE) -> np.ndarray:
    """``values`` with every match of ``pattern`` replaced by ``_`` (and empty names by ``_``).

    Parameters
    ----------
    values : array of str
    what : str    e.g. "sample IDs", for the warning
    target : str or Path    the file being written, for the warning
    """
    values = np.asarray(values, dtype=str)
    if values.size == 0:
        return values
    text = "\x00".join(values.tolist())
    if not pattern.search(text) and (values != "").all():
        return values
    fixed = np.array([pattern.sub("_", value) or "_" for value in values.tolist()])
    changed = int((fixed != values).sum())
    example = str(values[np.flatnonzero(fixed != values)[0]])
    warnings.warn(InputWarning(f"{target}: {changed} {what} hold characters the format cannot store (e.g. "
                               f"{example!r}): written with '_' in their place"), stacklevel=3)
    return fixed
