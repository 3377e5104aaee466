"""Structure (stacked-bar) plots of Q: individuals grouped by population, one panel per run or K.

Colours are fixed per aligned cluster index (:func:`~genoae.plot.figure.cluster_colour`), so after
:func:`genoae.compare.align_runs` one ancestry has one colour in every panel, every K and the PCA.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.errors import UsageError
from genoae.plot.figure import UNLABELLED, check_format, cluster_colour, pyplot, save_figure


def structure_order(Q: np.ndarray, labels=None, population_order=None, coarser=()):
    """Order individuals for a structure plot.

    Populations are grouped.  Groups are ordered by the cluster that dominates their mean Q, first in the
    ``coarser`` Q matrices (smaller K: continents before the populations inside them), then in ``Q``, then by
    how much it dominates (most first), unless ``population_order`` is given.  Inside a group, individuals are
    sorted by their own dominant cluster in ``Q`` (in the order of the group's mean Q) and then by its
    proportion, largest first.

    Parameters
    ----------
    Q : ndarray, float, shape (n_samples, K)   the (aligned) Q the order is taken from
    labels : array of str, shape (n_samples,), optional
    population_order : list of str, optional
    coarser : sequence of ndarray, shape (n_samples, K_i), optional   aligned Q of smaller K, coarsest first

    Returns
    -------
    order : ndarray, int64, shape (n_samples,)   individual indices, left to right
    groups : list of (label, start, stop)         positions of each population in ``order``
    """
    Q = np.asarray(Q, np.float64)
    n = Q.shape[0]
    if labels is None:
        labels = np.full(n, "", dtype=object)
    labels = np.array([str(x) if str(x) != "" else UNLABELLED for x in labels], dtype=object)
    pops = list(dict.fromkeys(labels.tolist()))
    members_of = {pop: labels == pop for pop in pops}
    means = {pop: Q[members_of[pop]].mean(axis=0) for pop in pops}
    if population_order is not None:
        missing = [p for p in pops if p not in population_order]
        pops = [p for p in population_order if p in means] + missing
    else:
        def key(pop):
            coarse = tuple(int(np.argmax(np.asarray(C)[members_of[pop]].mean(axis=0))) for C in coarser)
            return (pop == UNLABELLED, coarse, int(np.argmax(means[pop])), -float(np.max(means[pop])), pop)

        pops.sort(key=key)
    order, groups = [], []
    for pop in pops:
        members = np.flatnonzero(members_of[pop])
        rank = np.empty(Q.shape[1], np.int64)
        rank[np.argsort(-means[pop], kind="stable")] = np.arange(Q.shape[1])
        dominant = Q[members].argmax(axis=1)
        keys = np.lexsort((-Q[members, dominant], rank[dominant]))
        start = len(order)
        order.extend(members[keys].tolist())
        groups.append((pop, start, len(order)))
    return np.array(order, dtype=np.int64), groups


# ====================================================================== structure plot
def population_file_order(labels, group_of: dict | None = None) -> list:
    """Populations in the order they first appear in ``labels``; with ``group_of`` (population ->
    super-population), grouped by super-population in the order the groups first appear."""
    pops = list(dict.fromkeys(str(x) if str(x) != "" else UNLABELLED for x in labels))
    if group_of:
        group_order = list(dict.fromkeys(group_of.get(pop, UNLABELLED) for pop in pops))
        pops.sort(key=lambda pop: group_order.index(group_of.get(pop, UNLABELLED)))
    return pops


def structure_plot(panels, path, labels=None, population_order="file", sort_by: int | None = None,
                   width: float | None = None, panel_height: float = 1.05, dpi: int = 200, title: str | None = None,
                   legend: bool = True, group_of: dict | None = None) -> Path:
    """Draw stacked-bar ancestry plots, one panel per Q, individuals in the same columns in every panel.

    Parameters
    ----------
    panels : list of (Q, name)
        Q : ndarray, float, shape (n_samples, K), **already aligned** (see :func:`genoae.compare.align_runs`);
        name : str shown left of the panel (``K=3``, a run name).
    path : str or Path     ``.png``, ``.pdf`` or ``.svg``
    labels : array of str, shape (n_samples,), optional
        Populations: individuals are grouped, separated by lines, and named under the last panel.
    population_order : "file", "clusters" or list of str
        "file": as the populations first appear in ``labels`` (grouped by super-population with ``group_of``);
        "clusters": by the cluster that dominates each population (coarse K first); or the order itself.
    legend : bool     name the clusters above the first panel
    group_of : dict, optional    population -> super-population, for the "file" order
    sort_by : int, optional
        Index of the panel whose Q orders the individuals (default: the panel with the largest K).
    """
    plt = pyplot()
    path = Path(path)
    check_format(path)
    if not panels:
        raise UsageError("nothing to plot")
    n = panels[0][0].shape[0]
    for Q, name in panels:
        if Q.shape[0] != n:
            raise UsageError(f"panel {name!r} has {Q.shape[0]} individuals, the first has {n}")
    if labels is not None and len(labels) != n:
        raise UsageError(f"{len(labels)} population labels for {n} individuals")
    if sort_by is None:
        sort_by = int(np.argmax([Q.shape[1] for Q, _ in panels]))
    # populations are grouped coarse to fine: by their dominant cluster at each smaller K (K >= 2), then at sort_by
    coarser = sorted((Q for Q, _ in panels if 2 <= Q.shape[1] < panels[sort_by][0].shape[1]),
                     key=lambda Q: Q.shape[1])
    if isinstance(population_order, str):
        if population_order not in ("file", "clusters"):
            raise UsageError(f"population order {population_order!r}: expected file, clusters or a list of names")
        population_order = (population_file_order(labels, group_of) if population_order == "file"
                            and labels is not None else None)
    order, groups = structure_order(panels[sort_by][0], labels, population_order, coarser=coarser)
    labelled = labels is not None and any(str(x) != "" for x in labels)
    names = [pop for pop, _, _ in groups]
    n_panels = len(panels)
    width = width or float(np.clip(3.0 + n / 60.0, 7.0, 12.0))
    # population names are turned upright when one would be wider than its group (~0.075 in per character)
    crowded = labelled and any((stop - start) / n * width < 0.075 * len(pop) + 0.05 for pop, start, stop in groups)
    label_room = (0.15 + 0.068 * max(len(s) for s in names) if crowded else 0.35) if labelled else 0.08
    left_room = 0.15 + 0.075 * max(len(name) for _, name in panels)
    top_room = 0.35 if (legend or title) else 0.08
    height = panel_height * n_panels + label_room + top_room
    # fixed margins (no bbox_inches="tight"): the file is exactly width x height inches at ``dpi``
    fig, axes = plt.subplots(n_panels, 1, figsize=(width, height), sharex=True, squeeze=False,
                             gridspec_kw={"hspace": 0.12})
    fig.subplots_adjust(left=left_room / width, right=1 - 0.3 / width, bottom=label_room / height,
                        top=1 - top_room / height)
    axes = axes[:, 0]
    x = np.arange(n + 1)
    for ax, (Q, name) in zip(axes, panels):
        Qs = np.asarray(Q, np.float64)[order]
        bottom = np.zeros(n)
        for k in range(Qs.shape[1]):
            top = bottom + Qs[:, k]
            # step fills are fast for any n and leave no gaps between neighbouring individuals
            ax.fill_between(x, np.append(bottom, bottom[-1]), np.append(top, top[-1]), step="post",
                            color=cluster_colour(k), linewidth=0, antialiased=False)
            bottom = top
        ax.set_xlim(0, n)
        ax.set_ylim(0, 1)
        ax.yaxis.tick_right()  # the left side holds the panel's name
        ax.set_yticks([0, 0.5, 1])
        ax.set_yticklabels(["0", "0.5", "1"], fontsize=6)
        ax.set_xticks([])
        ax.tick_params(axis="x", length=0)
        ax.tick_params(axis="y", length=2, pad=1)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9, labelpad=6)
        if labelled:
            for _, start, _stop in groups[1:]:
                ax.axvline(start, color="black", linewidth=0.8)
        ax.add_patch(plt.Rectangle((0, 0), n, 1, fill=False, edgecolor="black", linewidth=0.8, clip_on=False))
    if labelled:
        bottom_ax = axes[-1]
        centres = [(start + stop) / 2 for _, start, stop in groups]
        bottom_ax.set_xticks(centres)
        bottom_ax.set_xticklabels(names, fontsize=8 if crowded else 9, rotation=90 if crowded else 0,
                                  ha="center", va="top")
        bottom_ax.tick_params(axis="x", length=0, pad=3)
    if legend:
        K_max = max(Q.shape[1] for Q, _ in panels)
        handles = [plt.Rectangle((0, 0), 1, 1, color=cluster_colour(k)) for k in range(K_max)]
        axes[0].legend(handles, [f"cluster {k + 1}" for k in range(K_max)], ncol=K_max, loc="lower right",
                       bbox_to_anchor=(1.0, 1.02), frameon=False, fontsize=8, handlelength=1.0,
                       columnspacing=1.0)
    if title:
        axes[0].set_title(title, fontsize=10, loc="left")
    return save_figure(fig, path, dpi, tight=False)


