"""What several commands share: the ``-k`` syntax, and the refusal to write over an input."""
from __future__ import annotations

import os
import re
from pathlib import Path

from genoae.errors import UsageError
from genoae.io.results import is_results_file


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
    taken = {}
    for path in inputs:
        if path is not None:
            taken[os.path.realpath(path)] = Path(path)
    for output in outputs:
        output = Path(output)
        real = os.path.realpath(output)
        if real in taken:
            raise UsageError(f"{output} is the input {taken[real]}: it would be overwritten; choose another output "
                             "name (-o)")
        if output.is_dir():
            raise UsageError(f"{output} is a directory; choose another output name (-o)")
        if results_file is not None and real == os.path.realpath(results_file) and output.exists() \
                and not is_results_file(output):
            raise UsageError(f"{output} exists and is not a genoae results file: it is not replaced; choose another "
                             "output name (-o)")
