"""Fixtures of the cohort tests: small real CT cases (slabs of the bundled sample) and one local Ray.

The Ray instance is started once per test session (``ray_address``; the Ray tests are in one
file, which ``make test`` gives to one pytest worker): 2 CPUs, no dashboard, a small object store.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from liverseg.io import Volume, read_volume, write_volume

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "src" / "liverseg" / "sample"
SAMPLE_IMAGE = SAMPLE_DIR / "chaos_ct3_image.nii.gz"
SAMPLE_LABEL = SAMPLE_DIR / "chaos_ct3_label.nii.gz"


@pytest.fixture(scope="session")
def _slabs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    image = read_volume(SAMPLE_IMAGE)
    label = read_volume(SAMPLE_LABEL, kind="label")
    z = np.flatnonzero(label.array.any(axis=(1, 2)))
    mid = int(z[len(z) // 2])
    sl = slice(mid - 12, mid + 12)
    origin = image.index_to_physical(np.array([sl.start, 0, 0]))
    folder = tmp_path_factory.mktemp("slab")
    write_volume(
        Volume(image.array[sl].astype(np.int16), image.spacing, origin, image.direction),
        folder / "slab.nii.gz",
    )
    write_volume(
        Volume(label.array[sl], image.spacing, origin, image.direction), folder / "slab_label.nii.gz"
    )
    return folder / "slab.nii.gz", folder / "slab_label.nii.gz"


@pytest.fixture(scope="session")
def slab_file(_slabs: tuple[Path, Path]) -> Path:
    """A 24-slice slab of the sample through the liver, as NIfTI (about 1 s with the shipped model)."""
    return _slabs[0]


@pytest.fixture(scope="session")
def slab_label(_slabs: tuple[Path, Path]) -> Path:
    """The sample's reference liver label on the slab's grid."""
    return _slabs[1]


@pytest.fixture
def make_cases(tmp_path: Path, slab_file: Path):
    """``make_cases("a", "bad", "c")``: a folder of cases; names starting with ``bad`` are garbage."""

    def make(*names: str, folder: str = "cases") -> Path:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        for name in names:
            if name.startswith("bad"):
                (root / f"{name}.nii.gz").write_bytes(b"not a CT at all")
            else:
                shutil.copy(slab_file, root / f"{name}.nii.gz")
        return root

    return make


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A local Ray for the whole session (2 CPUs); its GCS address, for drivers in subprocesses."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
