"""Shared test fixtures.

`../shared/data` (beside the repository) holds real speech for development and CI. Tests that need
it skip with a clear message when it is absent; the core tests use audio generated here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KWSTOOL_SHARED", REPO.parent / "shared")) / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test when it is not there."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (../shared/data is only beside the repo in dev and CI)")
    return p


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
