"""SNP-sharded fits across processes: torch.distributed (Gloo on CPUs, NCCL on GPUs), launched by ``torchrun``.

Each rank holds a contiguous range of variants (:class:`genoae.shard.Shard`): its rows of the packed calls, of P
and of the encoder's layer.  Every sum over variants is an all-reduce, so every rank holds the same Q at every step
and the fit equals the one-process fit up to float rounding.  :func:`gather_fit` makes P and the model whole for
the outputs, which rank 0 alone writes.

    torchrun --standalone --nproc-per-node 2 --no-python genoae admix data.bed -k 3 -o out
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import numpy as np

from genoae.ancestry.encoder import NeuralAdmixture
from genoae.device import is_cuda
from genoae.errors import RankError, UsageError
from genoae.shard import Shard

# How long a rank waits for the others, at the rendezvous and in any one collective (a rank that died is noticed
# at once; one that hangs, after this)
DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Launch:
    """What torchrun's environment says of this process."""

    rank: int
    size: int
    local_rank: int
    local_size: int = 1   # processes on this machine

    def threads(self) -> int:
        """CPU threads per process when none are asked for: this machine's cores shared by its processes
        (torchrun sets OMP_NUM_THREADS=1, and the kernels would run one thread per core in every process)."""
        return max(1, (os.cpu_count() or 1) // max(self.local_size, 1))


def launch_environment(environ=None) -> Launch | None:
    """This process's rank under ``torchrun`` (its RANK, WORLD_SIZE and LOCAL_RANK variables), or None when it
    runs alone (no such variables, or a world of one)."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    try:
        size, rank = int(environ["WORLD_SIZE"]), int(environ.get("RANK", "0"))
        local_rank = int(environ.get("LOCAL_RANK", "0"))
        local_size = int(environ.get("LOCAL_WORLD_SIZE", str(size)))
    except ValueError:
        raise UsageError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (launch with torchrun)") from None
    if size <= 1:
        return None
    if not 0 <= rank < size:
        raise UsageError(f"RANK {rank} is outside a world of {size} (launch with torchrun)")
    return Launch(rank, size, local_rank, local_size)


def start(launch: Launch, device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Join the process group: NCCL when ``device`` is CUDA (this rank's GPU is LOCAL_RANK), else Gloo.  Returns
    the backend's name.  A rendezvous that does not complete within ``timeout_s`` raises RuntimeError."""
    import torch
    import torch.distributed as dist

    backend = "nccl" if is_cuda(device) else "gloo"
    if is_cuda(device):
        torch.cuda.set_device(launch.local_rank)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, rank=launch.rank, world_size=launch.size,
                                    timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as error:  # DistStoreError (timeout), a bad MASTER_ADDR, ...
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise RankError(f"could not join the other {launch.size - 1} rank(s) ({backend}): {first[:200]}") \
                from None
    return backend


def stop() -> None:
    """Leave the process group (after the last collective)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(launch: Launch | None, device: str):
    """The process group for the block (nothing when ``launch`` is None).  Inside it SIGTERM, which torchrun sends
    to the other ranks when one fails, raises a quiet :class:`~genoae.errors.RankError`, so that this rank's
    ``with`` blocks still remove what they staged."""
    if launch is None:
        yield
        return
    import signal

    def stopped(signum, frame):
        raise RankError("stopped by the launcher (another rank failed)", quiet=True)

    start(launch, device)
    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop()


def make_shard(launch: Launch, device: str, start_row: int = 0, stop_row: int = 0,
               n_variants: int = 0) -> Shard:
    """This rank's :class:`~genoae.shard.Shard` of variants ``[start_row, stop_row)`` out of ``n_variants`` (before
    the input is read: a shard without variants, enough for :func:`agree`)."""
    return Shard(start=start_row, stop=stop_row, n_variants=n_variants, rank=launch.rank, size=launch.size,
                 comm_device=f"cuda:{launch.local_rank}" if is_cuda(device) else "cpu")


def barrier(shard: Shard) -> None:
    """Wait until every rank is here (a rank that failed before it makes this raise on the others)."""
    if shard.sharded:
        shard.sum(0.0)


def agree(shard: Shard, error: BaseException | None) -> None:
    """Every rank learns whether any rank failed: the one that failed re-raises its own error, the others raise
    a quiet :class:`~genoae.errors.RankError` (the failing rank has said why), so the run stops with one line and
    no rank waits for a collective that will never come."""
    if not shard.sharded:
        if error is not None:
            raise error
        return
    flags = np.zeros(shard.size)
    if error is not None:
        flags[shard.rank] = 1.0
    flags = shard.sum(flags)
    if error is not None:
        raise error
    if flags.any():
        raise RankError(f"rank {int(np.flatnonzero(flags)[0])} stopped", quiet=True)


def gather_model(model: NeuralAdmixture, shard: Shard) -> NeuralAdmixture:
    """The whole model from each rank's part (its variants' columns of the encoder layer, rows of the decoder and
    input frequencies); one process: the model itself."""
    if not shard.sharded:
        return model
    whole = NeuralAdmixture(shard.n_variants, model.K)
    whole.load_state_dict({"encoder.weight": shard.gather_rows(model.weight.T).T, "encoder.bias": model.bias,
                           "p_logits": shard.gather_rows(model.p_logits),
                           "input_freq": shard.gather_rows(model.input_freq)})
    return whole


def gather_fit(estimator) -> None:
    """Make a sharded :class:`~genoae.ancestry.Admixture` whole, in place, on every rank: ``P_`` over all
    variants and ``model_`` with every variant (Q is already the same on every rank)."""
    shard = estimator.shard_
    if not shard.sharded:
        return
    estimator.P_ = shard.gather_rows(estimator.P_)
    estimator.model_ = gather_model(estimator.model_, shard)
