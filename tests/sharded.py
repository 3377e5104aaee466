"""Run a function on each rank of a Gloo process group spawned from a test (CPU, this machine).

``run_ranks(task, size, **arguments)`` starts ``size`` processes; each joins the group, calls
``TASKS[task](rank, size, **arguments)`` and saves the dict of arrays it returns; the test gets one dict per rank.
Tasks live here (spawned processes import them by name).
"""
from __future__ import annotations

import os
import socket
import traceback
from pathlib import Path

import numpy as np

from genoae.device import to_numpy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker(rank, size, port, task, arguments, folder):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    try:
        dist.init_process_group("gloo", rank=rank, world_size=size)
        result = TASKS[task](rank, size, **arguments)
        np.savez(Path(folder) / f"rank{rank}.npz", **result)
    except BaseException:
        (Path(folder) / f"rank{rank}.error").write_text(traceback.format_exc())
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_ranks(task: str, size: int, folder, timeout: float = 600, expect_failure: bool = False,
              **arguments) -> list:
    """Each rank's returned arrays, in rank order (raises with the ranks' tracebacks when one failed).  With
    ``expect_failure``: (exit codes, results or None, error texts) per rank instead, however the ranks ended."""
    import multiprocessing

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=_worker, args=(rank, size, port, task, arguments, str(folder)))
                 for rank in range(size)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
    hung = [rank for rank, process in enumerate(processes) if process.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
    codes = [process.exitcode for process in processes]
    results = [dict(np.load(folder / f"rank{rank}.npz")) if (folder / f"rank{rank}.npz").exists() else None
               for rank in range(size)]
    errors = [(folder / f"rank{rank}.error").read_text() if (folder / f"rank{rank}.error").exists() else ""
              for rank in range(size)]
    if hung:
        raise AssertionError(f"rank(s) {hung} still running after {timeout} s")
    if expect_failure:
        return codes, results, errors
    if any(codes) or any(result is None for result in results):
        raise AssertionError(f"exit codes {codes}:\n" + "\n".join(errors))
    return results


def _part(path, rank, size):
    """This rank's part of a .bed and its shard."""
    from genoae.ancestry.distributed import Launch, make_shard
    from genoae.io import read_genotype_part
    import torch

    part = read_genotype_part(path, rank, size)
    shard = make_shard(Launch(rank, size, rank), torch.device("cpu"), part.start, part.stop, len(part.variants))
    return part, shard


def steps_task(rank, size, path, Q, P, folds, fold, seed, threads, backend="auto"):
    """ℓ, one EM step, one block-relaxation step, the observed counts and a fold's deviance, on this rank's SNPs
    at the given (whole) Q and P."""
    import torch

    from genoae.device import set_threads
    from genoae.likelihood import PackedCalls

    set_threads(threads)
    part, shard = _part(path, rank, size)
    calls = PackedCalls.from_genotypes(part.genotypes, "cpu", shard=shard, backend=backend)
    Q = torch.from_numpy(Q)
    P_local = torch.from_numpy(P[part.start:part.stop])
    em_Q, em_P, em_loglik = calls.em_step(Q, P_local, with_loglik=True)
    newton_Q, newton_P, newton_loglik = calls.newton_step(Q, P_local, with_loglik=True)
    deviance, held = calls.deviance(Q, P_local, folds, fold, seed)
    training = calls.training(folds, fold, seed)
    _, _, unchanged_loglik = calls.em_step(Q, P_local, update_q=False, update_p=False, with_loglik=True)
    return {"loglik": np.array(calls.loglik(Q, P_local)), "n_observed": to_numpy(calls.n_observed),
            "unchanged_loglik": np.array(unchanged_loglik),
            "em_Q": to_numpy(em_Q), "em_P": shard.gather_rows(to_numpy(em_P)), "em_loglik": np.array(em_loglik),
            "newton_Q": to_numpy(newton_Q), "newton_P": shard.gather_rows(to_numpy(newton_P)),
            "newton_loglik": np.array(newton_loglik), "deviance": np.array(deviance), "held": np.array(held),
            "training_loglik": np.array(training.loglik(Q, P_local)),
            "training_observed": to_numpy(training.n_observed)}


def fit_task(rank, size, path, K, seed, cv, populations=None, bootstrap=0, backend="auto", check_calls=None):
    """A whole fit (start, refinement, encoder, CV), gathered; ``check_calls`` sets the encoder check's budget of
    synthetic calls (its cohort size, by all variants)."""
    import torch

    from genoae.ancestry import encoder

    if check_calls:
        encoder.CHECK_CALLS = check_calls

    from genoae.ancestry import Admixture
    from genoae.ancestry.distributed import gather_fit
    from genoae.ancestry.start import svd_als
    from genoae.likelihood import PackedCalls

    part, shard = _part(path, rank, size)
    calls = PackedCalls.from_genotypes(part.genotypes, "cpu", shard=shard, backend=backend)
    freqs = part.genotypes.allele_freqs()
    Q0, P0 = svd_als(calls, freqs, K, np.random.default_rng(seed))
    estimator = Admixture(K, seed=seed, progress=False, threads=1)
    estimator.fit(part.genotypes, populations=populations, calls=calls)
    out = {"Q0": to_numpy(Q0), "P0": shard.gather_rows(to_numpy(P0))}
    if cv:
        out["cv_error"] = np.array(estimator.cross_validate(part.genotypes, cv, calls=calls, populations=populations))
    if bootstrap:
        out["Q_se"], _ = estimator.bootstrap(part.genotypes, bootstrap, populations=populations)
    gather_fit(estimator)
    state = estimator.model_.state_dict()
    out.update({"Q": estimator.Q_, "P": estimator.P_, "trace": estimator.loglik_trace_,
                "loglik": np.array(estimator.loglik_), "encoder_weight": to_numpy(state["encoder.weight"]),
                "encoder_bias": to_numpy(state["encoder.bias"]), "p_logits": to_numpy(state["p_logits"]),
                "heldout_rmse": np.array(estimator.report_.encoder.heldout_rmse),
                "rss_packed": np.array(part.genotypes.packed.shape[0] * part.genotypes.packed.shape[1])})
    del torch
    return out


TASKS = {"steps": steps_task, "fit": fit_task}


def qn_task(rank, size, path, Q, P, iterations):
    """quasi_newton for a few iterations from the given (whole) Q and P."""
    import torch

    from genoae.likelihood import PackedCalls, quasi_newton

    part, shard = _part(path, rank, size)
    calls = PackedCalls.from_genotypes(part.genotypes, "cpu", shard=shard)
    Q1, P1, trace = quasi_newton(calls, torch.from_numpy(Q), torch.from_numpy(P[part.start:part.stop]),
                                 tol=0.0, max_iter=iterations)
    return {"Q": to_numpy(Q1), "P": shard.gather_rows(to_numpy(P1)), "trace": np.array(trace)}


TASKS["qn"] = qn_task


def admix_task(rank, size, input_path, prefix, ks, cv=0, supervised=None, die_on_rank=None, die_after=3,
               reference_fraction=None):
    """``run_admix`` as torchrun would start it on this rank; ``die_on_rank`` exits that rank abruptly (as a
    killed process) at its ``die_after``-th block-relaxation step.  Returns the error a rank stopped with."""
    from genoae.commands.admix import run_admix
    from genoae.errors import RankError
    from genoae.likelihood import PackedCalls

    if rank == die_on_rank:
        original, calls_made = PackedCalls.newton_step, [0]

        def dying(self, *args, **kwargs):
            calls_made[0] += 1
            if calls_made[0] >= die_after:
                os._exit(9)
            return original(self, *args, **kwargs)

        PackedCalls.newton_step = dying
    try:
        run = run_admix(input_path, ks, prefix=prefix, cv=cv, supervised=supervised, progress=False, echo=print,
                        threads=1, reference_fraction=reference_fraction)
    except RankError as error:
        return {"error": np.array(str(error)), "quiet": np.array(error.quiet)}
    return {"files": np.array([str(path) for path in run.files])}


TASKS["admix"] = admix_task


def qr_task(rank, size, matrix):
    """Shard.tall_qr of a matrix whose rows are split over the ranks as variants are."""
    import torch

    from genoae.shard import Shard, split

    start, stop = split(matrix.shape[0], size)[rank]
    shard = Shard(start, stop, matrix.shape[0], rank, size)
    basis, upper = shard.tall_qr(matrix[start:stop])
    return {"basis": shard.gather_rows(to_numpy(basis)), "upper": to_numpy(upper)}


TASKS["qr"] = qr_task
