"""What the real data allow on two `genoae vae` targets, measured without any network (see BENCHMARKS_VAE.md).

    python scripts/vae_target_floors.py            # every part, prints Markdown tables
    python scripts/vae_target_floors.py --part fresh

1. AGBL4: how close real haplotypes are to their nearest real neighbour (training, holdout); AATS ≈ 0.5 needs
   synthetic haplotypes that close to real ones.
2. 805-SNP panel: privacy loss and train-on-synthetic accuracy of a generator that draws every SNP from
   per-population allele frequencies, with the frequencies taken from the training half, the holdout half, both,
   or the training half shrunk toward a coarser estimate.  It shows how much privacy loss per-population frequency
   noise alone carries at this sample size, and what removing it costs in accuracy.
3. Fresh real genomes (both data sets): the holdout split in two by person, one half scored as if it were synthetic.
   A perfect generator scores like this: the privacy loss it shows is sampling noise alone.
4. AGBL4, copying generators: training haplotypes copied with k flipped alleles, and Li-Stephens-style mosaics of
   training haplotypes (uniform switching, s switches per region on average).  Where the classic copying model
   of population genetics sits between AATS and privacy loss.

Data: ../shared/data (the same splits as scripts/bench_vae.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_vae import DATA, agbl4_halves, panel_halves  # noqa: E402
from genoae.simulate import evaluate as ev  # noqa: E402
from genoae.genotypes import Genotypes, Samples  # noqa: E402
from genoae.io.labels import read_labels  # noqa: E402


def nearest_neighbour_table() -> list[str]:
    training, holdout = agbl4_halves()
    train_haps, hold_haps = ev.allele_rows(training, True), ev.allele_rows(holdout, True)
    pairs = [("training → nearest other training", ev.nearest_distances(train_haps)),
             ("holdout → nearest training", ev.nearest_distances(hold_haps, train_haps)),
             ("holdout → nearest other holdout", ev.nearest_distances(hold_haps))]
    lines = [f"AGBL4, Hamming distance to the nearest haplotype ({training.n_variants} SNPs)", "",
             "| pair | 10 % | 25 % | median | 75 % | exact duplicates |", "|---|---|---|---|---|---|"]
    for name, d in pairs:
        q10, q25, q50, q75 = np.quantile(d, [0.1, 0.25, 0.5, 0.75])
        lines.append(f"| {name} | {q10:.0f} | {q25:.0f} | {q50:.0f} | {q75:.0f} | {np.mean(d == 0):.1%} |")
    return lines


def frequency_generator(pops, n_per_pop, target, rng):
    """Haplotypes drawn SNP by SNP from ``target[pop]`` (frequencies), n_per_pop[pop] people per population."""
    rows, labels = [], []
    for pop in pops:
        rows.append((rng.random((2 * n_per_pop[pop], len(target[pop]))) < target[pop]).astype(np.int8))
        labels += [pop] * n_per_pop[pop]
    return np.concatenate(rows), np.array(labels)


def frequency_source_table(seed: int = 0) -> list[str]:
    training, holdout, train_pops, hold_pops = panel_halves(seed)
    train_super = read_labels(DATA / "1kg_805snp_haplotypes" / "labels.tsv", training.samples, column="super_pop")
    haps = {"training": ev.allele_rows(training, True).astype(np.float64),
            "holdout": ev.allele_rows(holdout, True).astype(np.float64)}
    row_pops = {"training": np.repeat(train_pops, 2), "holdout": np.repeat(hold_pops, 2)}
    row_super = np.repeat(train_super, 2)
    names = sorted(set(train_pops.tolist()))
    n_per_pop = {p: int(np.sum(train_pops == p)) for p in names}
    train_h = haps["training"]
    overall = train_h.mean(axis=0)
    super_of = {p: train_super[train_pops == p][0] for p in names}

    def frequencies(source, shrink=0.0, toward=None):
        out = {}
        for p in names:
            if source == "both":
                members = np.concatenate([haps[s][row_pops[s] == p] for s in ("training", "holdout")])
            else:
                members = haps[source][row_pops[source] == p]
            target = overall if toward == "overall" else (
                train_h[row_super == super_of[p]].mean(axis=0) if toward == "super" else 0.0)
            out[p] = (members.sum(axis=0) + shrink * target) / (len(members) + shrink)
        return out

    settings = [("the training half", frequencies("training")),
                ("the holdout half", frequencies("holdout")),
                ("both halves", frequencies("both"))]
    settings += [(f"training, shrunk toward the overall frequency (prior weight {a} haplotypes)",
                  frequencies("training", a, "overall")) for a in (10, 30)]
    settings += [(f"training, shrunk toward the super-population ({a})", frequencies("training", a, "super"))
                 for a in (10, 30, 100)]
    lines = ["805-SNP panel, every SNP drawn from per-population frequencies "
             f"({training.n_samples} training / {holdout.n_samples} holdout people)", "",
             "| frequencies taken from | privacy loss | AATS vs training | AA_truth | AA_syn | train-on-synthetic accuracy |",
             "|---|---|---|---|---|---|"]
    for k, (name, target) in enumerate(settings):
        rows, labels = frequency_generator(names, n_per_pop, target, np.random.default_rng(seed + k))
        synthetic = Genotypes.from_haplotypes(rows.reshape(-1, 2, rows.shape[1]),
                                              Samples([f"synth_{p}_{i}" for i, p in enumerate(labels)]),
                                              training.variants)
        report, _ = ev.evaluate_synthetic(training, synthetic, holdout, train_pops, labels, hold_pops, seed=seed,
                                          reference_repeats=0)
        aats = report["aats"]["synthetic"]
        lines.append(f"| {name} | {report['privacy_loss']['synthetic']:.3f} | {aats['aats']:.3f} | "
                     f"{aats['aa_truth']:.3f} | {aats['aa_syn']:.3f} | "
                     f"{report['population_classification']['train_synthetic_test_real']:.3f} |")
    return lines


def fresh_real_table(seed: int = 0, repeats: int = 8) -> list[str]:
    lines = ["Fresh real genomes: the holdout split in two by person, one half scored as if it were synthetic "
             f"({repeats} random halvings)", "",
             "| data set | haplotypes a half | AATS vs training (mean) | privacy loss, mean ± sd | min – max | "
             "holdout haplotypes identical to a training one |", "|---|---|---|---|---|---|"]
    for name, (training, holdout) in [("AGBL4", agbl4_halves()), ("805-SNP panel", panel_halves(seed)[:2])]:
        train_rows, hold_rows = ev.allele_rows(training, True), ev.allele_rows(holdout, True)
        reference = ev.fresh_real_reference(train_rows, hold_rows, 1, 2, repeats, 5000, seed)
        values = reference["values"]
        lines.append(f"| {name} | {reference['n_rows']} | {reference['aats_vs_training']:.3f} | "
                     f"{reference['mean']:+.3f} ± "
                     f"{reference['sd']:.3f} | {min(values):+.3f} – {max(values):+.3f} | "
                     f"{ev.exact_copies(hold_rows, train_rows)} of {len(hold_rows)} |")
    return lines


def copy_with_flips(training_rows, n_rows, n_flips, rng):
    """Random training haplotypes, each with ``n_flips`` alleles flipped at random SNPs."""
    rows = training_rows[rng.integers(0, len(training_rows), n_rows)].copy()
    for row in rows:
        sites = rng.choice(rows.shape[1], n_flips, replace=False)
        row[sites] = 1 - row[sites]
    return rows


def mosaic_of_training(training_rows, positions, n_rows, mean_switches, rng):
    """Li-Stephens-style mosaics: segments copied from uniformly chosen training haplotypes, switch points uniform
    along the region's physical span, Poisson(mean_switches) of them per haplotype."""
    rows = np.empty((n_rows, training_rows.shape[1]), training_rows.dtype)
    for row in rows:
        cuts = np.searchsorted(positions, np.sort(rng.uniform(positions[0], positions[-1],
                                                              rng.poisson(mean_switches))))
        bounds = np.concatenate([[0], cuts, [len(positions)]])
        for start, stop in zip(bounds[:-1], bounds[1:]):
            row[start:stop] = training_rows[rng.integers(0, len(training_rows)), start:stop]
    return rows


def copying_generator_table(seed: int = 0) -> list[str]:
    training, holdout = agbl4_halves()
    train_rows, hold_rows = ev.allele_rows(training, True), ev.allele_rows(holdout, True)
    rng = np.random.default_rng(seed)
    n = len(train_rows)
    generators = [(f"copy, {k} alleles flipped", lambda k=k: copy_with_flips(train_rows, n, k, rng))
                  for k in (0, 5, 60)]
    positions = training.variants.pos
    generators += [(f"mosaic, {s} switch{'' if s == 1 else 'es'}",
                    lambda s=s: mosaic_of_training(train_rows, positions, n, s, rng)) for s in (1, 3, 10, 20)]
    lines = [f"AGBL4, copying generators ({n} haplotypes each; AATS against training)", "",
             "| generator | AATS | AA_truth | AA_syn | privacy loss | exact copies | median distance to training |",
             "|---|---|---|---|---|---|---|"]
    for name, generate in generators:
        rows = generate()
        loss = ev.privacy_loss(rows, train_rows, hold_rows, 1, 5000, seed)
        aats = loss["aats_training"]
        lines.append(f"| {name} | {aats['aats']:.3f} | {aats['aa_truth']:.3f} | {aats['aa_syn']:.3f} | "
                     f"{loss['privacy_loss']:+.3f} | {ev.exact_copies(rows, train_rows)} | "
                     f"{np.median(ev.nearest_distances(rows, train_rows)):.0f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "agbl4", "805", "fresh", "copying"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.part in ("all", "agbl4"):
        print("\n".join(nearest_neighbour_table()), end="\n\n", flush=True)
    if args.part in ("all", "805"):
        print("\n".join(frequency_source_table(args.seed)), end="\n\n", flush=True)
    if args.part in ("all", "fresh"):
        print("\n".join(fresh_real_table(args.seed)), end="\n\n", flush=True)
    if args.part in ("all", "copying"):
        print("\n".join(copying_generator_table(args.seed)), flush=True)


if __name__ == "__main__":
    main()
