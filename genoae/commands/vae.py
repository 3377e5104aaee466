"""``genoae vae train / sample / evaluate``: read, call :mod:`genoae.simulate`, write the model, genomes or report."""
from __future__ import annotations

import warnings
from pathlib import Path

from genoae.device import set_threads
from genoae.errors import InputError, InputWarning, UsageError
from genoae.genotypes import Genotypes
from genoae.commands.common import check_outputs
from genoae.io import input_files, output_files, output_format, read_genotypes, write_genotypes
from genoae.io.jsonfile import write_json
from genoae.io.labels import read_labels
from genoae.plot import write_evaluation_plots
from genoae.simulate import SyntheticGenomes
from genoae.simulate.evaluate import evaluate_synthetic, synthetic_populations


def train_file(input_path, output, labels=None, seed: int | None = 0, threads: int | None = None,
               pop_column=None, **params) -> SyntheticGenomes:
    """``genoae vae train``: read genotypes (any format) and optional population labels, fit, save the model."""
    check_outputs([output], input_files(input_path) + [labels])
    set_threads(threads)
    genotypes = read_genotypes(input_path)
    populations = read_labels(labels, genotypes.samples, column=pop_column) if labels else None
    estimator = SyntheticGenomes(seed=seed, **params).fit(genotypes, populations)
    estimator.save(output)
    return estimator


def parse_population_counts(text: str | None) -> dict | None:
    """``"YRI=500,CEU=500"`` -> {"YRI": 500, "CEU": 500}."""
    if not text:
        return None
    counts = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise UsageError(f"--pop expects POP=N[,POP=N...], got {item!r}")
        counts[name.strip()] = counts.get(name.strip(), 0) + int(value)
    return counts


def load_models(model_paths, device: str = "auto"):
    """One model file: its :class:`SyntheticGenomes`; several (one per chromosome or region): a
    :class:`~genoae.simulate.estimator.RegionModels` that samples them together as one genome."""
    from genoae.simulate.estimator import RegionModels

    models = [SyntheticGenomes.load(path, device=device) for path in _model_list(model_paths)]
    return models[0] if len(models) == 1 else RegionModels(models)


def _model_list(model_paths) -> list:
    return [model_paths] if isinstance(model_paths, (str, Path)) else list(model_paths)


def sample_file(model_path, output, n: int | None = None, populations: str | None = None, seed: int | None = 0,
                temperature: float = 1.0, device: str = "auto", threads: int | None = None, shrink: float = 0.0,
                shrink_groups=None) -> Genotypes:
    """``genoae vae sample``: load a model (or several, one per chromosome or region: sampled as one genome),
    draw synthetic individuals, write them (format by extension).  ``shrink`` pulls each population toward its
    group in ``shrink_groups`` (a labels table with population and super-population columns), else toward all."""
    set_threads(threads)
    output_format(output)  # refuse an unknown extension before the work
    check_outputs(output_files(output), _model_list(model_path) + ([shrink_groups] if shrink_groups else []))
    groups = read_shrink_groups(shrink_groups)
    estimator = load_models(model_path, device=device)
    genotypes = estimator.sample(n=n, counts=parse_population_counts(populations), seed=seed,
                                 temperature=temperature, shrink=shrink, groups=groups)
    write_genotypes(genotypes, output)
    return genotypes


def read_shrink_groups(path) -> dict | None:
    """Population -> super-population from ``--shrink-groups`` (None without one)."""
    from genoae.io.labels import read_label_groups

    if path is None:
        return None
    groups = read_label_groups(path)
    if groups is None:
        raise InputError(path, "expected a header with a population column (pop, population, ...) and a "
                               "super-population column (super_pop, continent, region)")
    return groups


def output_prefix(output) -> str:
    """OUT for OUT.vcf.gz, OUT.bed, OUT.h5, ... (where the companions OUT.true.Q and OUT.lai.tsv go)."""
    text = str(output)
    for suffix in (".vcf.gz", ".vcf.bgz", ".vcf", ".bcf", ".bed", ".h5", ".hdf5", ".npy", ".vcz", ".zarr"):
        if text.lower().endswith(suffix):
            return text[: -len(suffix)]
    return text


def sample_admixed_file(model_path, output, n: int, mixture: str, generations: float = 8.0,
                        recombination_map=None, dirichlet: float | None = None, seed: int | None = 0,
                        temperature: float = 1.0, device: str = "auto", threads: int | None = None):
    """``genoae vae sample --admixed``: admixed individuals (:func:`genoae.simulate.admixed.admixed_cohort`)
    written as OUT (format by extension), OUT.true.Q and OUT.lai.tsv, as one set.  Returns the cohort and the
    files written."""
    from genoae.io.atomic import OutputSet
    from genoae.simulate.admixed import (admixed_cohort, parse_mixture, read_genetic_map, write_segments,
                                         write_true_q)

    set_threads(threads)
    output_format(output)  # refuse an unknown extension before the work
    prefix = output_prefix(output)
    companions = [Path(f"{prefix}.true.Q"), Path(f"{prefix}.lai.tsv")]
    check_outputs(output_files(output) + companions,
                  _model_list(model_path) + ([recombination_map] if recombination_map else []))
    sources = parse_mixture(mixture)
    genetic_map = read_genetic_map(recombination_map) if recombination_map else None
    estimator = load_models(model_path, device=device)
    cohort = admixed_cohort(estimator, sources, n, generations=generations, genetic_map=genetic_map,
                            dirichlet=dirichlet, seed=seed, temperature=temperature)
    with OutputSet(prefix) as files:
        write_genotypes(cohort.genotypes, files.path(output))
        write_true_q(cohort, files.path(companions[0]))
        write_segments(cohort, files.path(companions[1]))
        written = [files.final(path) for path in sorted(files.staging.iterdir())]
    return cohort, written


def report_prefix(output) -> Path:
    """REPORT for ``-o REPORT`` or ``-o REPORT.json``: where REPORT.json and its companions go."""
    prefix = Path(output)
    return prefix.with_suffix("") if prefix.suffix.lower() == ".json" else prefix


def write_report(report: dict, arrays: dict, prefix) -> list:
    """Write PREFIX.json and the PNG plots PREFIX_<name>.png (atomically).  Returns the paths written."""
    prefix = report_prefix(prefix)
    json_path = prefix.parent / f"{prefix.name}.json"
    write_json(report, json_path)
    return [json_path] + write_evaluation_plots(arrays, prefix)


def evaluate_files(real_path, synthetic_path, output, holdout_path=None, labels=None, ld_window: int = 100,
                   max_rows: int | None = 5000, seed: int = 0, reference_repeats: int = 5, pop_column=None,
                   progress: bool = False, frontier_model=None, temperatures=None, shrinks=None,
                   shrink_groups=None) -> dict:
    """``genoae vae evaluate``: read the sets, compute the report, write PREFIX.json + PNG plots (as one set).

    ``labels`` labels the real and holdout individuals; synthetic individuals are labelled from their names
    (``synth_<pop>_<i>``).  The classifier metric needs labels and a holdout.

    ``frontier_model`` (model file(s) trained on ``real_path``): also score that model's sampling settings
    (``temperatures``, ``shrinks`` toward the groups of ``shrink_groups`` or all populations; None: the defaults of
    :mod:`genoae.simulate.frontier`) and the per-population-frequency generator beside SYNTHETIC
    (:func:`genoae.simulate.frontier.privacy_frontier`), written as PREFIX.frontier.tsv and PREFIX_frontier.png and
    under ``frontier`` in PREFIX.json.  The settings, labels and groups are checked before any work.
    """
    from genoae.io.atomic import OutputSet

    frontier = None
    if frontier_model is None:
        if any(option is not None for option in (temperatures, shrinks, shrink_groups)):
            raise UsageError("--temperatures, --shrinks and --shrink-groups set the frontier's settings: give "
                             "--frontier MODEL too")
    elif holdout_path is None:
        raise UsageError("--frontier needs --holdout: the privacy loss compares the training genomes with real "
                         "genomes the model never saw")
    else:
        frontier = _frontier_options(frontier_model, temperatures, shrinks, shrink_groups)
    real = read_genotypes(real_path)
    synthetic = read_genotypes(synthetic_path)
    holdout = read_genotypes(holdout_path) if holdout_path else None
    real_pops = synth_pops = hold_pops = None
    if labels and holdout is None:
        warnings.warn(InputWarning("--pop without --holdout: no train-on-synthetic accuracy row (the classifier "
                                   "trained on synthetic genomes is scored on real genomes not used in training)"))
    if labels and holdout is not None:
        real_pops = read_labels(labels, real.samples, column=pop_column)
        hold_pops = read_labels(labels, holdout.samples, column=pop_column)
        synth_pops = synthetic_populations(synthetic.samples.iid)
    if frontier is not None and real_pops is not None and frontier["model"].populations_:
        from genoae.simulate.frontier import check_labels

        check_labels(frontier["model"], real_pops, frontier["groups"] if frontier["shrinks"] else None)
    classify = real_pops is not None and all(synth_pops)
    if real_pops is not None and not classify:  # SYNTH's own classifier row only; the frontier keeps the labels
        warnings.warn(InputWarning("synthetic individuals are not named synth_<pop>_<i>: no train-on-synthetic "
                                   "accuracy row for them"))
    report, arrays = evaluate_synthetic(real, synthetic, holdout, real_pops if classify else None, synth_pops,
                                        hold_pops, ld_window, max_rows, seed, reference_repeats, progress=progress)
    report["inputs"] = {"training": str(real_path), "synthetic": str(synthetic_path),
                        "holdout": None if holdout_path is None else str(holdout_path)}
    if frontier is not None:
        points = _frontier_points(report, real, holdout, real_pops, hold_pops, frontier, seed, ld_window,
                                  max_rows, progress)
    prefix = report_prefix(output)
    with OutputSet(prefix) as files:
        staged = files.path(prefix)
        written = _write_frontier(points, report, staged) if frontier is not None else []
        written = write_report(report, arrays, staged) + written
        report["files"] = [str(files.final(path)) for path in written]
    return report


def _frontier_options(model_paths, temperatures, shrinks, shrink_groups) -> dict:
    """The model(s), the settings (checked) and the shrinkage groups of ``vae evaluate --frontier``."""
    from genoae.simulate.frontier import DEFAULT_SHRINKS, DEFAULT_TEMPERATURES, settings

    groups = read_shrink_groups(shrink_groups)
    model = load_models(model_paths)
    options = {"model": model, "groups": groups,
               "temperatures": DEFAULT_TEMPERATURES if temperatures is None else tuple(temperatures),
               "shrinks": DEFAULT_SHRINKS if shrinks is None else tuple(shrinks)}
    settings(model, options["temperatures"], options["shrinks"])
    return options


def _frontier_points(report, real, holdout, real_pops, hold_pops, options, seed, ld_window, max_rows,
                     progress) -> list:
    """SYNTH's point and those of :func:`genoae.simulate.frontier.privacy_frontier`; sets ``report["frontier"]``."""
    from genoae.simulate.frontier import point_from_report, privacy_frontier, summarise

    points = [point_from_report("evaluated set", "evaluated", None, report)]
    points += privacy_frontier(options["model"], real, holdout, real_pops, hold_pops,
                               temperatures=options["temperatures"], shrinks=options["shrinks"],
                               groups=options["groups"], seed=seed, ld_window=ld_window, max_rows=max_rows,
                               progress=progress)
    fresh = report["privacy_loss"].get("fresh_real_reference")
    model = options["model"]
    accounts = [getattr(m, "privacy_", None) for m in getattr(model, "models", [model])]
    report["frontier"] = {"points": [p.as_dict() for p in points], **summarise(points, fresh),
                          "model_privacy": [None if a is None else a.as_dict() for a in accounts]}
    return points


def _write_frontier(points, report, prefix) -> list:
    """PREFIX.frontier.tsv and PREFIX_frontier.png."""
    from genoae.io.atomic import atomic_open
    from genoae.plot import write_frontier_plot
    from genoae.simulate.frontier import frontier_table

    table = prefix.parent / f"{prefix.name}.frontier.tsv"
    with atomic_open(table, "w") as handle:
        handle.write(frontier_table(points))
    fresh = report["privacy_loss"].get("fresh_real_reference")
    return [table, write_frontier_plot(points, fresh, prefix.parent / f"{prefix.name}_frontier.png")]
