"""Synthetic CT phantoms (liverseg.synth.make_phantom)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from liverseg.errors import ConfigError
from liverseg.io import Volume, to_canonical
from liverseg.preprocessing import WINDOWS, check_ct_intensities, window
from liverseg.synth import make_phantom

SEEDS = (0, 3, 4, 5)


@pytest.fixture(scope="module")
def phantoms() -> dict[int, tuple[Volume, Volume, dict]]:
    return {s: make_phantom(s) for s in SEEDS}


def test_same_seed_same_phantom_other_seed_other_phantom() -> None:
    a_img, a_lab, a_info = make_phantom(11, shape=(24, 64, 64), spacing=(5.0, 6.0, 6.0))
    b_img, b_lab, b_info = make_phantom(
        np.random.default_rng(11), shape=(24, 64, 64), spacing=(5.0, 6.0, 6.0)
    )
    np.testing.assert_array_equal(a_img.array, b_img.array)
    np.testing.assert_array_equal(a_lab.array, b_lab.array)
    assert a_info["lesions"] == b_info["lesions"]
    c_img, _, _ = make_phantom(12, shape=(24, 64, 64), spacing=(5.0, 6.0, 6.0))
    assert not np.array_equal(a_img.array, c_img.array)


def test_volumes_types_grid_and_metadata(phantoms: dict) -> None:
    image, label, info = phantoms[0]
    assert image.shape == label.shape == (48, 128, 128)
    assert image.spacing == (5.0, 3.0, 3.0)
    image.require_same_grid(label)
    assert image.array.dtype == np.float32 and label.array.dtype == np.uint8
    assert np.all(image.array == np.round(image.array))  # integral HU like real CT
    assert image.metadata["synthetic"] is True and label.metadata["synthetic"] is True
    assert info["synthetic"] is True
    assert to_canonical(image)[1].is_identity
    # the body is ~300 mm wide (LPS x) in a 384 mm field of view
    body_cols = np.flatnonzero((image.array[24, 54:74] > -500).any(axis=0))  # rows through the body
    width_mm = (body_cols[-1] - body_cols[0] + 1) * image.spacing[2]
    assert 250 <= width_mm <= 360


def test_label_values_and_tumor_free_option(phantoms: dict) -> None:
    for _image, label, info in phantoms.values():
        assert set(np.unique(label.array)) == {0, 1, 2}
        assert info["tumor_volume_ml"] == pytest.approx(
            (label.array == 2).sum() * label.voxel_volume_ml, abs=1e-3
        )
    _, label, info = make_phantom(0, tumors=False)
    assert set(np.unique(label.array)) == {0, 1}
    assert info["lesions"] == [] and info["tumor_volume_ml"] == 0


def test_liver_hu_and_lesion_contrast_are_in_range(phantoms: dict) -> None:
    for image, label, info in phantoms.values():
        liver_median = float(np.median(image.array[label.array == 1]))
        assert 40 <= liver_median <= 130
        assert 10 <= info["noise_sigma_hu"] <= 20
        for rec in info["lesions"]:
            if rec["voxels"] < 20:  # a few voxels: blur and noise dominate
                continue
            core = ndimage.binary_erosion(_lesion_mask(label.array, rec))
            contrast = float(image.array[core].mean()) - liver_median
            assert 10 <= abs(contrast) <= 120, rec
            assert np.sign(contrast) == (-1 if rec["kind"] == "hypo" else 1), rec


def _lesion_mask(label: np.ndarray, rec: dict) -> np.ndarray:
    comps, _ = ndimage.label(label == 2, structure=np.ones((3, 3, 3)))
    return comps == comps[tuple(rec["center_voxel_zyx"])]


def test_lesions_lie_inside_the_liver(phantoms: dict) -> None:
    for _, label, info in phantoms.values():
        tumor = label.array == 2
        background = label.array == 0
        # no tumor voxel touches the background: lesions are surrounded by liver
        assert not np.any(ndimage.binary_dilation(background) & tumor)
        for rec in info["lesions"]:
            assert label.array[tuple(rec["center_voxel_zyx"])] == 2


def test_lesion_sizes_include_measurable_and_small(phantoms: dict) -> None:
    diameters = [rec["diameter_mm"] for _, _, info in phantoms.values() for rec in info["lesions"]]
    assert any(d >= 10 for d in diameters) and any(d < 10 for d in diameters)
    _, _label, info = make_phantom(21, n_lesions=2)
    d = [rec["diameter_mm"] for rec in info["lesions"]]
    assert len(d) == 2 and d[0] >= 10 > d[1]
    # the label agrees with the nominal size: volume of the big lesion ~ sphere of its diameter
    vol_mm3 = info["lesions"][0]["volume_ml"] * 1000
    assert 0.5 < vol_mm3 / (np.pi / 6 * d[0] ** 3) < 1.8


def test_liver_is_on_the_patients_right_and_spleen_side_is_left(phantoms: dict) -> None:
    for image, label, _ in phantoms.values():
        liver_lps = image.index_to_physical(np.argwhere(label.array > 0).mean(axis=0))
        body_lps = image.index_to_physical(np.argwhere(image.array > -500).mean(axis=0))
        # LPS: +x is the patient's left, so the liver has the smaller x
        assert liver_lps[0] < body_lps[0] - 20
        # in the array (canonical, radiological display) the liver is in the low-x half
        assert np.argwhere(label.array > 0)[:, 2].mean() < image.shape[2] / 2


def test_lungs_at_the_top_and_vessels_brighter_than_liver(phantoms: dict) -> None:
    image, label, info = phantoms[3]
    arr = image.array
    inside = ndimage.binary_fill_holes(arr[arr.shape[0] // 2] > -500)

    def lung_fraction(z: int) -> float:
        return float(((arr[z] > -950) & (arr[z] < -700) & inside).mean())

    assert lung_fraction(arr.shape[0] - 2) > 0.05 > lung_fraction(2)
    assert info["vessel_hu"] > info["liver_hu"] + 30
    liver = label.array == 1
    assert np.percentile(arr[liver], 99) > info["liver_hu"] + 30  # bright vessel voxels exist


def test_windowed_phantom_values(phantoms: dict) -> None:
    image, label, _ = phantoms[4]
    w = window(image.array, *WINDOWS["liver"])
    assert w.min() == 0.0 and w.max() == 1.0
    liver_w = float(np.median(w[label.array == 1]))
    assert 0.45 < liver_w < 0.7  # liver (55-105 HU) sits mid-window in W400/L50


def test_other_grids_and_ct_check() -> None:
    image, label, _info = make_phantom(7, shape=(32, 96, 80), spacing=(2.5, 4.0, 4.0))
    assert image.shape == (32, 96, 80)
    assert (label.array == 1).any()
    check_ct_intensities(image)
    # a small field of view shrinks the body instead of cutting it
    small, _, _ = make_phantom(7, shape=(16, 40, 40), spacing=(5.0, 4.0, 4.0))
    rows = small.array[8, 15:25]  # through the body, above the table
    assert (rows > -500).any() and not (rows[:, :2] > -500).any() and not (rows[:, -2:] > -500).any()


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="at least"):
        make_phantom(0, shape=(4, 64, 64))
    with pytest.raises(ConfigError, match="positive"):
        make_phantom(0, spacing=(0.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="seed"):
        make_phantom("abc")  # type: ignore[arg-type]
