"""Plots of the synthetic-genome evaluation report (matplotlib, Agg backend, written atomically)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from genoae.plot.figure import pyplot, save_figure

COLOURS = {"training": "0.3", "holdout": "tab:blue", "synthetic": "tab:orange"}


def write_evaluation_plots(arrays: dict, prefix) -> list:
    """PREFIX_allele_frequency.png, PREFIX_ld_decay.png, PREFIX_pca.png, PREFIX_dcr.png.  Returns their paths."""
    plt = pyplot()
    prefix = Path(prefix)
    paths = []
    others = [k for k in ("holdout", "synthetic") if k in arrays["frequency"]]

    fig, axes = plt.subplots(1, len(others), figsize=(4.2 * len(others), 4), squeeze=False)
    for ax, name in zip(axes[0], others):
        ax.scatter(arrays["frequency"]["training"], arrays["frequency"][name], s=3, alpha=0.4,
                   color=COLOURS[name])
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
        ax.set(xlabel="A2 frequency, training", ylabel=f"A2 frequency, {name}", title=name)
    paths.append(save_figure(fig, prefix.parent / f"{prefix.name}_allele_frequency.png", dpi=110))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, name in enumerate(others):
        decay = arrays["ld_decay"][name]
        if i == 0:
            ax.plot(decay["distance"], decay["reference"], "o-", color=COLOURS["training"], label="training", ms=3)
        ax.plot(decay["distance"], decay["other"], "o-", color=COLOURS[name], label=name, ms=3)
    if others:
        ax.set(xlabel=f"distance ({arrays['ld_decay'][others[0]]['distance_unit']})", ylabel="mean r²",
               title="LD decay")
    ax.legend()
    paths.append(save_figure(fig, prefix.parent / f"{prefix.name}_ld_decay.png", dpi=110))

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name in ["training"] + others:
        scores = arrays["pca"][name]
        ax.scatter(scores[:, 0], scores[:, 1], s=4, alpha=0.4, color=COLOURS[name], label=name)
    ax.set(xlabel="PC1 (fitted on training)", ylabel="PC2", title="PCA: real fit, others projected")
    ax.legend(markerscale=3)
    paths.append(save_figure(fig, prefix.parent / f"{prefix.name}_pca.png", dpi=110))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    top = max(float(np.max(arrays["dcr"][k])) for k in others) if others else 1.0
    bins = np.linspace(0, max(top, 1.0), 40)
    for name in others:
        ax.hist(arrays["dcr"][name], bins=bins, alpha=0.5, density=True, color=COLOURS[name], label=name)
    ax.set(xlabel=f"distance to closest training {arrays['unit'].split()[0]}", ylabel="density",
           title="Distance to closest record")
    ax.legend()
    if arrays.get("privacy"):
        # the privacy loss beside its noise level, where the reader compares the two distributions
        privacy = arrays["privacy"]
        text = f"privacy loss {privacy['synthetic']:+.3f}"
        reference = privacy.get("fresh_real_reference")
        if reference and reference.get("sd") is not None:
            text += f"\nfresh real genomes {reference['mean']:+.3f} ± {reference['sd']:.3f}"
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=8)
    paths.append(save_figure(fig, prefix.parent / f"{prefix.name}_dcr.png", dpi=110))
    return paths


FRONTIER_MARKERS = {"temperature": ("o", "tab:orange"), "shrink": ("s", "tab:green"),
                    "evaluated": ("*", "tab:red"), "frequencies": ("X", "0.3")}


def write_frontier_plot(points, fresh_real: dict | None, path) -> Path:
    """The privacy-utility frontier (:func:`genoae.simulate.frontier.privacy_frontier`): privacy loss against
    train-on-synthetic accuracy (when the points have one) and against AATS, each point labelled with its setting,
    fresh real genomes' privacy loss as a band (mean ± 2 sd).  Returns the path written."""
    plt = pyplot()
    with_accuracy = any(p.accuracy is not None for p in points)
    panels = [("accuracy", "train-on-synthetic accuracy (higher: more useful)")] if with_accuracy else []
    panels.append(("aats", "AATS vs training (0.5 = indistinguishable)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.8), squeeze=False)
    for ax, (field, label) in zip(axes[0], panels):
        if fresh_real and fresh_real.get("sd") is not None:
            low, high = fresh_real["mean"] - 2 * fresh_real["sd"], fresh_real["mean"] + 2 * fresh_real["sd"]
            ax.axvspan(low, high, color="tab:blue", alpha=0.12, label="fresh real genomes (mean ± 2 sd)")
        for knob, (marker, colour) in FRONTIER_MARKERS.items():
            chosen = [p for p in points if p.knob == knob and getattr(p, field) is not None]
            if not chosen:
                continue
            ax.scatter([p.privacy_loss for p in chosen], [getattr(p, field) for p in chosen], marker=marker,
                       s=70 if marker == "*" else 40, color=colour, label=knob, zorder=3)
            for p in chosen:
                ax.annotate(p.name, (p.privacy_loss, getattr(p, field)), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        if field == "aats":
            ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
        ax.set(xlabel="privacy loss (lower is more private)", ylabel=label)
        ax.legend(fontsize=7)
    fig.suptitle("Privacy-utility frontier of the sampling settings")
    return save_figure(fig, path, dpi=110)
