"""What several commands share: the ``-k`` syntax."""
from __future__ import annotations

import re

from genoae.errors import UsageError


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
