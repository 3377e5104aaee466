"""``genoae compare``: read the genotypes, the runs and the labels; compare; write the JSON report and its plots."""
from __future__ import annotations

from pathlib import Path

from genoae.commands.common import check_outputs, check_prefix, parse_ks
from genoae.compare import Comparison, compare_runs, load_run_specs
from genoae.io import read_genotypes
from genoae.io.jsonfile import write_json
from genoae.io.labels import read_labels
from genoae.pca import pca
from genoae.plot import pca_plot, structure_plot


def compare_files(genotypes_path, run_specs, pop_path=None, sources=(), p_conventions=(), ks=None,
                  device="cpu", report=None, pop_column=None) -> Comparison:
    """Read genotypes, runs and labels, and compare (see :func:`genoae.compare.compare_runs`).

    ``report``: the prefix the report will be written to (checked here, before the work).
    ``ks`` takes the ``-k`` syntax of every command (:func:`genoae.commands.common.parse_ks`); empty keeps every K.
    """
    if report is not None:  # refused before the work, not after it
        inputs = [genotypes_path, pop_path, *[spec for spec in run_specs if Path(spec).is_file()]]
        check_outputs(report_paths(report), inputs)
    genotypes = read_genotypes(genotypes_path)
    runs = load_run_specs(run_specs, sources, p_conventions, parse_ks(ks))
    labels = None if pop_path is None else read_labels(pop_path, genotypes.samples, column=pop_column,
                                                                    missing_ok=True)
    return compare_runs(genotypes, runs, labels=labels, device=device)


def report_paths(prefix) -> tuple[Path, Path, Path]:
    """``(PREFIX.json, PREFIX_structure.png, PREFIX_pca.png)``; a ``.json`` on ``prefix`` is dropped."""
    prefix = Path(check_prefix(prefix))
    if prefix.suffix.lower() == ".json":
        prefix = prefix.with_suffix("")
    return tuple(prefix.with_name(prefix.name + tail) for tail in (".json", "_structure.png", "_pca.png"))


def write_report(comparison: Comparison, prefix, plots: bool = True, seed: int = 0, device="cpu") -> list[Path]:
    """Write ``PREFIX.json`` and (with ``plots``) ``PREFIX_structure.png`` and ``PREFIX_pca.png``, atomically.

    The PCA (of the compared genotypes) is coloured by population with labels, else by the dominant cluster of
    the first run with the largest K, in the structure plot's colours.

    Returns
    -------
    list of Path written.
    """
    json_path, structure_png, pca_png = report_paths(prefix)
    write_json(comparison.to_dict(), json_path)
    written = [json_path]
    if plots:
        panels = [(run.Q_aligned, f"{run.name}") for run in comparison.runs]
        structure_plot(panels, structure_png, labels=comparison.labels)
        written.append(structure_png)
        if comparison.genotypes is not None:
            scores, explained = pca(comparison.genotypes, n_components=4, seed=seed, device=device)
            largest = max(comparison.runs, key=lambda run: run.K)
            png = pca_png
            pca_plot(scores, explained, png, labels=comparison.labels,
                     Q=None if comparison.labels is not None else largest.Q_aligned)
            written.append(png)
    return written
