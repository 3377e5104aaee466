"""What several commands share: the ``-k`` syntax, and the refusal to write over an input."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from genoae.errors import UsageError
from genoae.io.results import is_results_file
from genoae.io.vcz import is_zarr_store


def parse_ks(values) -> list[int]:
    """``-k`` values → sorted list of distinct K.

    Each value is ``3``, a range ``2-8`` or ``2..8``, or a list ``2,4,6`` (parts may be ranges); ``values`` is one
    such string or int, or an iterable of them (a repeated option).  An empty ``values`` gives ``[]``.
    """
    if isinstance(values, (str, int)):
        values = [values]
    ks = set()
    for value in values or ():
        for part in str(value).replace(" ", "").split(","):
            if not part:
                continue
            bounds = re.split(r"\.\.|-", part)
            try:
                if len(bounds) == 2:
                    low, high = int(bounds[0]), int(bounds[1])
                    if high < low:
                        raise ValueError
                    ks.update(range(low, high + 1))
                elif len(bounds) == 1:
                    ks.add(int(bounds[0]))
                else:
                    raise ValueError
            except ValueError:
                raise UsageError(f"-k {value!r}: expected a number (3), a range (2-8 or 2..8) or a list "
                                 "(2,4,6)") from None
    bad = sorted(k for k in ks if k < 1)
    if bad:
        raise UsageError(f"-k: K must be at least 1 (got {bad[0]})")
    return sorted(ks)


def check_outputs(outputs, inputs, results_file=None) -> None:
    """Refuse, before any work, outputs that would replace an input or a file they must not.

    An output may not resolve to an input (``genoae admix geno.h5 -k 2`` would otherwise write its results over
    ``geno.h5``) and may not be a directory; an existing ``results_file`` is replaced only when it holds genoae
    ancestry results (never, say, an HDF5 genotype file).

    Parameters
    ----------
    outputs, inputs : iterables of str or Path
    results_file : str or Path, optional   the run's PREFIX.h5
    """
    outputs = [Path(output) for output in outputs]
    for folder in sorted({output.parent for output in outputs}, key=str):
        check_writable_folder(folder)
    taken = {}
    for path in inputs:
        if path is not None:
            taken[os.path.realpath(path)] = Path(path)
    for output in outputs:
        real = os.path.realpath(output)
        if real in taken:
            raise UsageError(f"{output} is the input {taken[real]}: it would be overwritten; choose another output "
                             "name (-o)")
        if output.is_dir() and not is_zarr_store(output):  # a VCF Zarr output is a folder, replaced as a whole
            raise UsageError(f"{output} is a directory; choose another output name (-o)")
        if results_file is not None and real == os.path.realpath(results_file) and output.exists() \
                and not is_results_file(output):
            raise UsageError(f"{output} exists and is not a genoae results file: it is not replaced; choose another "
                             "output name (-o)")


def check_writable_folder(folder) -> None:
    """Refuse, before any work, an output folder that cannot be made or written in.

    The folder may not exist yet (writers create it); then its nearest existing ancestor must be a folder in which
    a file can be created.  Tried with a real temporary file, since permission bits say nothing for root or on
    read-only file systems.
    """
    folder = Path(folder) if str(folder) else Path(".")
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(f"cannot write in {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UsageError(f"cannot write in {folder}: {error.strerror or error}") from None


def check_prefix(prefix) -> str:
    """An output prefix as text; refuse an empty one or one that names a folder (``out/``), which would write
    hidden files named ``.2.Q``."""
    text = os.fspath(prefix)
    if not text.strip() or text.endswith(("/", os.sep)) or Path(text).name in ("", ".", ".."):
        raise UsageError(f"-o {text!r}: an output prefix needs a file name part (e.g. -o results/run1)")
    return text
