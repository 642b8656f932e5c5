"""Shared pytest fixtures: paths to the real shared data (skipped when absent) and the bundled sample."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DIR = REPO / "src" / "liverseg" / "sample"


def shared_path(*parts: str) -> Path:
    """Path under ``../shared/data``; the test is skipped when it does not exist."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture
def shared_data() -> Path:
    """Root of the real shared CT data (skips the test when absent)."""
    return shared_path()
