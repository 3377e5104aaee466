"""What every figure shares: the cluster and population colours, the Agg backend, the atomic save by extension."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.errors import UsageError
from genoae.io.atomic import atomic_path

# Tableau 10, reordered so that the first clusters get the most distinct hues; then Tableau 20's light tones.
CLUSTER_COLOURS = ("#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#EDC948", "#76B7B2", "#9C755F",
                   "#FF9DA7", "#BAB0AC", "#A0CBE8", "#FFBE7D", "#8CD17D", "#FF9D9A", "#D4A6C8", "#F1CE63",
                   "#86BCB6", "#D7B5A6", "#FABFD2", "#79706E")
FIGURE_FORMATS = (".png", ".pdf", ".svg")
UNLABELLED = "(no label)"


def cluster_colour(k: int) -> str:
    """Colour of aligned cluster ``k`` (cycles through a qualitative colour map past 20 clusters)."""
    if k < len(CLUSTER_COLOURS):
        return CLUSTER_COLOURS[k]
    import matplotlib

    return matplotlib.colors.to_hex(matplotlib.colormaps["hsv"]((k * 0.618034) % 1.0))


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_format(path: Path) -> str:
    """The figure type of ``path`` (png, pdf or svg) from its extension; anything else is refused."""
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise UsageError(f"{path}: figure type {suffix or '(none)'!r} not supported; use .png, .pdf or .svg")
    return suffix[1:]


def save_figure(fig, path, dpi: int, tight: bool = True) -> Path:
    """Save ``fig`` to ``path`` (type by extension) through a temporary file, then close it."""
    path = Path(path)
    fmt = check_format(path)
    extra = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata={"Software": "genoae"} if fmt == "png" else None, **extra)
    pyplot().close(fig)
    return path


MARKERS = "osD^v<>ph*"


def population_styles(populations, group_of: dict | None = None) -> dict:
    """(colour, marker) of each population, every pair distinct.

    With ``group_of`` (population -> super-population or continent) each group gets one hue, its populations
    shades of it and a marker each, so 26 1000 Genomes populations are told apart and read by continent.  Without
    it, the first ten populations get the ten most distinct colours as circles, the next ten the same colours as
    squares, and so on.
    """
    import matplotlib

    populations = list(populations)
    styles = {}
    if group_of:
        groups = list(dict.fromkeys(group_of.get(pop, UNLABELLED) for pop in populations))
        for g, group in enumerate(groups):
            members = [pop for pop in populations if group_of.get(pop, UNLABELLED) == group]
            base = np.array(matplotlib.colors.to_rgb(CLUSTER_COLOURS[g % 10]))
            for i, pop in enumerate(members):
                # shades of the group's hue, from darker to lighter (never towards grey)
                t = 0.5 if len(members) == 1 else i / (len(members) - 1)
                shade = (base * 0.6) * (1 - t) + (base + (1 - base) * 0.55) * t
                styles[pop] = (matplotlib.colors.to_hex(np.clip(shade, 0, 1)), MARKERS[i % len(MARKERS)])
        return styles
    for i, pop in enumerate(populations):
        styles[pop] = (CLUSTER_COLOURS[i % 10], MARKERS[(i // 10) % len(MARKERS)])
    return styles


