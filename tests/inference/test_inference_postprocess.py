"""Post-processing rules on constructed label maps."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.inference.postprocess import (
    fill_liver_holes,
    filter_lesions_by_confidence,
    keep_largest_liver,
    postprocess_labels,
    remove_small_lesions,
)


def _blob(shape, center, radius):
    zz, yy, xx = np.indices(shape)
    return (zz - center[0]) ** 2 + (yy - center[1]) ** 2 + (xx - center[2]) ** 2 <= radius**2


def test_keep_largest_liver_drops_islands_and_outside_tumor() -> None:
    lab = np.zeros((20, 40, 40), np.uint8)
    lab[_blob(lab.shape, (10, 15, 15), 7)] = 1
    lab[_blob(lab.shape, (10, 15, 15), 2)] = 2  # tumor inside the liver: kept
    lab[_blob(lab.shape, (10, 34, 34), 2)] = 2  # tumor floating outside the liver: removed
    lab[_blob(lab.shape, (3, 34, 5), 1)] = 1  # small liver island: removed
    out = keep_largest_liver(lab)
    assert out[10, 15, 15] == 2
    assert out[10, 34, 34] == 0
    assert out[3, 34, 5] == 0
    assert (out[_blob(lab.shape, (10, 15, 15), 7)] > 0).all()


def test_fill_liver_holes_fills_enclosed_background_only() -> None:
    lab = np.zeros((10, 30, 30), np.uint8)
    lab[2:8, 5:25, 5:25] = 1
    lab[4:6, 12:16, 12:16] = 0  # enclosed hole (vessel)
    lab[3, 14, 14] = 2
    out = fill_liver_holes(lab)
    assert (out[4:6, 12:16, 12:16] == 1).all()
    assert out[3, 14, 14] == 2
    assert out[0, 0, 0] == 0 and out[9, 29, 29] == 0


def test_remove_small_lesions_uses_physical_volume() -> None:
    lab = np.ones((10, 30, 30), np.uint8)
    lab[5, 5, 5] = 2  # 1 voxel = 2 mm^3 at spacing (2,1,1)
    lab[2:5, 10:13, 10:13] = 2  # 27 voxels = 54 mm^3
    out = remove_small_lesions(lab, (2.0, 1.0, 1.0), min_mm3=10.0)
    assert out[5, 5, 5] == 1
    assert (out[2:5, 10:13, 10:13] == 2).all()
    # threshold above the bigger one removes both
    assert (remove_small_lesions(lab, (2.0, 1.0, 1.0), 60.0) == 2).sum() == 0
    # 0 disables
    assert np.array_equal(remove_small_lesions(lab, (2.0, 1.0, 1.0), 0.0), lab)


def test_confidence_filter_removes_weak_candidates() -> None:
    lab = np.ones((6, 20, 20), np.uint8)
    lab[1:3, 2:5, 2:5] = 2
    lab[3:5, 12:15, 12:15] = 2
    prob = np.zeros(lab.shape, np.float32)
    prob[1:3, 2:5, 2:5] = 0.9
    prob[3:5, 12:15, 12:15] = 0.55
    out = filter_lesions_by_confidence(lab, prob, 0.6)
    assert (out[1:3, 2:5, 2:5] == 2).all()
    assert (out[3:5, 12:15, 12:15] == 1).all()


def test_postprocess_empty_stays_empty() -> None:
    lab = np.zeros((4, 8, 8), np.uint8)
    out = postprocess_labels(lab, (1.0, 1.0, 1.0))
    assert out.dtype == np.uint8 and not out.any()


@pytest.mark.parametrize(
    "median_hu, flagged",
    [(0.0, True), (10.0, True), (20.0, False), (60.0, False), (140.0, False), (400.0, True)],
)
def test_liver_attenuation_warning(median_hu: float, flagged: bool) -> None:
    from liverseg.inference.api import LIVER_HU_PLAUSIBLE, liver_attenuation_warning

    rng = np.random.default_rng(0)
    hu = rng.normal(median_hu, 15, (8, 16, 16)).astype(np.float32)
    hu[:, :4] = -1000.0  # air outside the mask must not count
    mask = np.zeros(hu.shape, dtype=bool)
    mask[:, 4:] = True
    msg = liver_attenuation_warning(hu, mask)
    assert (msg is not None) == flagged
    if flagged:
        assert "median attenuation of" in msg
        assert f"{LIVER_HU_PLAUSIBLE[0]:.0f} to {LIVER_HU_PLAUSIBLE[1]:.0f} HU" in msg
