"""``genoae admix``: fit every K, write ADMIXTURE's files plus the model, the HDF5 results and the log."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genoae.ancestry import Admixture
from genoae.ancestry import distributed
from genoae.compare.metrics import fst_matrix
from genoae.commands.common import check_outputs, check_prefix, parse_ks
from genoae.device import choose_device, is_cuda
from genoae.errors import InputError, UsageError
from genoae.genotypes import ALLELE_CONVENTION
from genoae.io import input_files, read_genotype_part, read_genotypes
from genoae.io.atomic import OutputSet
from genoae.io.model import save_model
from genoae.io.qp import read_pop, write_p, write_q
from genoae.io.results import AdmixtureResult, is_results_file, write_results_h5
from genoae.likelihood import PackedCalls
from genoae.shard import LOCAL, TRAFFIC, split


@dataclass
class AdmixRun:
    """What :func:`run_admix` produced."""

    results: dict
    files: list
    log_path: object
    estimators: dict


def run_admix(input_path, ks, prefix=None, seed: int = 42, device: str = "auto", threads: int | None = None,
              tol: float = 1e-9, max_iter: int = 1000, cv: int = 0, supervised=None, precision: str = "auto",
              progress: bool = True, echo=print,
              init: str = "als", loglik_tol: float | None = None, minor_loglik_tol: float | None = None,
              bootstrap: int = 0, region: str | None = None, reference_fraction: float | None = None,
              starts: int = 1) -> AdmixRun:
    """``genoae admix``: fit every K, write PREFIX.K.Q / PREFIX.K.P / PREFIX.K.model.pt+json, PREFIX.h5, PREFIX.log.

    Parameters
    ----------
    input_path : str or Path
        Any genotype file :func:`genoae.io.read_genotypes` reads.
    ks : int, str or list
        K, ``"2-8"``, ``"2..8"``, ``"2,4,6"`` or a list of these (see :func:`genoae.commands.common.parse_ks`).
    prefix : str or Path, optional
        Output prefix; default: the input's name without extension, in the current folder.
    supervised : str or Path, optional
        ADMIXTURE ``.pop`` file (supervised mode).
    loglik_tol, minor_loglik_tol : float, optional
        ADMIXTURE's ``-C`` and ``-c``: stop when an iteration raises ℓ by less than this (absolute) for the fit,
        and for CV folds and bootstrap replicates; they replace ``tol`` (which is per observed call).
    bootstrap : int
        ADMIXTURE's ``-B``: this many moving-block bootstrap replicates; writes PREFIX.K.Q_se and PREFIX.K.Q_bias.
    region : str, optional
        Indexed VCF/BCF input only: fit on the records of ``chr:start-end``.
    starts : int
        Refine from this many starts and keep the highest likelihood (:class:`genoae.ancestry.Admixture`).
    reference_fraction : float, optional
        Fit first on this fraction of the individuals, project the rest onto that fit, then refine on all
        (:class:`~genoae.ancestry.Admixture`'s ``reference_fraction``).
    echo : callable(str)
        Where the per-K summary lines go (the CLI passes click.echo).

    Under ``torchrun`` (a world of more than one process) the fit is sharded by SNP
    (:mod:`genoae.ancestry.distributed`): each rank reads its range of the input (:func:`genoae.io.read_genotype_part`:
    .bed, .pgen, HDF5, VCF Zarr, .npy), and rank 0 writes the outputs, which record the ranks and their ranges; the
    other ranks return no files.
    """
    ks = parse_ks(ks)
    if not ks:
        raise UsageError("-k: give at least one K")
    if prefix is None:
        name = Path(input_path).name
        for suffix in (".bed", ".bim", ".fam", ".vcf.gz", ".vcf", ".h5", ".npy"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        prefix = name
    prefix = check_prefix(prefix)
    kinds = ("Q", "P", "model.pt", "model.json") + (("Q_se", "Q_bias") if bootstrap else ())
    outputs = [f"{prefix}.{K}.{kind}" for K in ks for kind in kinds]
    check_outputs(outputs + [f"{prefix}.h5", f"{prefix}.log"], input_files(input_path) + [supervised],
                  results_file=f"{prefix}.h5")
    launch = distributed.launch_environment()
    writer = launch is None or launch.rank == 0
    if not writer:  # one progress bar and one summary per run: rank 0's
        progress, echo = False, (lambda line: None)
    torch_device = choose_device(device)
    if launch is not None and threads is None:
        threads = launch.threads()
    if launch is not None and is_cuda(torch_device):  # one GPU per rank: this rank's
        torch_device = f"cuda:{launch.local_rank}"
    # only rank 0 writes; a second run into this prefix is refused from here on
    with distributed.session(launch, torch_device), OutputSet(prefix) if writer else contextlib.nullcontext() \
            as output:
        return _fit_and_write(input_path, ks, prefix, output, launch, torch_device, seed, threads, tol, max_iter,
                              cv, supervised, precision, progress, echo, init, loglik_tol, minor_loglik_tol,
                              bootstrap, region, reference_fraction, starts)


def _read_and_check(input_path, ks, launch, torch_device, supervised, cv, region, estimator_options):
    """Read the input (sharded: this rank's variants) and check every K against it: (genotypes, every variant,
    shard, populations, estimators).  Sharded, the ranks agree first, so an input that one rank cannot read
    stops all of them."""
    shard = LOCAL if launch is None else distributed.make_shard(launch, torch_device)
    error = None
    try:
        if launch is None:
            genotypes = read_genotypes(input_path, region=region)
            variants = genotypes.variants
        else:
            if region is not None:
                raise UsageError("--region reads a VCF, which a sharded run cannot split by variant (genoae convert IN "
                                 "OUT.bed --region ... first)")
            part = read_genotype_part(input_path, launch.rank, launch.size, quiet=launch.rank != 0)
            genotypes, variants = part.genotypes, part.variants
            shard = replace(shard, start=part.start, stop=part.stop, n_variants=len(variants))
        if cv and cv > len(variants):
            raise UsageError(f"--cv {cv}: more folds than the {len(variants)} variants; each fold should "
                             f"hold many calls (ADMIXTURE users take 5 or 10)")
        populations = None if supervised is None else read_pop(supervised, genotypes.n_samples)
        estimators = {K: Admixture(K, device=str(torch_device), **estimator_options) for K in ks}
        for estimator in estimators.values():  # every K is checked before the first one runs
            estimator.check(genotypes, populations)
    except (InputError, UsageError, OSError) as failure:
        error = failure
    distributed.agree(shard, error)
    return genotypes, variants, shard, populations, estimators


def _fit_and_write(input_path, ks, prefix, output, launch, torch_device, seed, threads, tol, max_iter, cv,
                   supervised, precision, progress, echo, init, loglik_tol, minor_loglik_tol, bootstrap, region,
                   reference_fraction, starts) -> AdmixRun:
    options = dict(tol=tol, max_iter=max_iter, seed=seed, threads=threads, precision=precision, progress=progress,
                   init=init, reference_fraction=reference_fraction, starts=starts)
    genotypes, variants, shard, populations, estimators = _read_and_check(input_path, ks, launch, torch_device,
                                                                          supervised, cv, region, options)
    calls = PackedCalls.from_genotypes(genotypes, torch_device, shard=shard)  # decoded once, shared by every K
    n_observed = max(1, int(calls.n_observed.sum()))
    for estimator in estimators.values():  # ADMIXTURE's absolute criteria, as genoae's per-call ones
        if loglik_tol is not None:
            estimator.tol = loglik_tol / n_observed
        if minor_loglik_tol is not None:
            estimator.minor_tol = minor_loglik_tol / n_observed

    results, log_lines = {}, [
        f"# genoae admix {genotypes.source}",
        f"# {genotypes.n_samples} individuals x {len(variants)} variants, device {torch_device}",
        f"# allele convention: {ALLELE_CONVENTION}; P = A2 frequency",
        "# loglik: sum over observed calls of g log h + (2-g) log(1-h), natural log (ADMIXTURE's scale)"]
    sharding = {}
    if shard.sharded:
        ranges = split(len(variants), shard.size)
        sharding = {"ranks": shard.size, "rank_variants": [[a, b] for a, b in ranges]}
        log_lines.append(f"# ranks: {shard.size} (torch.distributed, SNP-sharded; variants counted from 0, end "
                         f"excluded): " + ", ".join(f"rank {r} {a}-{b}" for r, (a, b) in enumerate(ranges)))
    for K in ks:
        tick = time.perf_counter()
        traffic = dict(TRAFFIC)
        estimator = estimators[K]
        estimator.fit(genotypes, populations=populations, calls=calls)
        if cv:
            estimator.cross_validate(genotypes, cv, calls=calls, populations=populations)
        if bootstrap:
            estimator.bootstrap(genotypes, bootstrap, populations=populations)
        sent = {key: TRAFFIC[key] - traffic[key] for key in TRAFFIC}
        distributed.gather_fit(estimator)  # sharded: P and the model over every variant (Q is already whole)
        seconds = time.perf_counter() - tick
        result = admixture_result(estimator, {"input": str(input_path), "supervised": str(supervised or ""),
                                              "seconds": seconds, **sharding})
        results[K] = result
        line = (f"K={K}\tloglik={estimator.loglik_:.6f}\tem_iterations={estimator.report_.em_iterations}\t"
                f"seconds={seconds:.1f}")
        if cv:
            line += f"\tCV error (K={K}): {estimator.cv_error_:.5f}"
        echo(line)
        if output is None:  # a rank other than 0: rank 0 writes
            continue
        write_q(estimator.Q_, output.path(f"{prefix}.{K}.Q"))
        write_p(estimator.P_, output.path(f"{prefix}.{K}.P"))
        save_model(output.path(f"{prefix}.{K}.model.pt"), estimator.model_, variants,
                   estimator.populations_, result.settings, estimator.loglik_)
        if bootstrap:
            write_q(estimator.Q_se_, output.path(f"{prefix}.{K}.Q_se"))
            write_q(estimator.Q_bias_, output.path(f"{prefix}.{K}.Q_bias"))
        log_lines += [line] + _log_details(estimator, bootstrap)
        if shard.sharded:
            log_lines.append(f"#   rank 0 all-reduced {sent['bytes'] / 1e6:.1f} MB in {sent['collectives']} "
                             f"collectives (fit{', CV' if cv else ''}{', bootstrap' if bootstrap else ''})")
    if shard.sharded:  # each rank's high-water mark, gathered before rank 0 writes the log
        peaks = shard.gather_rows(np.array([_peak_rss_mib()]))
        log_lines.append("# peak RSS per rank (MiB): " + " ".join(f"{value:.0f}" for value in peaks))
    distributed.barrier(shard)  # every rank finished: rank 0 may move the outputs into place
    if output is None:
        return AdmixRun(results, [], None, estimators)
    kept, stale = _earlier_results(prefix, genotypes.samples, variants, input_path, ks)
    output.remove_on_commit(stale)
    if kept:
        log_lines.append("# also in this prefix, from an earlier run on the same input: K = "
                         + ", ".join(map(str, sorted(kept))))
    if stale:
        log_lines.append("# removed, from an earlier run on other data: " + ", ".join(p.name for p in stale))
    write_results_h5(output.path(f"{prefix}.h5"), [*results.values(), *kept.values()], genotypes.samples,
                     variants, source=genotypes.source)
    log_path = output.path(f"{prefix}.log")
    log_path.write_text("\n".join(log_lines) + "\n")  # staged: moved into place with the rest
    files = [output.final(p) for p in sorted(output.staging.iterdir(), key=_output_order)]
    return AdmixRun(results, files, output.final(log_path), estimators)


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _log_details(estimator: Admixture, bootstrap: int = 0) -> list:
    """The log's lines under one K's summary line: start, every start's ℓ (``--starts``), refinement with ℓ per
    iteration, encoder, timings, supervised columns, F_ST between the clusters (as ADMIXTURE's log prints it),
    bootstrap."""
    report = estimator.report_
    encoder = report.encoder
    start = (f"a fit on {report.reference_size} individuals drawn at random, the others projected onto it"
             if report.reference_size else estimator.init)
    lines = [f"#   start ({start}): loglik {report.init_loglik:.3f}; refinement on all individuals: "
             f"{report.em_iterations} quasi-Newton iterations",
             f"#   encoder (genoae project's start; changes no output here): on these individuals Q RMSE "
             f"{report.encoder_rmse:.4f} from the refined Q, loglik {report.network_loglik:.3f} (its Q alone); on "
             f"{encoder.n_synthetic} new individuals drawn from the fit, Q RMSE {encoder.heldout_rmse:.4f} from "
             f"their converged projection (reached in {encoder.iterations} iterations from the encoder's Q)",
             "#   seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items())]
    if len(report.starts) > 1:
        each = "; ".join(f"{refined:.3f} ({start:.3f}, {iterations})" for start, refined, iterations in report.starts)
        lines.insert(1, f"#   {len(report.starts)} starts, each drawn afresh and refined; loglik refined (at the "
                        f"start, iterations): {each}; kept start {report.best_start + 1}, the highest")
    trace = np.asarray(estimator.loglik_trace_, dtype=np.float64)
    lines.append("#   loglik per iteration (from the start): " + " ".join(f"{value:.3f}" for value in trace))
    if estimator.populations_:
        lines.append("#   supervised: Q columns = " + " ".join(estimator.populations_))
    if estimator.K > 1:
        fst = fst_matrix(estimator.P_)
        names = estimator.populations_ or [f"Pop{k}" for k in range(estimator.K)]
        lines.append("#   Fst divergences between estimated populations (ADMIXTURE's estimator):")
        lines.append("#   \t" + "\t".join(names[:-1]))
        lines += ["#   " + names[a] + "\t" + "\t".join(f"{fst[a, b]:.3f}" for b in range(a))
                  for a in range(estimator.K)]
    if bootstrap:
        lines.append(f"#   bootstrap: {bootstrap} moving-block replicates over SNPs; Q_se and Q_bias written")
    return lines


_KIND_ORDER = {"Q": 0, "Q_se": 1, "Q_bias": 2, "P": 3, "pt": 4, "json": 5}


def _output_order(path: Path):
    """PREFIX.K.Q, .P, .model.pt, .model.json for each K in turn, then PREFIX.h5 and PREFIX.log."""
    parts = path.name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit() and i > 0:
            return (0, int(part), _KIND_ORDER.get(parts[-1], 9))
    return (1, 0 if path.suffix == ".h5" else 1, 0)


def _earlier_results(prefix: str, samples, variants, input_path, ks) -> tuple[dict, list]:
    """Results of an earlier run already under ``prefix`` for K this run does not fit.

    From a run on the same input (same file, same individuals and variants) they are kept, so the new PREFIX.h5
    lists every K whose files the prefix holds (ADMIXTURE users run one K per call into one prefix).  From a run
    on other data, their per-K files would sit beside the new results as if they belonged to them: they are
    returned as stale, to be removed when the new set is moved in.
    """
    from genoae.io.results import read_results_h5

    old_h5 = Path(f"{prefix}.h5")
    if not old_h5.exists() or not is_results_file(old_h5):
        return {}, []
    try:
        old, old_samples, old_variants = read_results_h5(old_h5)
    except InputError:
        return {}, []
    others = {K: result for K, result in old.items() if K not in ks}
    same = (len(old_samples.iid) == len(samples.iid) and len(old_variants.id) == len(variants.id)
            and np.array_equal(old_samples.iid, samples.iid)
            and np.array_equal(old_variants.id, variants.id)
            and all(r.settings.get("input") == str(input_path) for r in others.values()))
    if same:
        return others, []
    stale = [Path(f"{prefix}.{K}.{kind}") for K in others
             for kind in ("Q", "P", "model.pt", "model.json", "Q_se", "Q_bias")]
    return {}, [path for path in stale if path.exists()]


def admixture_result(estimator: Admixture, settings: dict | None = None) -> AdmixtureResult:
    """A fitted :class:`~genoae.ancestry.Admixture` as an :class:`~genoae.io.results.AdmixtureResult` (PREFIX.h5)."""
    merged = {**estimator.get_params(), "populations": estimator.populations_,
              "em_iterations": estimator.report_.em_iterations, "encoder_loglik": estimator.report_.network_loglik,
              **(settings or {})}
    return AdmixtureResult(Q=estimator.Q_, P=estimator.P_, loglik=estimator.loglik_,
                           loglik_trace=estimator.loglik_trace_, cv_error=getattr(estimator, "cv_error_", float("nan")),
                           settings=merged)
