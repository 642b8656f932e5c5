"""Fixtures of the PACS tests: a small real CT slab as DICOM, pushed into the test Orthanc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from _helpers_dicom import sample_slab
from _helpers_orthanc import OrthancServer, pacs_client, push_study
from liverseg.io import Volume
from liverseg.pacs import PacsClient


@pytest.fixture(scope="session")
def slab() -> Volume:
    """24 slices of the bundled sample through the liver (a fast real-model run)."""
    return sample_slab()


def client_for(server: OrthancServer) -> PacsClient:
    return pacs_client(server)


@pytest.fixture
def make_study(orthanc: OrthancServer, slab: Volume, tmp_path: Path) -> Callable[..., dict]:
    """Push a study (see :func:`_helpers_orthanc.push_study`) with a unique patient id."""

    def make(**kw: bool) -> dict:
        return push_study(orthanc, slab, tmp_path, **kw)

    return make
