"""Device choice, seeding and thread settings, so that every command treats them the same way."""
from __future__ import annotations

import random

import numpy as np
import torch

from genoae.errors import UsageError


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` refuses politely when there is no GPU."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available (use --device cpu)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int | None) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a NumPy generator for the caller's own draws."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


_kernel_threads: int | None = None  # the last set_threads; None: kernel_threads() takes NUMBA_NUM_THREADS


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op CPU threads and the numba kernels' threads (None keeps the defaults)."""
    global _kernel_threads
    if threads:
        torch.set_num_threads(int(threads))
        _kernel_threads = max(1, int(threads))


def kernel_threads() -> int:
    """Threads the CPU kernels (:mod:`genoae.kernels`) run on, and so how many ranges their passes are split into
    (the float rounding follows this number): the last :func:`set_threads`, else numba's NUMBA_NUM_THREADS (the
    environment variable, or every CPU).  Not capped: ``-j 8`` on 2 cores runs 8 threads."""
    if _kernel_threads:
        return _kernel_threads
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))
