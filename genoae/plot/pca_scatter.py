"""PCA scatters of genotypes, coloured by population or by each individual's dominant cluster."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.errors import UsageError
from genoae.plot.figure import (CLUSTER_COLOURS, UNLABELLED, check_format, cluster_colour, population_styles, pyplot,
                                save_figure)


def pca_plot(scores, explained, path, labels=None, Q=None, components=((0, 1), (2, 3)), dpi: int = 200,
             title: str | None = None, group_of: dict | None = None) -> Path:
    """Scatter of PC scores coloured by population (legend) or, without labels, by dominant cluster of ``Q``.

    Parameters
    ----------
    scores : ndarray, float, shape (n_samples, n_components)
    explained : ndarray, float, shape (n_components,)   fraction of variance, shown on the axes
    labels : array of str, shape (n_samples,), optional
    Q : ndarray, float, shape (n_samples, K), optional   aligned Q; colours match the structure plots
    components : pairs of 0-based component indices, one panel each (pairs beyond the computed ones are dropped)
    group_of : dict, optional   population -> super-population: one hue per group, shades and shapes inside it,
        the legend ordered by group
    """
    plt = pyplot()
    path = Path(path)
    check_format(path)
    pairs = [(a, b) for a, b in components if max(a, b) < scores.shape[1]]
    if not pairs:
        raise UsageError("too few principal components for the requested panels")
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs) + (1.6 if labels is not None else 0), 4.2),
                             squeeze=False)
    axes = axes[0]
    if labels is not None:
        labels = np.array([str(x) if str(x) != "" else UNLABELLED for x in labels], dtype=object)
        names = list(dict.fromkeys(labels.tolist()))
        if group_of:
            group_order = list(dict.fromkeys(group_of.get(pop, UNLABELLED) for pop in names))
            names.sort(key=lambda pop: group_order.index(group_of.get(pop, UNLABELLED)))
        style_of = population_styles(names, group_of)
        members = {pop: labels == pop for pop in names}
    elif Q is not None:
        dominant = np.asarray(Q).argmax(axis=1)
        names = [f"cluster {k + 1}" for k in range(np.asarray(Q).shape[1]) if (dominant == k).any()]
        members = {f"cluster {k + 1}": dominant == k for k in range(np.asarray(Q).shape[1])}
        style_of = {f"cluster {k + 1}": (cluster_colour(k), "o") for k in range(np.asarray(Q).shape[1])}
    else:
        names = ["individuals"]
        members = {"individuals": np.ones(scores.shape[0], bool)}
        style_of = {"individuals": (CLUSTER_COLOURS[0], "o")}
    for ax, (a, b) in zip(axes, pairs):
        for name in names:
            mask = members[name]
            colour, marker = style_of[name]
            ax.scatter(scores[mask, a], scores[mask, b], s=14, color=colour, alpha=0.85, linewidths=0.3,
                       edgecolors="white", marker=marker, label=name)
        ax.set_xlabel(f"PC{a + 1} ({100 * explained[a]:.1f}%)")
        ax.set_ylabel(f"PC{b + 1} ({100 * explained[b]:.1f}%)")
        ax.axhline(0, color="0.85", linewidth=0.6, zorder=0)
        ax.axvline(0, color="0.85", linewidth=0.6, zorder=0)
        ax.tick_params(labelsize=8)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=8, markerscale=1.3,
                    ncol=1 if len(names) <= 16 else 2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi)


