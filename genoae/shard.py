"""This process's part of a SNP-sharded run, and the sums over SNPs that join the parts.

A sharded ``genoae admix`` (one process per rank under ``torchrun``, :mod:`genoae.ancestry.distributed`) gives each
rank a contiguous range of variants: its rows of the packed calls and of P.  Every quantity that sums over variants
(the Q steps' statistics, ℓ, the SVD start's products, CV deviance, the encoder's products) is summed over the
rank's rows and then over the ranks by :meth:`Shard.sum`, an all-reduce, so that every rank holds the same Q at every
step.  The one-process run is the :data:`LOCAL` shard-free case, where every method is the identity.

This module sits below :mod:`genoae.likelihood` and :mod:`genoae.pca` (which take a shard) and imports neither.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genoae.errors import RankError


# What this process has sent through collectives (the log reports it per K): float64 numbers × 8, and calls
TRAFFIC = {"bytes": 0, "collectives": 0}


def split(n_variants: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous ranges ``[start, stop)`` of ``n_variants`` variants, one per part, sizes differing by at most 1."""
    edges = [n_variants * part // parts for part in range(parts + 1)]
    return [(edges[part], edges[part + 1]) for part in range(parts)]


@dataclass(frozen=True)
class Shard:
    """Variants ``[start, stop)`` of ``n_variants``, held by ``rank`` of ``size`` processes.

    ``size == 1`` (no process group): the whole data, and :meth:`sum` and :meth:`gather_rows` return their input.
    """

    start: int = 0
    stop: int | None = None
    n_variants: int | None = None
    rank: int = 0
    size: int = 1
    comm_device: str = "cpu"   # where the all-reduce buffers live: cpu for Gloo, cuda for NCCL

    @property
    def sharded(self) -> bool:
        return self.size > 1

    def total(self, n_local: int) -> int:
        """All variants of the run, given this rank's count (one process: that count)."""
        return n_local if self.n_variants is None else self.n_variants

    def local_rows(self, array):
        """This rank's rows of an array over all variants (one process: the array)."""
        if not self.sharded:
            return array
        return array[self.start:self.stop]

    def sum(self, *values):
        """Each value summed over the ranks (NumPy arrays, torch tensors or Python numbers; the same shapes on
        every rank), in one all-reduce, in float64; returned with the input's type, dtype and device.  One
        process: the values themselves."""
        if not self.sharded:
            return values[0] if len(values) == 1 else values
        import torch
        import torch.distributed as dist

        flat = [torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).detach()
                .to("cpu", torch.float64).reshape(-1) for v in values]
        buffer = torch.cat(flat).to(self.comm_device)
        _collective(dist.all_reduce, buffer)
        buffer = buffer.cpu()
        out, offset = [], 0
        for value, part in zip(values, flat):
            chunk = buffer[offset:offset + part.numel()]
            offset += part.numel()
            out.append(_like(chunk, value))
        return out[0] if len(out) == 1 else tuple(out)

    def gather_rows(self, array):
        """The rows of every rank stacked in rank order (every rank gets them): a per-variant array made whole.
        One process: the array."""
        if not self.sharded:
            return array
        import torch
        import torch.distributed as dist

        tensor = torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array).detach()
        dtype = tensor.dtype
        tensor = tensor.to("cpu", torch.float64)
        rows = torch.tensor([tensor.shape[0]], dtype=torch.float64)
        counts = [torch.zeros(1, dtype=torch.float64, device=self.comm_device) for _ in range(self.size)]
        _collective(dist.all_gather, counts, rows.to(self.comm_device))
        counts = [int(c.item()) for c in counts]
        width = max(counts)
        padded = torch.zeros((width,) + tuple(tensor.shape[1:]), dtype=torch.float64)
        padded[:tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded, device=self.comm_device) for _ in range(self.size)]
        _collective(dist.all_gather, parts, padded.to(self.comm_device))
        whole = torch.cat([part.cpu()[:count] for part, count in zip(parts, counts)]).to(dtype)
        return whole.numpy() if not isinstance(array, torch.Tensor) else whole.to(array.device)

    def max(self, value: float) -> float:
        """The largest of the ranks' values (one process: the value): for a decision every rank must take alike
        from numbers each computed itself (rounding can differ between machines of a multi-node run)."""
        if not self.sharded:
            return value
        import torch
        import torch.distributed as dist

        buffer = torch.tensor([float(value)], dtype=torch.float64, device=self.comm_device)
        _collective(dist.all_reduce, buffer, op=dist.ReduceOp.MAX)
        return float(buffer[0])

    def tall_qr(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """QR decomposition of a tall matrix whose rows are spread over the ranks: this rank's rows in; its rows
        of the orthonormal factor and the whole (width × width) triangular factor out (NumPy, float64).  One
        process: the reduced QR.  Sharded: the tall-skinny QR (each rank's R gathered and decomposed again: as
        stable as one QR of the whole), R's diagonal made ≥ 0 so that the factors do not depend on the split."""
        if not self.sharded:
            return np.linalg.qr(matrix)
        rows, width = matrix.shape
        if self.max(float(rows < width)) > 0:
            # a rank with fewer rows than columns has no square R to contribute: the QR of the whole, then its rows
            basis, upper = np.linalg.qr(self.gather_rows(matrix))
            signs = _signs(upper)
            return self.local_rows(basis * signs), upper * signs[:, None]
        local_basis, local_upper = np.linalg.qr(matrix)
        outer_basis, upper = np.linalg.qr(self.gather_rows(local_upper))
        signs = _signs(upper)
        basis = local_basis @ outer_basis[self.rank * width:(self.rank + 1) * width]
        return basis * signs, upper * signs[:, None]


LOCAL = Shard()


def _collective(operation, *args, **kwargs):
    """Run one torch.distributed collective; a peer that died or timed out becomes a :class:`RankError` (one
    line: the backend's first line, which says what it saw)."""
    sent = args[-1] if operation.__name__ == "all_gather" else args[0]
    TRAFFIC["bytes"] += sent.numel() * sent.element_size()
    TRAFFIC["collectives"] += 1
    try:
        return operation(*args, **kwargs)
    except RuntimeError as error:  # Gloo and NCCL raise RuntimeError (DistBackendError) with a long text
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        first = first.split("] ", 1)[-1]  # drop the "[file.cc:123]" location
        raise RankError(f"lost contact with another rank: {first[:200]}") from None


def _signs(upper: np.ndarray) -> np.ndarray:
    return np.where(np.diagonal(upper) < 0, -1.0, 1.0)


def _like(chunk, value):
    """``chunk`` (a float64 flat tensor) in the type, shape, dtype and device of ``value``."""
    if not isinstance(value, (np.ndarray, int, float, np.integer, np.floating)):  # a torch tensor
        out = chunk.reshape(value.shape)
        if not value.dtype.is_floating_point:
            out = out.round()
        return out.to(value.device, value.dtype)
    if isinstance(value, np.ndarray):
        out = chunk.numpy().reshape(value.shape)
        if not np.issubdtype(value.dtype, np.floating):
            out = np.rint(out)
        return out.astype(value.dtype)
    if isinstance(value, (int, np.integer)):
        return int(round(float(chunk[0])))
    return float(chunk[0])
