"""Fixtures for the end-to-end segmentation tests (the shipped model on small inputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liverseg.io import Volume, read_volume

REPO = Path(__file__).resolve().parents[2]
SAMPLE_IMAGE = REPO / "src" / "liverseg" / "sample" / "chaos_ct3_image.nii.gz"
SAMPLE_LABEL = REPO / "src" / "liverseg" / "sample" / "chaos_ct3_label.nii.gz"


@pytest.fixture(scope="session")
def sample() -> tuple[Volume, Volume]:
    """The bundled CHAOS-3 derivative (image HU, liver label)."""
    return read_volume(SAMPLE_IMAGE), read_volume(SAMPLE_LABEL, kind="label")


@pytest.fixture(scope="session")
def small_ct(sample: tuple[Volume, Volume]) -> tuple[Volume, Volume]:
    """A 24-slice slab of the sample through the liver (fast end-to-end runs)."""
    image, label = sample
    z = np.flatnonzero(label.array.any(axis=(1, 2)))
    mid = int(z[len(z) // 2])
    sl = slice(mid - 12, mid + 12)
    origin = image.index_to_physical(np.array([sl.start, 0, 0]))
    crop = lambda v: Volume(v.array[sl], v.spacing, origin, v.direction)  # noqa: E731
    return crop(image), crop(label)
