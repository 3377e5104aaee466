"""Shared fixtures.  Tests that read ../shared/data skip cleanly when it is absent."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(*parts) -> Path:
    """Path under ../shared/data, skipping the calling test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks run fastest (and most reproducibly) on one thread; the CI machine has two cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hapmap3_bed():
    return shared_path("hapmap3_admixture", "hapmap3.bed")


@pytest.fixture
def admixture_output():
    return shared_path("hapmap3_admixture", "admixture_1.3.0_output")


def assert_same_genotypes(back, expected):
    """Calls, phase, haplotypes, variant table and sample table all equal (for round-trip tests)."""
    import numpy as np

    np.testing.assert_array_equal(back.counts(), expected.counts())
    assert back.phased == expected.phased
    if expected.phased:
        np.testing.assert_array_equal(back.haplotypes(), expected.haplotypes())
    for field in ("chrom", "pos", "id", "a1", "a2", "cm"):
        np.testing.assert_array_equal(getattr(back.variants, field), getattr(expected.variants, field))
    for field in ("iid", "fid", "sex"):
        np.testing.assert_array_equal(getattr(back.samples, field), getattr(expected.samples, field))
