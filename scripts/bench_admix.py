"""Benchmark `genoae admix` against the other ADMIXTURE-likelihood programs on simulated admixed data with known Q.

Simulation (Pritchard–Stephens–Donnelly with a Balding–Nichols drift model):
    ancestral frequency p_j ~ U(0.05, 0.95);  population frequencies P_jk ~ Beta(p_j (1 − F)/F, (1 − p_j)(1 − F)/F)
    (F = ``--fst``, clamped to [1e-3, 1 − 1e-3]);  Q_i ~ Dirichlet(α = ``--alpha``);  g_ij ~ Binomial(2, (Q Pᵀ)_ij).
Written as PLINK files (A2 counted); the true Q is kept beside them.

Each program runs as its own process with the same thread count; wall time and peak resident memory (the child's
``ru_maxrss``) are measured from outside.  Every result is scored with genoae's own likelihood code (ℓ on
ADMIXTURE's scale; a program whose P counts the other allele is scored with 1 − P) and by its Q RMSE against the
truth after Hungarian matching of clusters.  Programs not installed are listed as such.

    python scripts/bench_admix.py --grid quick    # 4 sets (simulated + real), ~15 min on 2 cores with both peers
    python scripts/bench_admix.py --grid full     # + 2,000 × 100,000 K=6 (5 % missing), 10,000 × 100,000 K=4, K=8
    python scripts/bench_admix.py --n 1500 --m 100000 -k 3      # one simulated set
    python scripts/bench_admix.py --small         # 300 × 10,000: a quick check
    python scripts/bench_admix.py --device cuda   # genoae (and ADAMIXTURE) on the GPU
    python scripts/bench_admix.py --n 20000 --m 50000 -k 4 --reference-fraction 0.1 --only genoae
                                                  # time to the optimum: plain fit vs --reference-fraction

Real sets are read from ../shared/data (skipped, and said so, where absent).  Per run it prints wall, CPU time,
peak RSS, peak RSS per call, ℓ, Δℓ to the best peer and Q RMSE to the truth (simulated sets), then the rows that
miss the targets of the ancestry-engine issue: ℓ ≥ best peer − 0.0001 %, wall ≤ 0.5 × ADAMIXTURE's, peak RSS ≤
ADAMIXTURE's and ≤ packed bytes + 400 MB.  Appends the tables to scripts/BENCHMARKS_ADMIX.md.
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def simulate(n: int, m: int, K: int, fst: float, alpha: float, seed: int, out: Path, missing: float = 0.0):
    """Write ``out``.bed/.bim/.fam and ``out``.Q_true; return the true Q (n, K).  ``missing``: fraction of calls
    set missing at random."""
    from genoae.genotypes import Genotypes, Samples, Variants, pack_calls
    from genoae.io.plink import write_plink

    rng = np.random.default_rng(seed)
    ancestral = rng.uniform(0.05, 0.95, size=m)
    a = ancestral * (1 - fst) / fst
    b = (1 - ancestral) * (1 - fst) / fst
    P = np.clip(rng.beta(a[:, None], b[:, None], size=(m, K)), 1e-3, 1 - 1e-3)
    Q = rng.dirichlet(np.full(K, alpha), size=n)
    packed = np.empty((m, (n + 3) // 4), np.uint8)
    chunk = 10_000
    for start in range(0, m, chunk):
        h = Q @ P[start:start + chunk].T  # (n, chunk)
        g = rng.binomial(2, h).astype(np.int8)
        if missing > 0:
            g[rng.random(g.shape) < missing] = -1
        packed[start:start + chunk] = pack_calls(g, axis=0)
    variants = Variants(chrom=np.full(m, "1"), pos=np.arange(1, m + 1) * 10, id=np.array([f"snp{j}" for j in range(m)]),
                        a1=np.full(m, "A"), a2=np.full(m, "G"))
    samples = Samples(np.array([f"ind{i}" for i in range(n)]))
    geno = Genotypes(packed, samples, variants)
    # fastmixture refuses monomorphic SNPs ("Please perform MAF filtering!"): drop them for every program
    freq = geno.allele_freqs()
    geno = geno.subset(variants=np.flatnonzero((freq > 0) & (freq < 1)))
    write_plink(geno, out)
    np.savetxt(f"{out}.Q_true", Q, fmt="%.6f")
    return Q


def run_measured(command: list[str], log_path: Path, env=None, timeout: float | None = None
                 ) -> tuple[float, float, int, float]:
    """Run a command; return (wall seconds, peak RSS in MiB of the program, exit status, CPU seconds user + sys).
    A run past ``timeout`` seconds is killed (exit status −9).

    CPU time is the fairer comparison on a shared, loaded machine, where wall time also counts waiting.

    The peak comes from GNU time when it is installed: a child forked from this (large) process starts with this
    process's resident-set high-water mark, so the child's own ``ru_maxrss`` would hide any peak below it.
    """
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    peak_file = Path(f"{log_path}.maxrss")
    if gnu_time:
        command = [gnu_time, "-o", str(peak_file), "-f", "%M"] + command
    with open(log_path, "w") as log:
        start = time.perf_counter()
        # a session of its own, so that a timeout kills the program and not only GNU time around it
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        timer = None
        if timeout:
            import signal
            import threading

            timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
            timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        if timer is not None:
            timer.cancel()
        wall = time.perf_counter() - start
    peak_kib = usage.ru_maxrss
    if gnu_time and peak_file.exists():
        try:
            peak_kib = int(peak_file.read_text().split()[-1])
        except (ValueError, IndexError):
            pass
    cpu = usage.ru_utime + usage.ru_stime  # the reaped child's, including its own reaped children
    return wall, peak_kib / 1024.0, os.waitstatus_to_exitcode(status), cpu


def score(calls, Q, P) -> float:
    """ℓ with genoae's likelihood code; P may count either allele (the better orientation is ADMIXTURE's)."""
    import torch

    Qt = torch.from_numpy(np.asarray(Q, np.float64))
    Qt = Qt / Qt.sum(dim=1, keepdim=True)
    Pt = torch.from_numpy(np.asarray(P, np.float64)).clamp(1e-5, 1 - 1e-5)
    return max(calls.loglik(Qt, Pt), calls.loglik(Qt, 1 - Pt))


def programs(prefix: Path, work: Path, K: int, threads: int, device: str, seed: int,
             reference_fraction: float | None = None):
    """(name, command, where its Q and P land) for every program available here."""
    genoae_cmd = [sys.executable, "-m", "genoae", "admix", f"{prefix}.bed", "-k", str(K), "-o", str(work / "genoae"),
                  "--threads", str(threads), "--device", device, "--seed", str(seed), "--quiet"]
    yield "genoae", genoae_cmd, (f"{work}/genoae.{K}.Q", f"{work}/genoae.{K}.P")
    if reference_fraction:
        command = [part if part != str(work / "genoae") else str(work / "genoae_rf") for part in genoae_cmd]
        yield (f"genoae --reference-fraction {reference_fraction:g}",
               command + ["--reference-fraction", str(reference_fraction)],
               (f"{work}/genoae_rf.{K}.Q", f"{work}/genoae_rf.{K}.P"))
    if shutil.which("adamixture"):
        out = work / "adamixture"
        out.mkdir(exist_ok=True)
        cmd = ["adamixture", "-k", str(K), "--data_path", f"{prefix}.bed", "--save_dir", str(out), "--name", "sim",
               "-t", str(threads), "--seed", str(seed), "--device", "gpu" if device == "cuda" else "cpu",
               "--chrom_mode", "all"]
        yield "ADAMIXTURE", cmd, (f"{out}/*{K}*.Q", f"{out}/*{K}*.P")
    else:
        yield "ADAMIXTURE", None, "not installed (pip install adamixture)"
    if shutil.which("fastmixture"):
        out = work / "fastmixture"
        cmd = ["fastmixture", "--bfile", str(prefix), "--K", str(K), "--threads", str(threads), "--seed", str(seed),
               "--out", str(out)]
        yield "fastmixture", cmd, (f"{out}*K{K}*.Q", f"{out}*K{K}*.P")
    else:
        yield "fastmixture", None, "not installed (pip install fastmixture)"
    if shutil.which("neural-admixture"):
        out = work / "neural_admixture"
        out.mkdir(exist_ok=True)
        cmd = ["neural-admixture", "train", "--k", str(K), "--data_path", f"{prefix}.bed", "--save_dir", str(out),
               "--name", "sim", "--threads", str(threads), "--seed", str(seed)] + (
                   ["--num_gpus", "1"] if device == "cuda" else [])
        yield "neural-admixture", cmd, (f"{out}/*{K}*.Q", f"{out}/*{K}*.P")
    else:
        yield "neural-admixture", None, ("not installed: its wheel pins its own torch, which would replace the "
                                         "shared environment's torch 2.13")


SHARED = ROOT.parent / "shared" / "data"
# (name, kind, source, K): kind "sim" -> source = (n, m, missing); "real" -> a .bed path under ../shared/data
GRIDS = {
    "quick": [("sim 1,000 × 50,000", "sim", (1000, 50_000, 0.0), 3),
              ("sim 2,000 × 20,000, 5 % missing", "sim", (2000, 20_000, 0.05), 6),
              ("hapmap3 (324 × 13,928)", "real", "hapmap3_admixture/hapmap3.bed", 4),
              ("hapmap3_hm3_957 (957 × 14,079)", "real", "hapmap3_hm3_957/HM3_thinned_autosomal_overlap.bed", 6)],
}
GRIDS["full"] = GRIDS["quick"] + [("sim 2,000 × 100,000, 5 % missing", "sim", (2000, 100_000, 0.05), 6),
                                  ("sim 3,000 × 30,000", "sim", (3000, 30_000, 0.0), 8),
                                  ("sim 10,000 × 100,000", "sim", (10_000, 100_000, 0.0), 4)]


def run_set(label, prefix: Path, K: int, Q_true, args, work: Path):
    """Every program on one data set; returns the markdown table rows and the lines of missed targets."""
    import torch

    from genoae.compare import aligned_rmse
    from genoae.io.plink import read_plink
    from genoae.likelihood import PackedCalls

    torch.set_num_threads(args.threads)
    genotypes = read_plink(f"{prefix}.bed")
    calls = PackedCalls.from_genotypes(genotypes)
    n_calls = genotypes.n_samples * genotypes.n_variants
    packed_mb = genotypes.packed.nbytes / 2**20
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    only = {name.strip().lower() for name in args.only.split(",") if name.strip()}
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, command, where in programs(prefix, work, K, args.threads, args.device, args.seed,
                                         args.reference_fraction):
        if only and name.lower().split(" --")[0] not in only:
            continue
        if command is None:
            rows.append((name, None, None, None, None, None, where))
            continue
        print(f"running {name}: {' '.join(command)}", file=sys.stderr)
        wall, peak, status, cpu = run_measured(command, work / f"{name}.log", env, timeout=args.timeout)
        if args.timeout and wall >= args.timeout:
            rows.append((name, wall, cpu, peak, None, None, f"stopped after {args.timeout:.0f} s (--timeout)"))
            continue
        q_files = sorted(glob.glob(where[0]))
        p_files = sorted(glob.glob(where[1]))
        if status != 0 or not q_files or not p_files:
            tail = open(work / f"{name}.log").read()[-300:].replace("\n", " ")
            rows.append((name, wall, cpu, peak, None, None, f"failed (exit {status}): {tail}"))
            continue
        Q, P = np.loadtxt(q_files[-1], ndmin=2), np.loadtxt(p_files[-1], ndmin=2)
        rmse = aligned_rmse(Q, Q_true) if Q_true is not None else None
        rows.append((name, wall, cpu, peak, score(calls, Q, P), rmse, ""))
        print(f"  {name}: {wall:.1f}s, CPU {cpu:.1f}s, {peak:.0f} MiB, loglik {rows[-1][4]:.2f}", file=sys.stderr)

    best = max((r[4] for r in rows if r[4] is not None and not r[0].startswith("genoae")), default=None)
    ada = next((r for r in rows if r[0] == "ADAMIXTURE" and r[4] is not None), None)
    table = [f"#### {label}, K = {K}: {genotypes.n_samples:,} × {genotypes.n_variants:,}, packed "
             f"{packed_mb:.1f} MiB", "",
             "| program | wall (s) | CPU user+sys (s) | peak RSS (MiB) | RSS bytes/call | log-likelihood "
             "| Δℓ vs best peer | Δℓ (%) | Q RMSE vs truth | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    misses = []
    for name, wall, cpu, peak, ll, rmse, note in rows:
        if ll is None:
            table.append(f"| {name} | {'' if wall is None else f'{wall:.1f}'} | {'' if cpu is None else f'{cpu:.1f}'} "
                         f"| {'' if peak is None else f'{peak:.0f}'} | | | | | | {note} |")
            continue
        delta = "" if best is None else f"{ll - best:+,.1f}"
        rel = "" if best is None else f"{100 * (ll - best) / abs(best):+.5f}"
        table.append(f"| {name} | {wall:.1f} | {cpu:.1f} | {peak:.0f} | {peak * 2**20 / n_calls:.2f} | {ll:,.1f} "
                     f"| {delta} | {rel} | {'' if rmse is None else f'{rmse:.5f}'} | {note} |")
        if name != "genoae":
            continue
        if best is not None and ll < best - 1e-6 * abs(best):
            misses.append(f"{label} K={K}: ℓ {ll - best:+,.1f} below the best peer ({rel} %)")
        if ada is not None and wall > 0.5 * ada[1]:
            misses.append(f"{label} K={K}: wall {wall:.1f}s = {wall / ada[1]:.2f} × ADAMIXTURE's {ada[1]:.1f}s")
        if ada is not None and peak > ada[3]:
            misses.append(f"{label} K={K}: peak RSS {peak:.0f} MiB > ADAMIXTURE's {ada[3]:.0f} MiB")
        if peak > packed_mb + 400 * 1e6 / 2**20:
            misses.append(f"{label} K={K}: peak RSS {peak:.0f} MiB > packed {packed_mb:.0f} MiB + 400 MB")
    return table, misses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default=None, help="run a grid of data sets")
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--m", type=int, default=100_000)
    parser.add_argument("-k", type=int, default=3)
    parser.add_argument("--missing", type=float, default=0.0, help="fraction of calls missing (simulated set)")
    parser.add_argument("--small", action="store_true", help="300 individuals x 10,000 SNPs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--fst", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of Q")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated program names to run (default: all)")
    parser.add_argument("--work", default=None, help="folder for data and outputs (default: a temp folder)")
    parser.add_argument("--no-write", action="store_true", help="do not append to scripts/BENCHMARKS_ADMIX.md")
    parser.add_argument("--timeout", type=float, default=None, help="stop any program after this many seconds")
    parser.add_argument("--reference-fraction", type=float, default=None,
                        help="also run genoae admix --reference-fraction F (a row of its own)")
    parser.add_argument("--sets", default="", help="with --grid: only the sets whose label contains one of these "
                                                  "';'-separated strings (labels hold commas)")
    args = parser.parse_args(argv)
    if args.small:
        args.n, args.m = 300, 10_000

    import tempfile

    import torch

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_admix_"))
    work.mkdir(parents=True, exist_ok=True)
    sets = GRIDS[args.grid] if args.grid else [(f"sim {args.n:,} × {args.m:,}", "sim",
                                                (args.n, args.m, args.missing), args.k)]
    wanted = [word.strip() for word in args.sets.split(";") if word.strip()]
    if wanted:
        sets = [entry for entry in sets if any(word in entry[0] for word in wanted)]
    tables, misses = [], []
    for label, kind, source, K in sets:
        if kind == "real":
            prefix = SHARED / source[:-len(".bed")]
            if not Path(f"{prefix}.bed").exists():
                tables.append([f"#### {label}: skipped, {prefix}.bed is not here"])
                continue
            Q_true = None
        else:
            n, m, missing = source
            prefix = work / f"sim_{n}x{m}_K{K}_miss{missing:g}"
            if not Path(f"{prefix}.bed").exists():
                tick = time.perf_counter()
                simulate(n, m, K, args.fst, args.alpha, args.seed, prefix, missing)
                print(f"simulated {n} x {m}, K={K} in {time.perf_counter() - tick:.1f}s -> {prefix}",
                      file=sys.stderr)
            Q_true = np.loadtxt(f"{prefix}.Q_true")
        table, missed = run_set(label, prefix, K, Q_true, args, work / f"{Path(prefix).name}_K{K}")
        tables.append(table)
        misses += missed
    header = (f"### {args.grid + ' grid' if args.grid else 'one set'}, {args.threads} threads, device {args.device} "
              f"— {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n\n"
              f"Simulated sets: PSD/Balding–Nichols (F = {args.fst}, Q ~ Dirichlet({args.alpha}), seed {args.seed}). "
              f"Machine: {platform.machine()}, {os.cpu_count()} CPUs"
              + (f", {torch.cuda.get_device_name(0)}" if args.device == "cuda" else "") + ".\n\n")
    text = header + "\n\n".join("\n".join(t) for t in tables) + "\n\n**Targets missed by genoae:**\n" + (
        "\n".join(f"- {line}" for line in misses) if misses else "- none") + "\n"
    print(text)
    if not args.no_write:
        append_notes("BENCHMARKS_ADMIX.md", "`genoae admix` benchmarks", "\n" + text)


def publish(lines: list, write: bool, name: str = "BENCHMARKS_VAE.md", title: str = "VAE benchmarks") -> str:
    """Print a table's lines and, unless ``write`` is false, append them to scripts/``name``; the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    if write:
        append_notes(name, title, "\n" + text)
    return text


def append_notes(name: str, title: str, text: str) -> None:
    """Append ``text`` to scripts/``name`` (created with ``title`` and a line on who writes it)."""
    path = ROOT / "scripts" / name
    if not path.exists():
        path.write_text(f"# {title}\n\nWritten by `scripts/{Path(sys.argv[0]).name}`; newest last.\n\n")
    with open(path, "a") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
