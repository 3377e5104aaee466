"""DP-SGD's privacy-utility frontier: `vae train --privacy EPSILON` at several ε beside the plain model, the
per-population-frequency generator and fresh real genomes.

    python scripts/vae_dp_frontier.py                  # 805-SNP panel, seed 1, ε 1,8,100,1000 (~6 min, 2 cores)
    python scripts/vae_dp_frontier.py --set agbl4      # AGBL4 (no labels): privacy loss, AATS, r(LD) (~25 min)

Every model is trained as `vae train` trains it with its defaults (the plain one: 150 epochs at most with early
stopping; the private ones: the DP-SGD schedule, 30 epochs of 256 people, δ = min(1e-5, 1 / (10 people))), on the
training half; one synthetic set as large as the training half (with its population counts) is drawn from each and
scored by ``genoae.simulate.evaluate`` against the training half and the real holdout half.  Appends the table to
scripts/BENCHMARKS_VAE.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_vae import agbl4_halves, independent_genotypes, panel_halves  # noqa: E402


def main(argv=None):
    import torch

    from genoae.simulate import SyntheticGenomes
    from genoae.simulate import evaluate as ev

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=["805", "agbl4"], default="805")
    parser.add_argument("--epsilons", default="1,8,100,1000", help="comma-separated ε values")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.set == "805":
        training, holdout, train_pops, hold_pops = panel_halves(args.seed)
        title = f"805-SNP panel, {training.n_samples} training / {holdout.n_samples} holdout people"
    else:
        (training, holdout), train_pops, hold_pops = agbl4_halves(), None, None
        title = (f"AGBL4, {training.n_samples} training / {holdout.n_samples} holdout people, "
                 f"{training.n_variants} SNPs")
    counts = None if train_pops is None else {pop: int(np.sum(train_pops == pop)) for pop in sorted(set(train_pops))}

    def score(genotypes, labels, repeats=0):
        report, _ = ev.evaluate_synthetic(training, genotypes, holdout, train_pops, labels, hold_pops,
                                          seed=args.seed, reference_repeats=repeats)
        return report

    rows, fresh = [], None
    for epsilon in [None] + [float(e) for e in args.epsilons.split(",")]:
        tick = time.perf_counter()
        estimator = SyntheticGenomes(seed=args.seed, privacy_epsilon=epsilon, progress=False)
        estimator.fit(training, train_pops)
        seconds = time.perf_counter() - tick
        synthetic = (estimator.sample(counts=counts, seed=args.seed) if counts
                     else estimator.sample(n=training.n_samples, seed=args.seed))
        report = score(synthetic, synthetic.info["populations"] if counts else None, 5 if fresh is None else 0)
        fresh = fresh or report["privacy_loss"]["fresh_real_reference"]
        account = estimator.privacy_
        name = "plain (no guarantee)" if account is None else f"ε {epsilon:g}"
        rows.append((name, account, seconds, report))
        print(f"{name}: {seconds:.0f} s, privacy loss {report['privacy_loss']['synthetic']:.4f}", file=sys.stderr)
    floor, floor_pops = independent_genotypes(training, train_pops, seed=args.seed)
    rows.append(("per-population frequencies (no network)" if counts else "allele frequencies (no network)", None,
                 None, score(floor, floor_pops)))

    limit = fresh["mean"] + 2 * fresh["sd"]
    lines = [f"### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: DP-SGD frontier (`vae train --privacy`), {title}"
             f" (`scripts/vae_dp_frontier.py --set {args.set}`, seed {args.seed}, {args.threads} threads)", "",
             f"`vae train` defaults, plain and private (δ = {rows[1][1].delta:g} where private). Fresh real genomes: "
             f"privacy loss {fresh['mean']:.4f} ± {fresh['sd']:.4f} (mean + 2 sd = {limit:.4f}).", "",
             "| model | ε spent | noise σ | train (s) | privacy loss | train-on-synthetic accuracy | AATS | AA_truth | "
             "AA_syn | r(AF) | r(LD r²) | median DCR |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, account, seconds, report in rows:
        accuracy = report.get("population_classification", {}).get("train_synthetic_test_real")
        aats = report["aats"]["synthetic"]
        lines.append(
            f"| {name} | {'' if account is None else f'{account.epsilon_spent:.3g}'} | "
            f"{'' if account is None else f'{account.noise_multiplier:.3g}'} | "
            f"{'' if seconds is None else f'{seconds:.0f}'} | {report['privacy_loss']['synthetic']:.4f} | "
            f"{'' if accuracy is None else f'{accuracy:.3f}'} | {aats['aats']:.3f} | {aats['aa_truth']:.3f} | "
            f"{aats['aa_syn']:.3f} | {report['allele_frequency']['synthetic']['r']:.4f} | "
            f"{report['ld']['synthetic']['r']:.3f} | "
            f"{report['distance_to_closest_record']['synthetic']['median']:.0f} |")
    within = [name for name, _, _, report in rows[:-1] if report["privacy_loss"]["synthetic"] <= limit]
    lines += ["", f"- Models within fresh real genomes' privacy loss (≤ {limit:.4f}): {', '.join(within) or 'none'}."]
    if counts:
        floor_report = rows[-1][3]
        floor_loss = floor_report["privacy_loss"]["synthetic"]
        floor_accuracy = floor_report["population_classification"]["train_synthetic_test_real"]
        beats = [name for name, _, _, report in rows[:-1] if report["privacy_loss"]["synthetic"] < floor_loss
                 and report["population_classification"]["train_synthetic_test_real"] > floor_accuracy]
        lines.append(f"- Models that beat the per-population-frequency generator on both axes: "
                     f"{', '.join(beats) or 'none'}.")
    from bench_admix import publish

    publish(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
