"""The privacy-utility frontier of a synthetic-genome model's sampling knobs.

A model can be sampled sharper or more diffuse (the latent ``temperature``) and with each population's input pulled
toward its group (``shrink``, :meth:`genoae.simulate.SyntheticGenomes.sample_rows`).  Each setting trades privacy
for utility differently; :func:`privacy_frontier` draws one synthetic set per setting, as large as the training
set and with its population counts, and scores every set on the same axes as ``genoae vae evaluate``: privacy
loss (against the training and holdout genomes), train-on-synthetic / test-on-real accuracy (when populations are
labelled), and AATS.  Beside them it scores the generator that draws each SNP from its per-population frequency
(no LD, no network: the floor a model has to beat), so that a user picks a setting knowing what it buys.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genoae.errors import UsageError
from genoae.genotypes import Genotypes, Samples
from genoae.progress import progress_bar
from genoae.simulate.evaluate import evaluate_synthetic

DEFAULT_TEMPERATURES = (0.7, 1.0, 1.3)
DEFAULT_SHRINKS = (0.1, 0.25, 0.5)
FREQUENCY_GENERATOR = "per-population frequencies"


@dataclass
class FrontierPoint:
    """One synthetic set on the frontier.

    ``privacy_loss`` is AATS(synthetic vs holdout) − AATS(synthetic vs training): 0 for genomes that are no closer
    to the training genomes than to fresh ones.  ``accuracy`` is the train-on-synthetic / test-on-real population
    classifier's (None without labels).  ``aats`` is the adversarial accuracy against the training genomes
    (0.5 = indistinguishable), with its two halves ``aa_truth`` and ``aa_syn``.
    """

    name: str
    knob: str                  # "temperature", "shrink", "evaluated" (the set given), or "frequencies"
    value: float | None
    privacy_loss: float
    accuracy: float | None
    aats: float
    aa_truth: float
    aa_syn: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def point_from_report(name: str, knob: str, value, report: dict) -> FrontierPoint:
    """A frontier point from a :func:`genoae.simulate.evaluate.evaluate_synthetic` report (with a holdout)."""
    accuracy = report.get("population_classification", {}).get("train_synthetic_test_real")
    aats = report["aats"]["synthetic"]
    return FrontierPoint(name, knob, None if value is None else float(value), report["privacy_loss"]["synthetic"],
                         None if accuracy is None else float(accuracy), aats["aats"], aats["aa_truth"],
                         aats["aa_syn"])


def frequency_generator(training: Genotypes, populations=None, seed: int = 0) -> Genotypes:
    """As many individuals as ``training``, each allele drawn on its own from its population's A2 frequency in
    ``training`` (over observed calls; all individuals when ``populations`` is None): no linkage, no network.
    Individuals are named ``synth_<pop>_<i>`` like sampled ones, grouped by population in sorted order, with their
    populations in ``info["populations"]``, and are phased (two independent haplotypes).
    """
    rng = np.random.default_rng(seed)
    labels = np.full(training.n_samples, "") if populations is None else np.asarray(populations, dtype=str)
    haplotypes, names, drawn_labels = [], [], []
    for pop in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == pop)
        freq = np.nan_to_num(training.subset(samples=members).allele_freqs(), nan=0.0)  # 0 where none observed
        haplotypes.append((rng.random((len(members), 2, training.n_variants)) < freq).astype(np.int8))
        prefix = f"synth_{pop}_" if pop else "synth_"
        names += [f"{prefix}{i + 1}" for i in range(len(members))]
        drawn_labels += [pop] * len(members)
    drawn = Genotypes.from_haplotypes(np.concatenate(haplotypes), Samples(np.array(names)), training.variants,
                                      source="per-population frequencies")
    drawn.info["populations"] = np.array(drawn_labels, dtype=str)
    return drawn


def settings(model, temperatures=DEFAULT_TEMPERATURES, shrinks=DEFAULT_SHRINKS) -> list[tuple[str, str, float]]:
    """``(name, knob, value)`` of each setting: every temperature (no shrinkage), then every shrinkage at
    temperature 1 (only for a model trained with populations: an unconditional one has nothing to shrink, so its
    shrinkages are left out).  Temperatures must be > 0 and shrinkages in (0, 1]; give none to leave a knob out."""
    out = [(f"temperature {t:g}", "temperature", float(t)) for t in temperatures]
    if model.populations_:
        out += [(f"shrink {s:g}", "shrink", float(s)) for s in shrinks]
    if not out:
        raise UsageError("the frontier needs at least one temperature or shrinkage")
    for _, knob, value in out:
        if (knob == "temperature" and value <= 0) or (knob == "shrink" and not 0 < value <= 1):
            raise UsageError(f"{knob} {value:g}: temperatures must be > 0 and shrinkages in (0, 1]")
    return out


def privacy_frontier(model, training: Genotypes, holdout: Genotypes, training_populations=None,
                     holdout_populations=None, temperatures=DEFAULT_TEMPERATURES, shrinks=DEFAULT_SHRINKS,
                     groups: dict | None = None, seed: int = 0, ld_window: int = 100, max_rows: int | None = 5000,
                     progress: bool = False) -> list[FrontierPoint]:
    """Score the model's sampling settings and the per-population-frequency generator on one frontier.

    Parameters
    ----------
    model : SyntheticGenomes or RegionModels
        Trained on ``training`` (its population counts are the training set's when it was trained with labels).
    training, holdout : Genotypes
        The genomes the model was trained on, and real genomes it never saw (the privacy loss compares the two).
    training_populations, holdout_populations : array_like of str, optional
        Labels per individual, in the model's population names: the accuracy axis and the per-population
        frequencies.  Without them only privacy loss and AATS are scored.
    groups : dict, optional
        Population -> group (e.g. super-population) for ``shrink`` (default: toward all populations).

    Returns
    -------
    list of FrontierPoint, the model's settings in :func:`settings` order, then the frequency generator
    """
    chosen = settings(model, temperatures, shrinks)
    labelled = training_populations is not None and holdout_populations is not None
    # the model's sets carry populations only when it was trained with them: an unconditional model's have none
    conditional = labelled and bool(model.populations_)
    if conditional:
        training_populations = np.asarray(training_populations, dtype=str)
        check_labels(model, training_populations, groups if any(k == "shrink" for _, k, _ in chosen) else None)
        counts = {pop: int(np.sum(training_populations == pop)) for pop in model.populations_}
        plan = {"counts": {pop: k for pop, k in counts.items() if k}}
    else:
        plan = {"n": training.n_samples}
    points = []
    bar = progress_bar(len(chosen) + 1, "frontier", unit="set", enabled=progress)
    for index, (name, knob, value) in enumerate(chosen):
        options = {"temperature": value} if knob == "temperature" else {"shrink": value, "groups": groups}
        synthetic = model.sample(seed=seed + 1 + index, **plan, **options)
        synthetic_labels = synthetic.info["populations"] if conditional else None
        # unlabelled sets get no accuracy: without the model's populations their classifier row would be made up
        points.append(_score(name, knob, value, training, synthetic, holdout,
                             training_populations if conditional else None, synthetic_labels, holdout_populations,
                             seed, ld_window, max_rows))
        bar.update(1)
    floor = frequency_generator(training, training_populations if labelled else None, seed=seed)
    floor_labels = floor.info["populations"] if labelled else None
    points.append(_score(FREQUENCY_GENERATOR, "frequencies", None, training, floor, holdout, training_populations,
                         floor_labels, holdout_populations, seed, ld_window, max_rows))
    bar.update(1)
    bar.close()
    return points


def check_labels(model, training_populations, groups: dict | None = None) -> None:
    """Refuse training labels that name populations the model does not know (the frontier's sets are drawn with
    the training counts of the model's populations), and shrinkage groups that leave a population out."""
    labels = sorted(set(np.asarray(training_populations, dtype=str).tolist()))
    unknown = [pop for pop in labels if pop not in model.populations_]
    if unknown:
        raise UsageError(f"the labels name population(s) the model does not know ({', '.join(unknown[:5])}): "
                         f"label the individuals as the model was trained (it knows "
                         f"{', '.join(list(model.populations_)[:8])})")
    if groups is not None:
        missing = [pop for pop in model.populations_ if pop not in groups]
        if missing:
            raise UsageError(f"--shrink-groups names no group for population(s) {', '.join(missing[:5])}")


def _score(name, knob, value, training, synthetic, holdout, training_populations, synthetic_labels,
           holdout_populations, seed, ld_window, max_rows) -> FrontierPoint:
    report, _ = evaluate_synthetic(training, synthetic, holdout, training_populations, synthetic_labels,
                                   holdout_populations, ld_window, max_rows, seed, reference_repeats=0)
    return point_from_report(name, knob, value, report)


def summarise(points: list[FrontierPoint], fresh_real: dict | None) -> dict:
    """Which settings beat the frequency generator on both axes (lower privacy loss, higher accuracy; AATS
    closer to 0.5 where there is no accuracy), and which are within fresh real genomes' privacy loss
    (mean + 2 sd of ``fresh_real``, the report's ``fresh_real_reference``)."""
    floor = next((p for p in points if p.knob == "frequencies"), None)
    candidates = [p for p in points if p.knob != "frequencies"]
    limit = None
    if fresh_real and fresh_real.get("sd") is not None:
        limit = fresh_real["mean"] + 2 * fresh_real["sd"]

    def better(p):
        if floor is None or p.privacy_loss >= floor.privacy_loss:
            return False
        if p.accuracy is not None and floor.accuracy is not None:
            return p.accuracy > floor.accuracy
        return abs(p.aats - 0.5) < abs(floor.aats - 0.5)

    return {"beats_frequency_generator": [p.name for p in candidates if better(p)],
            "privacy_limit": limit,
            "within_fresh_real_privacy": [] if limit is None else
            [p.name for p in candidates if p.privacy_loss <= limit]}


def frontier_table(points: list[FrontierPoint]) -> str:
    """Tab-separated text, one row per point, with a header."""
    columns = ("name", "knob", "value", "privacy_loss", "accuracy", "aats", "aa_truth", "aa_syn")
    lines = ["\t".join(columns)]
    for p in points:
        cells = [p.name, p.knob, "" if p.value is None else f"{p.value:g}"]
        cells += ["" if v is None else f"{v:.6f}" for v in (p.privacy_loss, p.accuracy, p.aats, p.aa_truth,
                                                             p.aa_syn)]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"
