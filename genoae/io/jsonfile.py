"""JSON reports: one cleaner for NumPy values and non-finite numbers, one atomic writer."""
from __future__ import annotations

import json
import math

import numpy as np

from genoae.io.atomic import atomic_open


def json_ready(value):
    """NaN/inf -> None, NumPy scalars and arrays -> Python, recursively (``json.dump`` would write NaN tokens,
    which are not JSON)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(report: dict, path) -> None:
    """Write ``json_ready(report)`` to ``path`` atomically, indented, with a final newline."""
    with atomic_open(path, "w") as handle:
        json.dump(json_ready(report), handle, indent=2)
        handle.write("\n")
