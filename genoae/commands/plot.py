"""``genoae plot``: structure plots of ancestry runs (K stacked as panels, clusters aligned), or a genotype PCA."""
from __future__ import annotations

from pathlib import Path

from genoae.commands.common import parse_ks
from genoae.compare import align_runs, load_run_specs
from genoae.errors import UsageError
from genoae.io import read_genotypes
from genoae.io.labels import read_label_groups, read_labels
from genoae.pca import pca
from genoae.plot import pca_plot, structure_plot


def structure_plot_runs(runs, path, labels=None, **kwargs) -> Path:
    """Structure plot of several :class:`genoae.compare.Run` (aligned first if they are not)."""
    if any(run.order is None for run in runs):
        align_runs(runs)
    names = [f"K={run.K}" if len({r.K for r in runs}) == len(runs) else f"{run.name}" for run in runs]
    return structure_plot([(run.Q_aligned, name) for run, name in zip(runs, names)], path, labels=labels,
                          **kwargs)


def _labels_for(pop_path, runs, genotypes=None, column=None):
    """Population labels in the individuals' order: matched by ID to the genotypes or to a run that names its
    individuals (.h5), else taken in file order."""
    if pop_path is None:
        return None
    if genotypes is not None:
        return read_labels(pop_path, genotypes.samples, column=column, missing_ok=True)
    with_ids = next((run.samples for run in runs if run.samples is not None), None)
    if with_ids is not None:
        return read_labels(pop_path, with_ids, column=column, missing_ok=True)
    return read_labels(pop_path, column=column, n_samples=runs[0].Q.shape[0] if runs else None)


def _population_order(text):
    """``--pop-order``: "file", "clusters" or a comma-separated list of populations."""
    if text is None or text in ("file", "clusters"):
        return text or "file"
    return [name.strip() for name in text.split(",") if name.strip()]


def plot_structure_files(run_specs, out, pop_path=None, ks=None, sources=(), title=None, pop_column=None,
                         pop_order=None) -> Path:
    """``genoae plot``: structure plot of the runs named on the command line, K stacked as panels.

    ``pop_order``: "file" (default: as in the labels file, grouped by super-population when the table has one),
    "clusters" (by dominant cluster) or "POP1,POP2,...".
    """
    runs = load_run_specs(run_specs, sources=sources, ks=parse_ks(ks))
    labels = _labels_for(pop_path, runs, column=pop_column)
    group_of = read_label_groups(pop_path, pop_column) if pop_path is not None else None
    return structure_plot_runs(runs, out, labels=labels, title=title, population_order=_population_order(pop_order),
                               group_of=group_of)


def plot_pca_files(genotypes_path, out, pop_path=None, run_specs=(), ks=None, sources=(), seed=0, title=None,
                   device="cpu", pop_column=None) -> Path:
    """``genoae plot --pca``: PCA of genotypes, coloured by population or by the dominant cluster of a run."""
    genotypes = read_genotypes(genotypes_path)
    runs = load_run_specs(run_specs, sources=sources, ks=parse_ks(ks)) if run_specs else []
    labels = _labels_for(pop_path, runs, genotypes, column=pop_column)
    Q = None
    if runs and labels is None:
        align_runs(runs)
        Q = max(runs, key=lambda run: run.K).Q_aligned
        if Q.shape[0] != genotypes.n_samples:
            raise UsageError(f"{runs[0].q_path}: Q has {Q.shape[0]} rows, the genotypes {genotypes.n_samples} "
                             "individuals")
    scores, explained = pca(genotypes, n_components=10, seed=seed, device=device)
    group_of = read_label_groups(pop_path, pop_column) if pop_path is not None else None
    return pca_plot(scores, explained, out, labels=labels, Q=Q, title=title, group_of=group_of)
