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


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    """A real Orthanc PACS with DICOMweb (see tests/_helpers_orthanc.py): the one ``.ci/run``
    started, else one started here from the Debian packages; skipped when absent (fails in CI)."""
    import os

    from _helpers_orthanc import orthanc_available, server_from_env, start_orthanc

    server = server_from_env()
    if server is not None:
        yield server
        return
    if not orthanc_available():
        if os.environ.get("CI") == "true":
            pytest.fail("Orthanc is not installed in CI (.ci/run installs orthanc and orthanc-dicomweb)")
        pytest.skip("Orthanc with the DICOMweb plugin is not installed (Debian orthanc, orthanc-dicomweb)")
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()
