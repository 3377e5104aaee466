"""Time `genoae vae train` on 50,000 SNPs over several chromosomes, and `vae sample` of 10,000 genomes, as a user runs
them (the commands timed whole, CLI defaults).

    pip install msprime                     # the simulation (pip install -e '.[bench]')
    python scripts/bench_vae_scale.py       # ~10-30 min on 2 cores

The data are simulated with msprime: four populations split from one ancestor (1,000 / 2,000 / 4,000 generations
ago, Ne 10,000), 250 individuals each, five chromosomes of 10 Mb (mutation 1.25e-8, recombination 1e-8 per bp per
generation), each thinned to its first 10,000 biallelic SNPs with minor allele frequency ≥ 1 %.  One model is trained
per chromosome (the route `vae sample MODEL1 MODEL2 ...` takes: sampled together as one genome); the script reports
each training's wall time and their total, then the sampling of 10,000 genomes from one model (10,000 SNPs) and from
all five (50,000 SNPs).  Targets (issue 16): training ≤ 30 min in total, sampling 10,000 × 10,000 < 10 s.  Appends the
table to scripts/BENCHMARKS_VAE.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

POPULATIONS = ("A", "B", "C", "D")


def simulate(folder: Path, n_per_pop: int, n_chrom: int, n_snps: int, seed: int) -> list[Path]:
    """One phased VCF per chromosome and a labels table; returns the VCF paths."""
    import msprime

    from genoae.genotypes import Genotypes, Samples, Variants
    from genoae.io import write_genotypes

    demography = msprime.Demography()
    for name in ("ANC", "AB", "CD") + POPULATIONS:
        demography.add_population(name=name, initial_size=10_000)
    demography.add_population_split(time=1_000, derived=["A", "B"], ancestral="AB")
    demography.add_population_split(time=1_500, derived=["C", "D"], ancestral="CD")
    demography.add_population_split(time=4_000, derived=["AB", "CD"], ancestral="ANC")
    names = [f"{pop}{i + 1}" for pop in POPULATIONS for i in range(n_per_pop)]
    (folder / "labels.tsv").write_text("sample\tpop\n" + "".join(f"{n}\t{n[0]}\n" for n in names))
    paths = []
    for chrom in range(1, n_chrom + 1):
        ts = msprime.sim_ancestry({pop: n_per_pop for pop in POPULATIONS}, demography=demography,
                                  sequence_length=10_000_000, recombination_rate=1e-8, random_seed=seed + chrom)
        ts = msprime.sim_mutations(ts, rate=1.25e-8, random_seed=seed + chrom, model=msprime.BinaryMutationModel())
        rows, positions = [], []
        for variant in ts.variants():
            if len(variant.alleles) != 2:
                continue
            frequency = variant.genotypes.mean()
            position = int(variant.site.position) + 1
            if min(frequency, 1 - frequency) < 0.01 or (positions and position <= positions[-1]):
                continue
            rows.append(variant.genotypes.astype(np.int8))
            positions.append(position)
            if len(rows) == n_snps:
                break
        haplotypes = np.array(rows).T.reshape(len(names), 2, -1)  # msprime orders samples by population
        m = haplotypes.shape[2]
        variants = Variants(chrom=np.full(m, str(chrom)), pos=np.array(positions, np.int64),
                            id=np.array([f"{chrom}:{p}" for p in positions]), a1=np.full(m, "A"), a2=np.full(m, "T"))
        path = folder / f"chr{chrom}.vcf.gz"
        write_genotypes(Genotypes.from_haplotypes(haplotypes, Samples(np.array(names)), variants), path)
        paths.append(path)
        print(f"chr{chrom}: {m} SNPs", file=sys.stderr)
    return paths


def timed(command: list) -> float:
    tick = time.perf_counter()
    subprocess.run([str(c) for c in command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - tick


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-population", type=int, default=250)
    parser.add_argument("--chromosomes", type=int, default=5)
    parser.add_argument("--snps", type=int, default=10_000, help="SNPs per chromosome")
    parser.add_argument("--genomes", type=int, default=10_000, help="genomes sampled")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        vcfs = simulate(work, args.per_population, args.chromosomes, args.snps, args.seed)
        labels = work / "labels.tsv"
        training, models = [], []
        for vcf in vcfs:
            model = vcf.with_suffix("").with_suffix(".pt")
            training.append(timed(["genoae", "vae", "train", vcf, "--pop", labels, "-o", model, "--seed", args.seed,
                                   "--quiet"]))
            models.append(model)
            print(f"{vcf.name}: trained in {training[-1]:.0f} s", file=sys.stderr)
        one = timed(["genoae", "vae", "sample", models[0], "-n", args.genomes, "-o", work / "one.bed",
                     "--seed", args.seed])
        every = timed(["genoae", "vae", "sample", *models, "-n", args.genomes, "-o", work / "all.bed",
                       "--seed", args.seed])
    n = len(POPULATIONS) * args.per_population
    total = sum(training)
    lines = [f"### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: training and sampling time at scale "
             f"(`scripts/bench_vae_scale.py`, seed {args.seed})", "",
             f"msprime, four populations, {n:,} individuals, {args.chromosomes} chromosomes × {args.snps:,} SNPs "
             f"(MAF ≥ 1 %); `vae train` defaults, one model per chromosome; every command timed whole (start-up "
             f"included); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end.", "",
             "| step | wall (s) | target |", "|---|---:|---|"]
    lines += [f"| train chr{i + 1} ({args.snps:,} SNPs) | {t:.0f} | |" for i, t in enumerate(training)]
    lines += [f"| train all {args.chromosomes * args.snps:,} SNPs (sum) | {total:.0f} | ≤ 1,800 "
              f"{'(met)' if total <= 1800 else '(missed)'} |",
              f"| sample {args.genomes:,} genomes × {args.snps:,} SNPs (one model) | {one:.1f} | < 10 "
              f"{'(met)' if one < 10 else '(missed)'} |",
              f"| sample {args.genomes:,} genomes × {args.chromosomes * args.snps:,} SNPs ({args.chromosomes} models) "
              f"| {every:.1f} | |"]
    from bench_admix import publish

    publish(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
