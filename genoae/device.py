"""Device choice, seeding and thread settings, so that every command treats them the same way; and the two
conversions between the CPU's NumPy arrays and a device's torch tensors.

The CPU paths of ``admix`` and ``project`` compute with NumPy and the numba kernels and never import torch (its
import alone costs ~190 MB of memory and 1.5-2 s); torch is imported where a GPU or the networks of ``vae`` are
used.  So the device is a string (``cpu``, ``cuda``, ``cuda:1``), which torch accepts wherever it takes one.
"""
from __future__ import annotations

import glob
import os
import random
import sys

import numpy as np

from genoae.errors import UsageError


def cuda_available() -> bool:
    """Whether torch can use a CUDA device, for ``auto``.  Without an NVIDIA driver on the machine (no
    ``/proc/driver/nvidia``, ``/dev/nvidia*`` or WSL's ``/dev/dxg``) this is False without importing torch;
    otherwise torch is asked.  An explicit ``cuda`` always asks torch."""
    if "torch" not in sys.modules and not (os.path.exists("/proc/driver/nvidia/version") or glob.glob("/dev/nvidia*")
                                     or os.path.exists("/dev/dxg")):
        return False
    return _torch_cuda_available()


def _torch_cuda_available() -> bool:
    import torch

    _apply_to_torch(torch)
    return bool(torch.cuda.is_available())


def _apply_to_torch(torch) -> None:
    """The thread count and the seed set before torch was imported (the CPU paths run without it, so a GPU run
    imports it here, after :func:`set_threads` and :func:`seed_everything`); each pending seed is applied once."""
    global _pending_torch_seed
    if _kernel_threads:
        torch.set_num_threads(_kernel_threads)
    if _pending_torch_seed is not None:
        torch.manual_seed(_pending_torch_seed)
        _pending_torch_seed = None


def choose_device(name: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` refuses politely when there is no GPU.  Returns
    the device's name (``cpu``, ``cuda``, ``cuda:N``)."""
    name = str(name or "auto").lower()
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name.startswith("cuda") and not _torch_cuda_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available (use --device cpu)")
    return name


def is_cuda(device) -> bool:
    """Whether a device (a name or a torch.device) is a GPU."""
    return str(device).startswith("cuda")


def to_numpy(array) -> np.ndarray:
    """A NumPy array of a NumPy array (itself) or of a torch tensor on any device (copied to the CPU)."""
    if isinstance(array, np.ndarray):
        return array
    if hasattr(array, "detach"):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def dtype_name(dtype) -> str:
    """``float32``, ``float64``, ... of a NumPy dtype, a type NumPy reads as one (``np.float32``, ``float``), a torch
    dtype or a name."""
    if isinstance(dtype, (np.dtype, type)):
        return np.dtype(dtype).name
    return str(dtype).removeprefix("torch.")


def seed_everything(seed: int | None) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA): torch now when it is loaded, else when :func:`choose_device`
    first imports it for a GPU (a run that never imports torch draws nothing from it); return a NumPy generator
    for the caller's own draws."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    global _pending_torch_seed
    random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
        _pending_torch_seed = None  # an older pending seed must not reseed torch later
    else:  # for a GPU run that imports torch later (:func:`choose_device`)
        _pending_torch_seed = seed
    return np.random.default_rng(seed)


_kernel_threads: int | None = None  # the last set_threads; None: kernel_threads() takes NUMBA_NUM_THREADS
_pending_torch_seed: int | None = None  # a seed set while torch was not loaded, for when it is


def set_threads(threads: int | None) -> None:
    """Limit the numba kernels' threads, and torch's intra-op CPU threads: now when torch is loaded, else when
    :func:`choose_device` first imports it (None keeps the defaults)."""
    global _kernel_threads
    if threads:
        torch = sys.modules.get("torch")
        if torch is not None:
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
