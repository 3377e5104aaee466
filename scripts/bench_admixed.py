"""Admixed cohorts from the VAE, checked as a user would: does `genoae admix` recover the true Q, and do the tracts
have the pulse model's lengths?

    python scripts/bench_admixed.py            # the 805-SNP 1000 Genomes panel (../shared/data), seed 1

Trains `genoae vae train` with its defaults on the 805 panel (26 populations), samples 500 admixed individuals
(YRI = 0.8, CEU = 0.2, 8 generations, 1 cM/Mb: the panel has no map) plus 100 synthetic YRI and 100 synthetic CEU,
runs `genoae admix -k 2` on the 700, and reports the Q RMSE against OUT.true.Q (clusters matched), and the
ancestry tracts of OUT.lai.tsv against the model: a tract of population k not cut by a chromosome end is
exponential with mean 100 / (T (1 − m_k)) cM.  Tracts are counted when no chromosome end cuts them, which favours
short ones on chromosomes of 50–250 cM, and the panel's SNPs are ~4 Mb apart, so a tract's span from its first to
its last SNP is shorter than the tract: the reference is the same count on the panel's chromosomes at 2,000 points
each.
Appends the table to scripts/BENCHMARKS_VAE.md.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PANEL = ROOT.parent / "shared" / "data" / "1kg_805snp_haplotypes"


def genoae(*args):
    subprocess.run([sys.executable, "-m", "genoae", *map(str, args)], check=True)


def internal_spans(lai: Path, population: str) -> np.ndarray:
    """cM from the first to the last SNP of each tract of ``population`` that touches neither chromosome end."""
    rows = [line.rstrip("\n").split("\t") for line in open(lai) if not line.startswith("#")]
    spans, previous = [], None
    for index, row in enumerate(rows):
        key = (row[0], row[1], row[2])
        following = rows[index + 1] if index + 1 < len(rows) else None
        first_of_chromosome = previous is None or (previous[0], previous[1], previous[2]) != key
        last_of_chromosome = following is None or (following[0], following[1], following[2]) != key
        if row[8] == population and not first_of_chromosome and not last_of_chromosome:
            spans.append(float(row[6]) - float(row[5]))
        previous = row
    return np.array(spans)


def main(argv=None):
    from genoae.compare import aligned_rmse
    from genoae.genotypes import Genotypes, Samples
    from genoae.io import read_genotypes, write_genotypes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/genoae_bench_admixed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--generations", type=float, default=8.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not PANEL.exists():
        raise SystemExit(f"needs {PANEL} (the 805-SNP 1000 Genomes panel)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for old in work.iterdir():
        if old.is_file():
            old.unlink()
    mixture = {"YRI": 0.8, "CEU": 0.2}
    tick = time.perf_counter()
    genoae("vae", "train", PANEL / "805_SNP_1000G_real.hapt.gz", "--pop", PANEL / "labels.tsv", "--pop-column",
           "pop", "-o", work / "model.pt", "--seed", args.seed, "--quiet")
    trained = time.perf_counter() - tick
    tick = time.perf_counter()
    genoae("vae", "sample", work / "model.pt", "--admixed", ",".join(f"{k}={v}" for k, v in mixture.items()), "-n",
           500, "--generations", args.generations, "-o", work / "admixed.bed", "--seed", args.seed)
    sampled = time.perf_counter() - tick
    genoae("vae", "sample", work / "model.pt", "--pop", "YRI=100,CEU=100", "-o", work / "parents.bed", "--seed",
           args.seed + 1)
    admixed, parents = read_genotypes(work / "admixed.bed"), read_genotypes(work / "parents.bed")
    together = Genotypes.from_counts(np.concatenate([admixed.counts(), parents.counts()]),
                                     Samples(np.concatenate([admixed.samples.iid, parents.samples.iid])),
                                     admixed.variants)
    write_genotypes(together, work / "cohort.bed")
    genoae("admix", work / "cohort.bed", "-k", 2, "-o", work / "fit", "--seed", args.seed, "--quiet")
    Q = np.loadtxt(work / "fit.2.Q")
    truth = np.loadtxt(work / "admixed.true.Q")
    parent_truth = np.array([[1.0, 0.0] if name.split("_")[1] == "YRI" else [0.0, 1.0]
                             for name in parents.samples.iid])
    rmse_all = aligned_rmse(Q, np.concatenate([truth, parent_truth]))
    rmse_admixed = aligned_rmse(Q[:500], truth)

    # the tracts: the panel's spans against the same spans on a dense grid, and the theory
    from genoae.simulate.admixed import ancestry_segments

    from genoae.simulate.admixed import genetic_positions

    rng = np.random.default_rng(args.seed)
    panel_cm = genetic_positions(admixed.variants)
    chroms = np.asarray(admixed.variants.chrom)
    # the panel's chromosomes (first to last SNP), each with 2,000 evenly spaced points
    dense_cm = np.concatenate([np.linspace(panel_cm[chroms == c].min(), panel_cm[chroms == c].max(), 2000)
                               for c in dict.fromkeys(chroms)])
    dense_chrom = np.repeat(list(dict.fromkeys(chroms)), 2000)
    rows = [f"### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: admixed cohorts on the 805-SNP panel "
            f"(`scripts/bench_admixed.py`, seed {args.seed})", "",
            f"`vae train` defaults, {trained:.0f} s; 500 admixed YRI 0.8 / CEU 0.2, {args.generations:g} generations, "
            f"sampled in {sampled:.1f} s (the command, including start-up); + 100 synthetic YRI and 100 synthetic "
            f"CEU; `genoae admix -k 2` on the 700.", "",
            f"- Q RMSE to the truth (clusters matched): **{rmse_all:.4f}** on all 700, {rmse_admixed:.4f} on the "
            f"admixed alone (target ≤ 0.03); mean true Q of the admixed: "
            f"{', '.join(f'{k} {v:.3f}' for k, v in zip(mixture, truth.mean(axis=0)))}.", "",
            "| tracts of | expected mean length, no chromosome end (cM) | the panel's chromosomes on a dense grid: mean / "
            "median span (cM) | the 805 panel's SNPs: mean / median span (cM) | panel tracts |", "|---|---:|---:|---:|---:|"]
    for k, name in enumerate(mixture):
        expected = 100.0 / (args.generations * (1 - mixture[name]))
        dense = []
        for _ in range(20):
            source = ancestry_segments(dense_cm, dense_chrom, np.array(list(mixture.values())), args.generations,
                                       rng)
            for first in range(0, len(dense_cm), 2000):  # tracts inside each chromosome
                part = source[first:first + 2000]
                cuts = np.flatnonzero(np.diff(part)) + 1
                grid = dense_cm[first:first + 2000]
                dense += [grid[b - 1] - grid[a] for a, b in zip(cuts[:-1], cuts[1:]) if part[a] == k]
        panel = internal_spans(work / "admixed.lai.tsv", name)
        rows.append(f"| {name} | {expected:.1f} | {np.mean(dense):.1f} / {np.median(dense):.1f} | "
                    f"{np.mean(panel):.1f} / {np.median(panel):.1f} | {len(panel):,} |")
    from bench_admix import publish

    publish(rows, write=not args.no_write)


if __name__ == "__main__":
    main()
