"""Synthetic test volumes for the synthetic-lesion tests: an ellipsoid liver in a noisy background."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import ndimage

LIVER_HU = 100.0
BACKGROUND_HU = -80.0


def make_case(
    shape: tuple[int, int, int] = (24, 96, 96),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
    semi_axes_mm: tuple[float, float, float] = (25.0, 32.0, 34.0),
    *,
    noise_hu: float = 12.0,
    corr_vox: float = 0.0,
    seed: int = 0,
    vessel_radius_mm: float = 0.0,
    tumor_radius_mm: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(image float32 HU, label uint8)``: liver 100 HU in -80 HU background plus noise.

    Optional: a bright vessel (200 HU) along x through the liver centre, and a hypodense real
    tumor (label 2, 40 HU) of the given radius centred 12 mm below the liver centre in y.
    """
    rng = np.random.default_rng(seed)
    idx = np.indices(shape, dtype=np.float32)
    centre = [(n - 1) / 2 for n in shape]
    mm = [(idx[a] - centre[a]) * spacing[a] for a in range(3)]
    liver = sum((mm[a] / semi_axes_mm[a]) ** 2 for a in range(3)) <= 1.0
    image = np.where(liver, LIVER_HU, BACKGROUND_HU).astype(np.float32)
    label = liver.astype(np.uint8)
    if vessel_radius_mm > 0:
        tube = liver & (mm[0] ** 2 + mm[1] ** 2 <= vessel_radius_mm**2)
        image[tube] = 200.0
    if tumor_radius_mm > 0:
        tumor = (mm[0] ** 2 + (mm[1] - 12.0) ** 2 + mm[2] ** 2) <= tumor_radius_mm**2
        image[tumor] = 40.0
        label[tumor] = 2
    noise = rng.standard_normal(shape).astype(np.float32)
    if corr_vox > 0:
        noise = ndimage.gaussian_filter(noise, (0, corr_vox, corr_vox))
        noise /= noise.std()
    return image + noise_hu * noise, label


@pytest.fixture
def case_factory() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The :func:`make_case` builder."""
    return make_case
