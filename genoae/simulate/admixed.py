"""Admixed individuals with known ancestry: mosaics of population-conditioned synthetic haplotypes.

A single pulse of admixture ``generations`` ago with proportions m: along each haplotype, the points where the
ancestry may change (recombinations since the pulse) fall as a Poisson process of rate ``generations`` per Morgan,
and each segment between them takes a source population drawn from m (Gravel 2012's pulse model; a draw of the same
population as the last makes no visible switch).  Each chromosome starts afresh (independent assortment).  So a
tract of population k has an exponential length of mean 1 / (generations · (1 − m_k)) Morgans, cut by the
chromosome's end.  Genetic positions come from a recombination map, else from the variants' cM, else 1 cM per Mb.

Each admixed haplotype copies, within each of its segments, the alleles of a synthetic haplotype of the segment's
population drawn for it from the model (one source haplotype per admixed haplotype and population, fresh for every
admixed haplotype).  The true global ancestry of an individual is the share of its 2 × M alleles copied from each
population, the quantity ADMIXTURE's Q estimates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genoae.errors import InputError, UsageError
from genoae.genotypes import Genotypes, Samples, Variants
from genoae.simulate.estimator import check_known_populations

# Without a map or cM in the variants: the human genome-wide average
CM_PER_MB = 1.0
# Alleles of admixed haplotypes made at once (their sources are drawn per population for each batch)
BATCH_ALLELES = 1 << 24


@dataclass
class AdmixedCohort:
    """What :func:`admixed_cohort` draws."""

    genotypes: Genotypes            # phased, individuals admixed_1 ... admixed_n
    Q: np.ndarray                   # float64 (n, n_sources): share of each individual's alleles from each source
    sources: list                   # the populations, in the order of Q's columns
    segments: list = field(default_factory=list)  # (sample, haplotype 0/1, chrom, first, last variant, source)
    genetic_cm: np.ndarray | None = None          # the genetic position of each variant used


def parse_mixture(text: str) -> dict:
    """``"YRI=0.8,CEU=0.2"`` -> {"YRI": 0.8, "CEU": 0.2} (proportions > 0 summing to 1, within 1e-6)."""
    mixture = {}
    for item in (text or "").split(","):
        name, sep, value = item.strip().partition("=")
        try:
            share = float(value)
        except ValueError:
            share = float("nan")
        if not sep or not name.strip() or not np.isfinite(share) or share <= 0:
            raise UsageError(f"--admixed expects POP=PROPORTION[,POP=PROPORTION...] with proportions > 0, got "
                             f"{item.strip()!r}")
        if name.strip() in mixture:
            raise UsageError(f"--admixed names {name.strip()} twice")
        mixture[name.strip()] = share
    if len(mixture) < 2:
        raise UsageError("--admixed needs at least two source populations (e.g. YRI=0.8,CEU=0.2)")
    total = sum(mixture.values())
    if abs(total - 1.0) > 1e-6:
        raise UsageError(f"--admixed proportions sum to {total:g}, not 1")
    return mixture


def read_genetic_map(path) -> dict:
    """A recombination map: per chromosome, (base-pair positions, cM), increasing.

    Read formats: PLINK ``.map`` (chrom, id, cM, bp), three columns ``chrom bp cM``, or the HapMap/SHAPEIT layouts
    with a header (``Chromosome Position(bp) Rate(cM/Mb) Map(cM)``, or ``pposition rrate gposition`` without a
    chromosome column: a one-chromosome map, used for any chromosome).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such recombination map")
    rows = {}
    header = None  # PLINK .map and `chrom bp cM` have none; the HapMap and SHAPEIT layouts name their columns
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if line_no == 1 and not any(_is_number(f) for f in fields):
                header = line.lower()
                continue
            shapeit = header is not None and len(fields) == 3 and "rate" in header
            try:
                if len(fields) == 4 and header is None:
                    chrom, bp, cm = fields[0], float(fields[3]), float(fields[2])        # PLINK .map
                elif len(fields) == 4:
                    chrom, bp, cm = fields[0], float(fields[1]), float(fields[3])        # HapMap with chrom
                elif len(fields) == 3 and shapeit:
                    chrom, bp, cm = "", float(fields[0]), float(fields[2])               # SHAPEIT: pos rate cM
                elif len(fields) == 3:
                    chrom, bp, cm = fields[0], float(fields[1]), float(fields[2])        # chrom bp cM
                else:
                    raise ValueError(f"{len(fields)} columns")
            except ValueError as error:
                raise InputError(path, f"expected chrom bp cM (or a PLINK .map / HapMap map line): {error}",
                                 line_no) from None
            rows.setdefault(_chrom_name(chrom), []).append((bp, cm))
    if not rows:
        raise InputError(path, "the recombination map holds no positions")
    out = {}
    for chrom, points in rows.items():
        points = np.array(sorted(points))
        if np.any(np.diff(points[:, 1]) < 0):
            raise InputError(path, f"chromosome {chrom or '(any)'}: genetic positions decrease along the map")
        out[chrom] = (points[:, 0], points[:, 1])
    return out


def genetic_positions(variants: Variants, genetic_map: dict | None = None) -> np.ndarray:
    """cM of each variant: interpolated on ``genetic_map`` (:func:`read_genetic_map`; a chromosome it lacks is an
    error), else the variants' own cM where they vary within every chromosome, else 1 cM per Mb."""
    pos = np.asarray(variants.pos, np.float64)
    chrom = np.array([_chrom_name(c) for c in variants.chrom])
    cm = np.empty(len(pos))
    if genetic_map is not None:
        for name in np.unique(chrom):
            key = name if name in genetic_map else "" if "" in genetic_map else None
            if key is None:
                raise UsageError(f"the recombination map has no chromosome {name} (it has "
                                 f"{', '.join(sorted(genetic_map))})")
            here = chrom == name
            cm[here] = np.interp(pos[here], *genetic_map[key])
        return cm
    own = np.asarray(getattr(variants, "cm", np.zeros(len(pos))), np.float64)
    if all(np.ptp(own[chrom == name]) > 0 for name in np.unique(chrom) if (chrom == name).sum() > 1):
        return own
    return pos / 1e6 * CM_PER_MB


def ancestry_segments(cm: np.ndarray, chrom: np.ndarray, proportions: np.ndarray, generations: float,
                      rng: np.random.Generator) -> np.ndarray:
    """The source population of every variant of one haplotype (int64, (n_variants,)) under the pulse model.

    Variants must be grouped by chromosome and sorted by position within each (as the model's are)."""
    source = np.empty(len(cm), np.int64)
    for first, last in _chromosome_runs(chrom):
        start, end = cm[first], cm[last - 1]
        # junctions since the pulse: Poisson with rate `generations` per Morgan, uniform along the chromosome
        n_junctions = rng.poisson(generations * (end - start) / 100.0)
        junctions = np.sort(rng.uniform(start, end, n_junctions))
        segment_of = np.searchsorted(junctions, cm[first:last], side="right")
        source[first:last] = rng.choice(len(proportions), size=n_junctions + 1, p=proportions)[segment_of]
    return source


def admixed_cohort(estimator, mixture: dict, n: int, generations: float = 8.0, genetic_map: dict | None = None,
                   dirichlet: float | None = None, seed: int | None = 0, temperature: float = 1.0,
                   device: str | None = None) -> AdmixedCohort:
    """``n`` admixed individuals from a population-conditioned haplotype model (:class:`SyntheticGenomes`).

    Parameters
    ----------
    mixture : dict
        Source population -> proportion (:func:`parse_mixture`), the admixture pulse.
    generations : float
        Generations since the pulse (tract lengths shrink as it grows).
    dirichlet : float, optional
        Each individual's proportions drawn from Dirichlet(``dirichlet`` × m) instead of m for all (smaller:
        more spread between individuals).
    """
    if estimator.mode_ != "haplotype":
        raise UsageError("--admixed needs a haplotype model (trained on phased data): mosaics are made of "
                         "haplotypes")
    if not estimator.populations_:
        raise UsageError("--admixed needs a model trained with population labels (vae train --pop)")
    check_known_populations(mixture, estimator.populations_)
    if not generations > 0:
        raise UsageError(f"--generations {generations}: expected a number of generations > 0")
    if dirichlet is not None and not dirichlet > 0:
        raise UsageError(f"--admixed-dirichlet {dirichlet}: expected a concentration > 0")
    variants = estimator.variants_
    chrom = np.array([_chrom_name(c) for c in variants.chrom])
    _check_grouped(chrom, np.asarray(variants.pos))
    cm = genetic_positions(variants, genetic_map)
    sources = list(mixture)
    m = np.array([mixture[name] for name in sources])
    rng = np.random.default_rng(seed)
    proportions = rng.dirichlet(dirichlet * m, size=n) if dirichlet else np.tile(m, (n, 1))
    names = np.array([f"admixed_{i + 1}" for i in range(n)])
    haplotypes = np.empty((2 * n, len(cm)), np.int8)  # rows 2i, 2i + 1: individual i's haplotypes
    Q = np.empty((n, len(sources)))
    segments = []
    batch = max(1, BATCH_ALLELES // max(2 * len(cm), 1))  # individuals whose sources are drawn at once
    for first in range(0, n, batch):
        people = range(first, min(first + batch, n))
        # which population each allele of each of these haplotypes copies
        origin = np.stack([ancestry_segments(cm, chrom, proportions[i], generations, rng)
                           for i in people for _ in range(2)]).astype(np.int8)
        rows = slice(2 * people.start, 2 * people.stop)
        for k, name in enumerate(sources):
            # a fresh synthetic haplotype of population k for every admixed haplotype
            drawn = estimator.sample_rows(origin.shape[0], name, seed=int(rng.integers(1 << 31)),
                                          temperature=temperature, device=device)
            np.copyto(haplotypes[rows], drawn, where=origin == k)
        mine = origin.reshape(len(people), -1)
        Q[first:people.stop] = np.stack([(mine == k).mean(axis=1) for k in range(len(sources))], axis=1)
        segments += _segments(origin, chrom, names, first_person=first)
    genotypes = Genotypes.from_haplotypes(haplotypes.reshape(n, 2, -1), Samples(names), variants,
                                          source="genoae vae sample --admixed")
    genotypes.info["populations"] = np.array(["admixed"] * n)
    return AdmixedCohort(genotypes, Q, sources, segments, cm)


def write_true_q(cohort: AdmixedCohort, path) -> None:
    """ADMIXTURE's .Q layout: one row per individual, one column per source (in ``cohort.sources`` order)."""
    np.savetxt(path, cohort.Q, fmt="%.6f")


def write_segments(cohort: AdmixedCohort, path) -> None:
    """Local ancestry per haplotype and segment, tab-separated (the columns of RFMix's .msp.tsv, one row per
    haplotype segment): sample, haplotype (0/1), chromosome, start and end base pair and cM (first and last
    variant of the segment), number of variants, source population."""
    variants = cohort.genotypes.variants
    with open(path, "w") as handle:
        handle.write(f"# genoae vae sample --admixed: sources {' '.join(cohort.sources)} (the .true.Q columns); "
                     f"positions of the segment's first and last variant\n")
        handle.write("#sample\thaplotype\tchrom\tspos\tepos\tsgpos\tegpos\tn_snps\tpopulation\n")
        for sample, haplotype, _, first, last, source in cohort.segments:
            handle.write(f"{sample}\t{haplotype}\t{variants.chrom[first]}\t{variants.pos[first]}\t"
                         f"{variants.pos[last]}\t"
                         f"{cohort.genetic_cm[first]:.4f}\t{cohort.genetic_cm[last]:.4f}\t{last - first + 1}\t"
                         f"{cohort.sources[source]}\n")


def _segments(origin: np.ndarray, chrom: np.ndarray, names, first_person: int = 0) -> list:
    """Runs of one source along each haplotype (rows 2i, 2i + 1: individual ``first_person`` + i), cut at
    chromosome ends: (sample, haplotype, chrom, first, last, source)."""
    out = []
    runs = _chromosome_runs(chrom)
    for row in range(origin.shape[0]):
        for first, last in runs:
            part = origin[row, first:last]
            cuts = np.flatnonzero(np.diff(part)) + 1
            starts = np.concatenate([[0], cuts])
            ends = np.concatenate([cuts, [len(part)]])
            out += [(names[first_person + row // 2], row % 2, chrom[first], first + a, first + b - 1,
                     int(part[a]))
                    for a, b in zip(starts, ends)]
    return out


def _chromosome_runs(chrom: np.ndarray) -> list:
    edges = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(chrom)]])
    return list(zip(starts.tolist(), ends.tolist()))


def _check_grouped(chrom: np.ndarray, pos: np.ndarray) -> None:
    runs = _chromosome_runs(chrom)
    names = [chrom[first] for first, _ in runs]
    if len(set(names)) != len(names):
        raise UsageError("the model's variants are not grouped by chromosome: admixture tracts need each "
                         "chromosome's variants together, in order")
    if any(np.any(np.diff(pos[first:last]) < 0) for first, last in runs):
        raise UsageError("the model's variants are not sorted by position within a chromosome")


def _chrom_name(name) -> str:
    text = str(name)
    return text[3:] if text.lower().startswith("chr") else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
