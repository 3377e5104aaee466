"""``genoae demo``: the main job on the 1000 Genomes subset shipped inside the package, with a structure plot."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from genoae.commands.admix import run_admix
from genoae.io.labels import read_labels
from genoae.plot import structure_plot


def demo_data_path():
    """The demo data shipped inside the package: 500 individuals × 805 SNPs of 1000 Genomes (PLINK prefix)."""
    return resources.files("genoae") / "data" / "demo_1kg805.bed"


def run_demo(out_dir="genoae_demo", K: int = 5, seed: int = 42, device: str = "auto", threads: int | None = None,
             progress: bool = True, echo=print):
    """``genoae demo``: ``genoae admix`` on the shipped data, mean Q per super-population, a structure plot."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = Path(str(demo_data_path()))
    echo(f"demo data: {data.with_suffix('')} (1000 Genomes phase 3, 500 individuals from 5 super-populations, "
         f"805 ancestry-informative SNPs)")
    run = run_admix(data, [K], prefix=out_dir / "demo", seed=seed, device=device, threads=threads,
                    progress=progress, echo=echo)
    labels = np.asarray(read_labels(data.with_suffix(".labels.tsv"), column="super_pop"))  # rows in .fam order
    Q = run.estimators[K].Q_
    # mean Q per super-population: the demo's one-screen summary
    for name in sorted(set(labels.tolist())):
        echo(f"  {name}: mean Q " + " ".join(f"{x:.3f}" for x in Q[labels == name].mean(axis=0)))
    plot_path = out_dir / f"demo.{K}.structure.png"
    structure_plot([(Q, f"K={K}")], plot_path, labels=labels)
    run.files.append(plot_path)
    echo(f"wrote {len(run.files)} files to {out_dir}/")
    return run
