"""The figures people publish: structure (stacked-bar) plots of Q and PCA scatters of genotypes.

Matplotlib with the Agg backend (no display needed); the file type follows the extension (.png, .pdf, .svg).
Colours are fixed per aligned cluster index (:data:`CLUSTER_COLOURS`), so after :func:`genoae.compare.align_runs`
one ancestry has one colour in every panel, every K and the PCA.
"""
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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise UsageError(f"{path}: figure type {suffix or '(none)'!r} not supported; use .png, .pdf or .svg")
    return suffix[1:]


def _save(fig, path, dpi: int, tight: bool = True) -> Path:
    path = Path(path)
    fmt = _check_format(path)
    extra = {"bbox_inches": "tight", "pad_inches": 0.05} if tight else {}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata={"Software": "genoae"} if fmt == "png" else None, **extra)
    _pyplot().close(fig)
    return path


# ====================================================================== ordering
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
def structure_plot(panels, path, labels=None, population_order=None, sort_by: int | None = None,
                   width: float | None = None, panel_height: float = 1.05, dpi: int = 200, title: str | None = None,
                   legend: bool = False) -> Path:
    """Draw stacked-bar ancestry plots, one panel per Q, individuals in the same columns in every panel.

    Parameters
    ----------
    panels : list of (Q, name)
        Q : ndarray, float, shape (n_samples, K), **already aligned** (see :func:`genoae.compare.align_runs`);
        name : str shown left of the panel (``K=3``, a run name).
    path : str or Path     ``.png``, ``.pdf`` or ``.svg``
    labels : array of str, shape (n_samples,), optional
        Populations: individuals are grouped, separated by lines, and named under the last panel.
    sort_by : int, optional
        Index of the panel whose Q orders the individuals (default: the panel with the largest K).
    """
    plt = _pyplot()
    path = Path(path)
    _check_format(path)
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
    fig.subplots_adjust(left=left_room / width, right=1 - 0.08 / width, bottom=label_room / height,
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
        ax.set_yticks([])
        ax.set_xticks([])
        ax.tick_params(axis="both", length=0)
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
    return _save(fig, path, dpi, tight=False)


def structure_plot_runs(runs, path, labels=None, **kwargs) -> Path:
    """Structure plot of several :class:`genoae.compare.Run` (aligned first if they are not)."""
    from genoae.compare import align_runs

    if any(run.order is None for run in runs):
        align_runs(runs)
    names = [f"K={run.K}" if len({r.K for r in runs}) == len(runs) else f"{run.name}" for run in runs]
    return structure_plot([(run.Q_aligned, name) for run, name in zip(runs, names)], path, labels=labels,
                          **kwargs)


# ====================================================================== PCA
def pca_plot(scores, explained, path, labels=None, Q=None, components=((0, 1), (2, 3)), dpi: int = 200,
             title: str | None = None) -> Path:
    """Scatter of PC scores coloured by population (legend) or, without labels, by dominant cluster of ``Q``.

    Parameters
    ----------
    scores : ndarray, float, shape (n_samples, n_components)
    explained : ndarray, float, shape (n_components,)   fraction of variance, shown on the axes
    labels : array of str, shape (n_samples,), optional
    Q : ndarray, float, shape (n_samples, K), optional   aligned Q; colours match the structure plots
    components : pairs of 0-based component indices, one panel each (pairs beyond the computed ones are dropped)
    """
    plt = _pyplot()
    path = Path(path)
    _check_format(path)
    pairs = [(a, b) for a, b in components if max(a, b) < scores.shape[1]]
    if not pairs:
        raise UsageError("too few principal components for the requested panels")
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs) + (1.6 if labels is not None else 0), 4.2),
                             squeeze=False)
    axes = axes[0]
    if labels is not None:
        labels = np.array([str(x) if str(x) != "" else UNLABELLED for x in labels], dtype=object)
        groups = list(dict.fromkeys(labels.tolist()))
        colour_of = {pop: _population_colour(i, len(groups)) for i, pop in enumerate(groups)}
        members = {pop: labels == pop for pop in groups}
        names = groups
    elif Q is not None:
        dominant = np.asarray(Q).argmax(axis=1)
        names = [f"cluster {k + 1}" for k in range(np.asarray(Q).shape[1]) if (dominant == k).any()]
        members = {f"cluster {k + 1}": dominant == k for k in range(np.asarray(Q).shape[1])}
        colour_of = {f"cluster {k + 1}": cluster_colour(k) for k in range(np.asarray(Q).shape[1])}
    else:
        names = ["individuals"]
        members = {"individuals": np.ones(scores.shape[0], bool)}
        colour_of = {"individuals": CLUSTER_COLOURS[0]}
    markers = "osD^v<>ph*"
    for ax, (a, b) in zip(axes, pairs):
        for i, name in enumerate(names):
            mask = members[name]
            ax.scatter(scores[mask, a], scores[mask, b], s=14, color=colour_of[name], alpha=0.85, linewidths=0.3,
                       edgecolors="white", marker=markers[(i // 10) % len(markers)], label=name)
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
    return _save(fig, path, dpi)


def _population_colour(i: int, n_groups: int) -> str:
    if n_groups <= len(CLUSTER_COLOURS):
        return CLUSTER_COLOURS[i]
    import matplotlib

    return matplotlib.colors.to_hex(matplotlib.colormaps["turbo"](0.05 + 0.9 * i / max(n_groups - 1, 1)))


# ====================================================================== entry points for the CLI
def _labels_for(pop_path, runs, genotypes=None):
    from genoae.io.labels import read_labels

    if pop_path is None:
        return None
    if genotypes is not None:
        return read_labels(pop_path, genotypes.samples, missing_ok=True)
    with_ids = next((run.samples for run in runs if run.samples is not None), None)
    if with_ids is not None:
        return read_labels(pop_path, with_ids, missing_ok=True)
    return read_labels(pop_path, n_samples=runs[0].Q.shape[0] if runs else None)


def plot_structure_files(run_specs, out, pop_path=None, ks=None, sources=(), title=None) -> Path:
    """``genoae plot``: structure plot of the runs named on the command line, K stacked as panels."""
    from genoae.compare import load_run_specs, parse_ks

    runs = load_run_specs(run_specs, sources=sources, ks=parse_ks(ks))
    labels = _labels_for(pop_path, runs)
    return structure_plot_runs(runs, out, labels=labels, title=title)


def plot_pca_files(genotypes_path, out, pop_path=None, run_specs=(), ks=None, sources=(), seed=0, title=None,
                   device="cpu") -> Path:
    """``genoae plot --pca``: PCA of genotypes, coloured by population or by the dominant cluster of a run."""
    from genoae.compare import align_runs, load_run_specs, parse_ks
    from genoae.io import read_genotypes

    genotypes = read_genotypes(genotypes_path)
    runs = load_run_specs(run_specs, sources=sources, ks=parse_ks(ks)) if run_specs else []
    labels = _labels_for(pop_path, runs, genotypes)
    Q = None
    if runs and labels is None:
        align_runs(runs)
        Q = max(runs, key=lambda run: run.K).Q_aligned
        if Q.shape[0] != genotypes.n_samples:
            raise UsageError(f"{runs[0].q_path}: Q has {Q.shape[0]} rows, the genotypes {genotypes.n_samples} "
                             "individuals")
    from genoae.pca import pca

    scores, explained = pca(genotypes, n_components=10, seed=seed, device=device)
    return pca_plot(scores, explained, out, labels=labels, Q=Q, title=title)
