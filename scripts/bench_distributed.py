"""Benchmark the SNP-sharded `genoae admix` (torchrun, Gloo): 1 process against R ranks on this machine, the bytes
all-reduced per iteration, and a model of wall time at 8, 64 and 512 GPUs for 500,000 × 500,000, K = 10.

    python scripts/bench_distributed.py                          # 10,000 × 100,000, K = 4: 1 × 2 threads vs 2 × 1
    python scripts/bench_distributed.py --n 2000 --m 20000 -k 3  # a quick one
    python scripts/bench_distributed.py --ranks 4 --threads 4    # a machine with 4 cores

The same simulated set (``bench_admix.simulate``: admixed individuals with known Q) is fitted by one process with
``--threads T`` and by ``torchrun --nproc-per-node R`` with T / R threads per rank, so both use the same cores.
Each run is timed whole from outside (wall, peak RSS of the largest process); each rank's own peak RSS and the
bytes it all-reduced come from the run's PREFIX.log.  The two results are compared on ℓ and Q, and against the
truth.  Appends the tables to scripts/BENCHMARKS_DISTRIBUTED.md.

The model (not a measurement: no multi-GPU machine was lent here) takes:
  - the per-call compute of one refinement iteration, measured here on one CPU core, scaled from K to K = 10 by
    the K(K+1)/2 + K sums of the Newton passes, and divided by an assumed GPU speed-up (``--gpu-speedup``);
  - the bytes all-reduced per iteration, measured here per individual, scaled to K = 10 (the same formula) and to
    500,000 individuals;
  - a ring all-reduce, 2 (G − 1) / G × bytes / bandwidth + 2 (G − 1) × latency per collective, on an assumed
    interconnect (``--bandwidth-gbs``, ``--latency-us``);
  - the iteration count measured here.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_admix import append_notes, run_measured, simulate  # noqa: E402


def newton_sums(K: int) -> int:
    """Numbers per individual in the Q pass's statistics (gradient, the curvature's lower triangle, two more)."""
    return K + K * (K + 1) // 2 + 2


def read_log(path: Path) -> dict:
    """What a PREFIX.log says of the first K: ℓ, iterations, the refinement's seconds, the traffic, each rank's
    peak RSS."""
    text = path.read_text()
    out = {"loglik": float(re.search(r"loglik=(-?[\d.]+)", text).group(1)),
           "iterations": int(re.search(r"em_iterations=(\d+)", text).group(1)),
           "refinement_s": float(re.search(r"refinement ([\d.]+)", text).group(1))}
    traffic = re.search(r"all-reduced ([\d.]+) MB in (\d+) collectives", text)
    if traffic:
        out["reduced_mb"], out["collectives"] = float(traffic.group(1)), int(traffic.group(2))
    peaks = re.search(r"peak RSS per rank \(MiB\): ([\d. ]+)", text)
    if peaks:
        out["rank_rss"] = [float(v) for v in peaks.group(1).split()]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--m", type=int, default=100_000)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="cores in all: the one process's threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default="/tmp/genoae_bench_distributed")
    parser.add_argument("--gpu-speedup", type=float, default=100.0,
                        help="assumed: one GPU's per-call rate over one CPU core's (the model only)")
    parser.add_argument("--bandwidth-gbs", type=float, default=50.0,
                        help="assumed all-reduce bandwidth per rank, GB/s (400 Gb/s InfiniBand NDR)")
    parser.add_argument("--latency-us", type=float, default=10.0, help="assumed latency per message step, µs")
    parser.add_argument("--no-write", action="store_true", help="print only, do not append to the notes")
    args = parser.parse_args(argv)

    from genoae.compare import aligned_rmse

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    prefix = work / f"sim_{args.n}x{args.m}_K{args.k}"
    if not Path(f"{prefix}.bed").exists():
        print(f"simulating {args.n} × {args.m}, K = {args.k}", file=sys.stderr)
        simulate(args.n, args.m, args.k, fst=0.1, alpha=0.5, seed=args.seed, out=prefix, missing=0.02)
    Q_true = np.loadtxt(f"{prefix}.Q_true")
    packed_mib = os.path.getsize(f"{prefix}.bed") / 2**20
    n_variants = sum(1 for _ in open(f"{prefix}.bim"))
    calls = args.n * n_variants
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    threads_per_rank = max(1, args.threads // args.ranks)
    runs = {
        "1 process": ([sys.executable, "-m", "genoae", "admix", f"{prefix}.bed", "-k", str(args.k), "-o",
                       str(work / "one"), "--threads", str(args.threads), "--seed", str(args.seed), "--quiet"],
                      dict(env, OMP_NUM_THREADS=str(args.threads)), work / "one"),
        f"{args.ranks} ranks": ([shutil.which("torchrun") or "torchrun", "--standalone", "--nproc-per-node",
                                 str(args.ranks), "--no-python", "genoae", "admix", f"{prefix}.bed", "-k", str(args.k),
                                 "-o", str(work / "sharded"), "--threads", str(threads_per_rank), "--seed",
                                 str(args.seed), "--quiet"],
                                dict(env, OMP_NUM_THREADS=str(threads_per_rank)), work / "sharded"),
    }
    measured = {}
    for name, (command, run_env, out) in runs.items():
        for old in work.glob(f"{out.name}.*"):
            old.unlink()
        print(f"running {name}: {' '.join(command)}", file=sys.stderr)
        wall, peak, status, cpu = run_measured(command, work / f"{out.name}.run.log", run_env)
        if status != 0:
            raise SystemExit(f"{name} failed (exit {status}): see {work / f'{out.name}.run.log'}")
        log = read_log(Path(f"{out}.log"))
        Q = np.loadtxt(f"{out}.{args.k}.Q")
        measured[name] = dict(wall=wall, peak=peak, cpu=cpu, Q=Q, rmse=aligned_rmse(Q, Q_true), **log)
        print(f"  {wall:.1f} s, peak {peak:.0f} MiB, ℓ {log['loglik']:,.2f}", file=sys.stderr)

    one, sharded = measured["1 process"], measured[f"{args.ranks} ranks"]
    q_gap = float(np.sqrt(np.mean((one["Q"] - sharded["Q"]) ** 2)))
    lines = [f"### {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}: {args.n:,} × {n_variants:,}, "
             f"K = {args.k}, 2 % missing, packed {packed_mib:.0f} MiB, {args.threads} cores", "",
             "| run | threads per process | wall (s) | CPU (s) | peak RSS, largest process (MiB) | peak RSS per rank "
             "(MiB) | refinement iterations | refinement (s) | all-reduced (MB) | collectives | ℓ | Q RMSE vs "
             "truth |", "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, run in measured.items():
        per_rank = " / ".join(f"{v:.0f}" for v in run.get("rank_rss", [])) or "–"
        lines.append(f"| {name} | {args.threads if name == '1 process' else threads_per_rank} | {run['wall']:.1f} | "
                     f"{run['cpu']:.1f} | {run['peak']:.0f} | {per_rank} | {run['iterations']} | "
                     f"{run['refinement_s']:.1f} | {run.get('reduced_mb', 0):,.1f} | {run.get('collectives', 0)} | "
                     f"{run['loglik']:,.2f} | {run['rmse']:.5f} |")
    lines += ["", f"Sharded against one process: Δℓ {sharded['loglik'] - one['loglik']:+.3f}, Q RMSE {q_gap:.2e}."]

    # ---- the model
    per_call = one["refinement_s"] * args.threads / max(one["iterations"], 1) / calls  # core-seconds per call
    per_individual = sharded.get("reduced_mb", 0.0) * 1e6 / max(sharded["iterations"], 1) / args.n
    collectives = sharded.get("collectives", 0) / max(sharded["iterations"], 1)
    N = M = 500_000
    K = 10
    scale = newton_sums(K) / newton_sums(args.k)
    bytes_per_iteration = per_individual * scale * N
    lines += ["", f"**Model, {N:,} × {M:,}, K = {K}** (measured here: {per_call * 1e9:.2f} ns per call per "
              f"refinement iteration on one core at K = {args.k}, {per_individual:,.0f} bytes all-reduced per "
              f"individual per iteration over {collectives:.0f} collectives, {one['iterations']} iterations; "
              f"assumed: a GPU = {args.gpu_speedup:g} cores, ring all-reduce at {args.bandwidth_gbs:g} GB/s per rank "
              f"and {args.latency_us:g} µs per step; K scaling ×{scale:.2f} for both the compute and the "
              f"all-reduced statistics):", "",
              "| GPUs | packed calls per GPU (GB) | compute per iteration (s) | all-reduce per iteration (s) | "
              "all-reduced per iteration (GB) | wall for the iterations (s) | communication share |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for gpus in (8, 64, 512):
        compute = N * M / gpus * per_call * scale / args.gpu_speedup
        reduce = (2 * (gpus - 1) / gpus * bytes_per_iteration / (args.bandwidth_gbs * 1e9)
                  + 2 * (gpus - 1) * args.latency_us * 1e-6 * collectives)
        total = (compute + reduce) * one["iterations"]
        lines.append(f"| {gpus} | {N * M / 4 / gpus / 1e9:.2f} | {compute:.3f} | {reduce:.3f} | "
                     f"{bytes_per_iteration / 1e9:.2f} | {total:.1f} | {reduce / (compute + reduce):.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        append_notes("BENCHMARKS_DISTRIBUTED.md", "SNP-sharded `genoae admix` benchmarks", "\n" + text)


if __name__ == "__main__":
    main()
