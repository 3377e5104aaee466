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
