"""``check_ct_intensities`` / ``check_volume_size``: real CT and phantoms pass, other data is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liverseg.errors import InputError
from liverseg.io import Volume
from liverseg.preprocessing import body_bbox, check_ct_intensities, check_volume_size, label_bbox
from liverseg.synth import make_phantom


def _need(root: Path, *parts: str) -> Path:
    """``root/parts`` (root from the ``shared_data`` fixture of tests/conftest.py); skip if absent."""
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


def _mr_like(rng: np.random.Generator, hi: float = 1500.0) -> np.ndarray:
    """MR-like magnitude image: zero background, positive tissue signal."""
    arr = np.zeros((8, 48, 48), np.float32)
    arr[:, 8:40, 8:40] = rng.uniform(200, hi, size=(8, 32, 32))
    return np.abs(arr + rng.normal(0, 5, size=arr.shape)).astype(np.float32)


def test_phantom_is_accepted_and_stats_are_returned() -> None:
    image, _, _ = make_phantom(1)
    stats = check_ct_intensities(image)
    assert stats["warnings"] == []
    assert stats["min"] <= -1000 and stats["max"] > 300
    assert stats["p0.5"] <= stats["p50"] <= stats["p99.5"]
    assert stats["air_fraction"] > 0.1 and stats["soft_tissue_fraction"] > 0.1


def test_mr_like_intensities_are_refused() -> None:
    vol = Volume(_mr_like(np.random.default_rng(0), hi=9000.0), metadata={"source": "t1.nii.gz"})
    with pytest.raises(InputError, match="MR") as err:
        check_ct_intensities(vol)
    assert "t1.nii.gz" in str(err.value) and "no negative value" in str(err.value)


def test_unrescaled_12bit_ct_mentions_the_rescale_intercept() -> None:
    rng = np.random.default_rng(1)
    raw = np.clip(rng.normal(1040, 300, size=(6, 32, 32)), 0, 4095).astype(np.uint16)  # HU + 1024
    raw[:, :4] = 0  # air stored as 0
    with pytest.raises(InputError, match="RescaleIntercept"):
        check_ct_intensities(Volume(raw), path="series/")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_8bit_images_are_refused(dtype: type) -> None:
    arr = np.random.default_rng(2).integers(0, 256, size=(4, 32, 32)).astype(dtype)
    with pytest.raises(InputError, match="8-bit"):
        check_ct_intensities(Volume(arr))


def test_png8_metadata_is_refused_even_with_a_wide_range() -> None:
    arr = np.linspace(-1000, 1000, 4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    with pytest.raises(InputError, match="8-bit"):
        check_ct_intensities(Volume(arr, metadata={"intensity": "png8"}))


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.full((3, 4, 4), 40.0, np.float32), "constant"),
        (np.random.default_rng(3).random((3, 8, 8)).astype(np.float32), "normalised"),
        (np.random.default_rng(4).normal(0, 1, (3, 8, 8)).astype(np.float32), "normalised"),
    ],
)
def test_constant_and_normalised_images_are_refused(array: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_ct_intensities(Volume(array))


def test_non_finite_values_are_refused() -> None:
    image, _, _ = make_phantom(2, shape=(16, 48, 48), spacing=(5.0, 8.0, 8.0))
    arr = image.array.copy()
    arr[3, 4, 5] = np.nan
    arr[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="2 NaN/inf"):
        check_ct_intensities(image.with_array(arr))


def test_ct_cropped_without_air_passes_with_a_warning() -> None:
    arr = np.random.default_rng(5).normal(60, 40, size=(6, 20, 20)).astype(np.float32)  # liver-like crop
    stats = check_ct_intensities(Volume(arr))
    assert stats["air_fraction"] == 0.0
    assert any("air" in w for w in stats["warnings"])


def test_non_numeric_arrays_are_refused() -> None:
    with pytest.raises(InputError, match="dtype bool"):
        check_ct_intensities(Volume(np.ones((2, 2, 2), bool)))


def test_check_volume_size_names_the_size() -> None:
    v = Volume(np.zeros((10, 20, 30), np.int16), metadata={"source": "big.nii.gz"})
    check_volume_size(v, max_voxels=6000)
    with pytest.raises(InputError, match=r"\(10, 20, 30\) = 6,000 voxels") as err:
        check_volume_size(v, max_voxels=5999)
    assert "big.nii.gz" in str(err.value) and "5,999" in str(err.value)
    check_volume_size(v)  # far below the default limit


@pytest.mark.shared_data
def test_real_ct_is_accepted_and_body_box_holds_the_liver(shared_data: Path) -> None:
    from liverseg.io import read_chaos_case

    image, label = read_chaos_case(_need(shared_data, "chaos-ct-3"))
    stats = check_ct_intensities(image)
    assert stats["warnings"] == []
    assert stats["air_fraction"] > 0.2 and -1100 <= stats["min"] <= -900
    box = body_bbox(image)
    liver = label_bbox(label.array, label.spacing)
    for b, lb in zip(box, liver, strict=True):
        assert b.start <= lb.start and lb.stop <= b.stop
    # the table (below the patient, y > ~450 of 512) is left out
    assert box[1].stop < 470


@pytest.mark.shared_data
def test_real_ircadb_ct_is_accepted_and_its_raw_values_are_not(shared_data: Path) -> None:
    from liverseg.io import read_dicom_series

    image = read_dicom_series(_need(shared_data, "ircadb", "3Dircadb1.17", "PATIENT_DICOM.zip"))
    assert check_ct_intensities(image)["warnings"] == []
    # the same data without RescaleIntercept (stored values = HU + 1024) is refused
    raw = Volume(image.array[::4] + 1024.0, image.spacing, image.origin, image.direction)
    with pytest.raises(InputError, match="RescaleIntercept"):
        check_ct_intensities(raw)


def test_bundled_real_sample_is_accepted() -> None:
    from liverseg.io import load_sample

    image, _ = load_sample()  # shipped in the package: a missing sample fails here
    stats = check_ct_intensities(image)
    assert stats["warnings"] == [] and stats["air_fraction"] > 0.1
