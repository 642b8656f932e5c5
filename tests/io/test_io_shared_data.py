"""Real CT from ../shared/data (skipped when absent) and the bundled sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liverseg.io import (
    SAMPLE_IMAGE,
    SAMPLE_LABEL,
    load_sample,
    read_chaos_case,
    read_dicom_series,
    read_volume,
)


def _need(root: Path, *parts: str) -> Path:
    """``root/parts`` (root from the ``shared_data`` fixture of tests/conftest.py); skip if absent."""
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.mark.shared_data
def test_ircadb_patient1_zip(shared_data):
    vol = read_volume(_need(shared_data, "ircadb", "3Dircadb1.1", "PATIENT_DICOM.zip"))
    assert vol.shape == (129, 512, 512)
    assert vol.spacing == pytest.approx((1.6, 0.57, 0.57), abs=1e-4)
    assert vol.array.dtype == np.float32
    files = vol.metadata["dicom"]["files"]
    # position order, not name order: image_10 is the 11th slice
    assert files[:3] == ["PATIENT_DICOM/image_0", "PATIENT_DICOM/image_1", "PATIENT_DICOM/image_2"]
    assert files[10] == "PATIENT_DICOM/image_10"
    assert -1100 < float(vol.array.min()) < -900 and float(vol.array.max()) > 300  # air .. bone, in HU


@pytest.mark.shared_data
def test_ircadb_liver_mask_from_a_zip_subfolder(shared_data):
    zpath = _need(shared_data, "ircadb", "3Dircadb1.1", "MASKS_DICOM.zip")
    mask = read_dicom_series(zpath, subfolder="MASKS_DICOM/liver")
    assert mask.shape == (129, 512, 512)
    assert set(np.unique(mask.array).tolist()) == {0.0, 255.0}


@pytest.mark.shared_data
def test_chaos_case3(shared_data):
    image, label = read_chaos_case(_need(shared_data, "chaos-ct-3"))
    assert image.shape == label.shape == (78, 512, 512)
    assert image.spacing[0] == pytest.approx(2.0, abs=0.05)  # positions, not the 3.2 mm thickness
    assert image.metadata["dicom"]["slice_thickness_mm"] == pytest.approx(3.2)
    assert int(label.array.any(axis=(1, 2)).sum()) == 71
    assert 80 < float(np.median(image.array[label.array == 1])) < 200  # contrast-enhanced liver HU
    liver_x = image.index_to_physical(np.argwhere(label.array == 1).mean(axis=0))[0]
    body_x = image.index_to_physical(np.argwhere(image.array > -500).mean(axis=0))[0]
    assert liver_x < body_x  # patient's right (LPS x decreases to the right)


def test_bundled_sample_exists_is_small_and_loads():
    assert SAMPLE_IMAGE.stat().st_size + SAMPLE_LABEL.stat().st_size <= 5 * 1024 * 1024
    assert (SAMPLE_IMAGE.parent / "ATTRIBUTION.md").is_file()
    image, label = load_sample()
    assert image.shape[0] == 78 and image.same_grid(label)
    assert set(np.unique(label.array).tolist()) == {0, 1}
    assert int(label.array.any(axis=(1, 2)).sum()) == 71
    assert 80 < float(np.median(image.array[label.array == 1])) < 200
    assert 1.0 <= image.spacing[1] <= 1.6 and image.spacing[0] == pytest.approx(2.0, abs=0.05)
