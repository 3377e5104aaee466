"""The one progress bar: tqdm on stderr, gone when finished (``leave=False``), off when ``enabled`` is False."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True):
    """A tqdm bar for ``total`` steps of ``unit``; a disabled bar (every call a no-op) when not ``enabled``."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=not enabled)
