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


@pytest.fixture
def hapmap3_bed():
    return shared_path("hapmap3_admixture", "hapmap3.bed")


@pytest.fixture
def admixture_output():
    return shared_path("hapmap3_admixture", "admixture_1.3.0_output")
