"""The one -k parser every command uses."""
import pytest

from genoae.commands.common import parse_ks
from genoae.errors import UsageError


@pytest.mark.parametrize("values, expected", [
    ("3", [3]), (3, [3]), ("2-5", [2, 3, 4, 5]), ("2..5", [2, 3, 4, 5]), ("2,4,6", [2, 4, 6]),
    (["3", "2,7"], [2, 3, 7]), (["2..4", "3-6"], [2, 3, 4, 5, 6]), ("2, 4", [2, 4]), ("1,2-3,5", [1, 2, 3, 5]),
    ([], []), (None, []),
])
def test_parse_ks_accepts_every_form(values, expected):
    assert parse_ks(values) == expected


@pytest.mark.parametrize("bad", ["two", "5-2", "5..2", "2-3-4", "0", "0-3", "2..", "-3", "2.5"])
def test_parse_ks_refuses(bad):
    with pytest.raises(UsageError):
        parse_ks(bad)


def test_dtype_name_reads_every_spelling_of_a_dtype():
    """NumPy dtypes and scalar types, Python types, torch dtypes and names all give NumPy's name (np.float32 gave
    "<class 'numpy.float32'>", which torch and NumPy then refused)."""
    import numpy as np
    import torch

    from genoae.device import dtype_name

    spellings = [np.float32, np.dtype("float32"), torch.float32, "float32", float, np.float64, torch.float64]
    assert [dtype_name(spelling) for spelling in spellings] == ["float32"] * 4 + ["float64"] * 3


def test_threads_and_seed_set_before_torch_is_imported_reach_it():
    """The CPU paths never import torch; a GPU run imports it in choose_device, after set_threads and
    seed_everything: both must still reach torch then (a fresh process, so that torch is not yet loaded)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from genoae import device\n"
        "device.set_threads(3)\n"
        "device.seed_everything(1234)\n"
        "assert 'torch' not in sys.modules\n"
        "device._torch_cuda_available()\n"
        "import torch\n"
        "print(torch.get_num_threads(), torch.initial_seed())\n"
        "device._torch_cuda_available()\n"
        "torch.rand(1)\n"
        "state = torch.random.get_rng_state()\n"
        "device._torch_cuda_available()\n"
        "print(bool((torch.random.get_rng_state() == state).all()))\n"  # the seed is applied once, not per call
        "device.seed_everything(99)\n"  # torch loaded now: seeded at once, and no older seed is left pending
        "device._torch_cuda_available()\n"
        "print(torch.initial_seed())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["3", "1234", "True", "99"]
    # a seed left pending while torch was not loaded must not override a newer one once torch is loaded
    script = ("from genoae import device\n"
              "device.seed_everything(1)\n"
              "import torch\n"
              "device.seed_everything(2)\n"
              "device._torch_cuda_available()\n"
              "print(torch.initial_seed())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2"]
