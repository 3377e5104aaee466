"""Benchmark of `genoae vae`: realism / privacy targets on the two 1000 Genomes sets, and sampling speed.

    python scripts/bench_vae.py                       # everything, CPU, writes scripts/BENCHMARKS_VAE.md
    python scripts/bench_vae.py --device cuda --data agbl4
    python scripts/bench_vae.py --data speed          # only the sampling-speed check

Data (../shared/data):
* AGBL4: train on AGBL4_split1.vcf.gz (1,252 people), holdout = AGBL4_split2.vcf.gz (the other 1,252), unconditional.
* 805-SNP panel: 2,504 people, 26 populations, split 50/50 by person (seeded, stratified by population), conditional.
Each is reported for the synthetic set, the real holdout (the ceiling) and an independent-SNP generator (the floor).
"""
from __future__ import annotations

import argparse
import os
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genoae.commands.vae import write_report  # noqa: E402
from genoae.simulate import evaluate as ev  # noqa: E402
from genoae.genotypes import Genotypes  # noqa: E402
from genoae.io import read_genotypes  # noqa: E402
from genoae.io.labels import read_labels  # noqa: E402
from genoae.simulate import GenomeVAE, SyntheticGenomes  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
TARGETS = {"af_r": ">= 0.99", "ld_r": ">= 0.95 (AGBL4)", "aats": "0.42-0.52", "privacy": "|x| <= 0.03",
           "copies": "0", "tstr": ">= 0.58 (805, 26 pops)", "speed": "< 10 s (CPU)"}


def independent_genotypes(training: Genotypes, populations=None, seed=0) -> tuple[Genotypes, np.ndarray]:
    """The floor: each SNP drawn from its (per-population) frequency; as many individuals as the training set
    (:func:`genoae.simulate.frontier.frequency_generator`, the generator ``vae evaluate --frontier`` scores)."""
    from genoae.simulate.frontier import frequency_generator

    floor = frequency_generator(training, populations, seed=seed)
    labels = ev.synthetic_populations(floor.samples.iid) if populations is not None else np.full(floor.n_samples, "")
    return floor, labels


def stratified_person_split(populations, seed=0):
    rng = np.random.default_rng(seed)
    first = []
    for pop in sorted(set(populations)):
        members = rng.permutation(np.flatnonzero(populations == pop))
        first += members[: len(members) // 2].tolist()
    mask = np.zeros(len(populations), bool)
    mask[first] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def headline(report, name):
    out = {"af_r": report["allele_frequency"][name]["r"], "af_mae": report["allele_frequency"][name]["mae"],
           "ld_r": report["ld"][name]["r"], "pca_w1": report["pca"][name]["wasserstein_pc1"],
           "aats": report["aats"][name]["aats"], "aa_truth": report["aats"][name]["aa_truth"],
           "aa_syn": report["aats"][name]["aa_syn"], "copies": report["exact_copies_of_training"][name],
           "dcr_median": report["distance_to_closest_record"][name]["median"]}
    return out


def run_dataset(name, training, holdout, train_pops, hold_pops, args, log):
    params = dict(epochs=args.epochs, device=args.device, seed=args.seed, progress=not args.quiet, **args.vae_params)
    t0 = time.time()
    estimator = SyntheticGenomes(**params).fit(training, train_pops)
    fit_seconds = time.time() - t0
    counts = None
    if train_pops is not None:
        counts = {p: int(np.sum(train_pops == p)) for p in sorted(set(train_pops))}
    t0 = time.time()
    synthetic = estimator.sample(n=training.n_samples, counts=counts, seed=args.seed + 1)
    sample_seconds = time.time() - t0
    synth_pops = synthetic.info.get("populations") if train_pops is not None else None
    report, arrays = ev.evaluate_synthetic(training, synthetic, holdout, train_pops, synth_pops, hold_pops,
                                           ld_window=args.ld_window, seed=args.seed)
    floor, floor_pops = independent_genotypes(training, train_pops, seed=args.seed)
    floor_report, _ = ev.evaluate_synthetic(training, floor, holdout, train_pops,
                                            floor_pops if train_pops is not None else None, hold_pops,
                                            ld_window=args.ld_window, seed=args.seed,
                                            reference_repeats=0)  # the same as the synthetic report's
    if args.report_dir:
        write_report(report, arrays, Path(args.report_dir) / f"{name}_report")
    result = {"dataset": name, "n_train": training.n_samples, "n_holdout": holdout.n_samples,
              "n_variants": training.n_variants, "epochs_run": len(estimator.history_.validation),
              "best_epoch": estimator.history_.best_epoch, "fit_seconds": fit_seconds,
              "sample_seconds": sample_seconds, "synthetic": headline(report, "synthetic"),
              "holdout": headline(report, "holdout"), "independent": headline(floor_report, "synthetic"),
              "privacy_loss": {"synthetic": report["privacy_loss"]["synthetic"],
                               "holdout": None, "independent": floor_report["privacy_loss"]["synthetic"]},
              "privacy_loss_fresh_real": report["privacy_loss"]["fresh_real_reference"]}
    if "population_classification" in report:
        result["tstr"] = {"synthetic": report["population_classification"]["train_synthetic_test_real"],
                          "real": report["population_classification"]["train_real_test_real"],
                          "independent": floor_report["population_classification"]["train_synthetic_test_real"]}
    log(json.dumps(result, indent=1))
    return result


def agbl4_halves():
    """The AGBL4 region's two given halves: (training, holdout)."""
    folder = DATA / "1kg_phase3_chr1_agbl4_split_vcf"
    return (read_genotypes(folder / "AGBL4_split1.vcf.gz", quiet=True),
            read_genotypes(folder / "AGBL4_split2.vcf.gz", quiet=True))


def panel_halves(seed):
    """The 805-SNP panel split 50/50 by person within population: (training, holdout, their populations)."""
    folder = DATA / "1kg_805snp_haplotypes"
    everyone = read_genotypes(folder / "805_SNP_1000G_real.hapt.gz")
    pops = read_labels(folder / "labels.tsv", everyone.samples)
    train_idx, hold_idx = stratified_person_split(pops, seed)
    return everyone.subset(samples=train_idx), everyone.subset(samples=hold_idx), pops[train_idx], pops[hold_idx]


def bench_agbl4(args, log):
    training, holdout = agbl4_halves()
    return run_dataset("AGBL4", training, holdout, None, None, args, log)


def bench_805(args, log):
    return run_dataset("805-SNP panel", *panel_halves(args.seed), args, log)


def bench_speed(args, log, n_genomes=10_000, n_variants=10_000):
    """Sampling speed of the default architecture at 10,000 SNPs (weights are random: speed does not depend on them)."""
    from genoae.genotypes import Variants

    torch.manual_seed(0)
    estimator = SyntheticGenomes(device=args.device, **args.vae_params)
    estimator.mode_ = "haplotype"
    estimator.populations_, estimator.population_counts_ = [], []
    estimator.variants_ = Variants.placeholder(n_variants)
    estimator.model_ = GenomeVAE(n_variants, **estimator._architecture()).to(
        "cuda" if args.device == "cuda" else "cpu").eval()
    estimator.sample(n=100, seed=0)  # warm-up
    t0 = time.time()
    genotypes = estimator.sample(n=n_genomes, seed=1)
    seconds = time.time() - t0
    assert genotypes.n_samples == n_genomes and genotypes.n_variants == n_variants
    result = {"n_genomes": n_genomes, "n_variants": n_variants, "seconds": seconds, "device": args.device,
              "threads": torch.get_num_threads()}
    log(json.dumps(result))
    return result


def fmt(x, digits=3):
    return "—" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def markdown(results, args) -> str:
    lines = ["# genoae vae — benchmark", "",
             f"Written by `scripts/bench_vae.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); "
             f"device `{args.device}`, torch threads {args.threads or 'default'} (training), "
             f"{os.cpu_count()} CPUs ({platform.machine()}), load average at the end {os.getloadavg()[0]:.1f}, "
             f"seed {args.seed}, max epochs {args.epochs}, LD window {args.ld_window} SNPs, "
             f"settings {json.dumps(args.vae_params) if args.vae_params else 'the defaults'}.", "",
             "Rows: `synthetic` = VAE samples; `holdout` = real people not used in training (the ceiling); "
             "`independent` = every SNP drawn from its (per-population) frequency (the floor). "
             "Distances and AATS are on haplotypes (Hamming); privacy loss = AATS(synth vs holdout) − "
             "AATS(synth vs training).", ""]
    for res in results.get("datasets", []):
        lines += [f"## {res['dataset']}: {res['n_train']} training / {res['n_holdout']} holdout people, "
                  f"{res['n_variants']} SNPs", "",
                  f"Training: {res['epochs_run']} epochs (best {res['best_epoch']}), {res['fit_seconds']:.0f} s; "
                  f"sampling {res['n_train']} people: {res['sample_seconds']:.2f} s.", "",
                  "| set | r(AF) | MAE(AF) | r(LD r²) | PCA W1(PC1) | AATS | AA_truth | AA_syn | privacy loss | "
                  "exact copies | median DCR |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        fresh = res.get("privacy_loss_fresh_real")
        for row in ("synthetic", "holdout", "independent"):
            h = res[row]
            privacy = fmt(res["privacy_loss"][row])
            if row == "holdout" and fresh:
                privacy = f"{fresh['mean']:.3f} ± {fresh['sd']:.3f} ¹"
            lines.append(f"| {row} | {fmt(h['af_r'], 4)} | {fmt(h['af_mae'], 4)} | {fmt(h['ld_r'])} | "
                         f"{fmt(h['pca_w1'])} | {fmt(h['aats'])} | {fmt(h['aa_truth'])} | {fmt(h['aa_syn'])} | "
                         f"{privacy} | {h['copies']} | {fmt(h['dcr_median'], 1)} |")
        if fresh:
            lines += ["", f"¹ Privacy loss of fresh real genomes: the holdout split in two by person "
                          f"({len(fresh['values'])} random halvings, {fresh['n_rows']} haplotypes a half), one half "
                          "scored as if it were synthetic (mean ± sd). A perfect generator scores like this."]
        if "tstr" in res:
            t = res["tstr"]
            lines += ["", f"Population classifier (multinomial logistic regression, {res['dataset']}), accuracy on "
                          f"the real holdout: train-on-synthetic **{t['synthetic']:.3f}**, train-on-real "
                          f"{t['real']:.3f}, train-on-independent-SNP {t['independent']:.3f}."]
        lines.append("")
    if "speed" in results:
        s = results["speed"]
        lines += ["## Sampling speed", "",
                  f"{s['n_genomes']:,} genomes (2 haplotypes each) x {s['n_variants']:,} SNPs, default architecture, "
                  f"device `{s['device']}`, {s['threads']} threads: **{s['seconds']:.2f} s** "
                  "(includes packing into a Genotypes container).", ""]
    lines += ["## Targets", ""] + [f"- {k}: {v}" for k, v in TARGETS.items()] + [""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["all", "agbl4", "805", "speed"], default="all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ld-window", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training and evaluation")
    parser.add_argument("--speed-threads", type=int, default=None, help="torch threads for the sampling-speed run "
                        "(default: torch's default, all cores)")
    parser.add_argument("--report-dir", default=None, help="also write the full JSON + PNG reports here")
    parser.add_argument("--output", default=str(ROOT / "scripts" / "BENCHMARKS_VAE.md"))
    parser.add_argument("--json", default=None, help="also write the raw results as JSON")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--vae-params", type=json.loads, default={}, help="JSON object of SyntheticGenomes settings "
                        "that override the defaults, e.g. '{\"prior_hidden\": 64}'")
    args = parser.parse_args(argv)
    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)

    def log(text):
        print(text, file=sys.stderr, flush=True)

    results = {"datasets": []}
    if args.data in ("all", "agbl4"):
        results["datasets"].append(bench_agbl4(args, log))
    if args.data in ("all", "805"):
        results["datasets"].append(bench_805(args, log))
    if args.data in ("all", "speed"):
        torch.set_num_threads(args.speed_threads or default_threads)
        results["speed"] = bench_speed(args, log)
    Path(args.output).write_text(markdown(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
