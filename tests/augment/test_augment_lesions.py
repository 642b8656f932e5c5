"""insert_lesions: placement inside the liver, appearance, sizes in mm, determinism, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from liverseg.augment import LesionParams, insert_lesions
from liverseg.errors import ConfigError, GeometryError, InputError

PLAIN = dict(  # deterministic-looking lesions: no texture, rim, necrosis, lobulation or merging
    texture_hu=(0.0, 0.0),
    rim_probability=0.0,
    necrosis_probability=0.0,
    merge_probability=0.0,
    lobulation=(0.0, 0.0),
    axis_ratio=(1.0, 1.0),
)


def _distance_to_outside_mm(label: np.ndarray, spacing) -> np.ndarray:
    padded = np.pad(label > 0, 1)
    return ndimage.distance_transform_edt(padded, sampling=spacing)[1:-1, 1:-1, 1:-1]


def test_lesions_stay_inside_the_liver_and_change_nothing_else(case_factory):
    image, label = case_factory()
    spacing = (2.5, 0.8, 0.8)
    params = LesionParams(margin_mm=2.0)
    res = insert_lesions(image, label, spacing, params, rng=3, count=6)
    assert len(res.lesions) + len(res.skipped) == 6
    assert len(res.lesions) >= 3
    liver = label > 0
    changed = res.image != image
    assert changed.any()
    # every changed voxel (soft edge and noise included) is in the liver, deeper than the margin
    depth = _distance_to_outside_mm(label, spacing)
    assert not (changed & ~liver).any()
    assert depth[changed].min() > params.margin_mm
    # labels: only liver -> tumor, only where the image changed
    new_tumor = (res.label == 2) & (label != 2)
    assert new_tumor.any()
    assert not (new_tumor & ~liver).any()
    assert np.array_equal(res.label[~new_tumor], label[~new_tumor])
    assert not (new_tumor & ~changed).any()
    # the inputs are untouched, dtypes kept
    assert res.image.dtype == image.dtype and res.label.dtype == label.dtype
    for rec in res.lesions:
        assert liver[rec.center_voxel]
        assert res.label[rec.center_voxel] == 2


def test_contrast_and_size_fall_in_the_requested_ranges(case_factory):
    image, label = case_factory(semi_axes_mm=(28.0, 36.0, 36.0), shape=(26, 100, 100))
    spacing = (2.5, 0.8, 0.8)
    params = LesionParams(
        **PLAIN,
        diameter_mm=(8.0, 16.0),
        hypodense_contrast_hu=(20.0, 60.0),
        hyperdense_probability=0.0,
        edge_width_mm=(0.3, 0.3),
        match_noise=False,
    )
    res = insert_lesions(image, label, spacing, params, rng=7, count=5)
    assert len(res.lesions) >= 3
    comps, n = ndimage.label((res.label == 2) & (label != 2))
    assert n == len(res.lesions)
    for rec in res.lesions:
        assert rec.kind == "hypodense"
        assert -60.0 <= rec.contrast_hu <= -20.0
        assert 8.0 <= rec.requested_diameter_mm <= 16.0
        # the labelled volume matches the requested diameter within voxel discretisation
        assert rec.diameter_mm == pytest.approx(rec.requested_diameter_mm, rel=0.15)
        lesion = comps == comps[rec.center_voxel]
        core = ndimage.binary_erosion(lesion, structure=np.ones((1, 3, 3), bool), iterations=2)
        assert core.sum() >= 10
        measured = float(np.median(res.image[core])) - rec.background_hu
        assert measured == pytest.approx(rec.contrast_hu, abs=3.0)
        assert rec.background_hu == pytest.approx(100.0, abs=3.0)


def test_hyperdense_lesions_are_brighter_than_the_liver(case_factory):
    image, label = case_factory()
    params = LesionParams(
        **PLAIN,
        hyperdense_probability=1.0,
        hyperdense_contrast_hu=(30.0, 40.0),
        diameter_mm=(8.0, 12.0),
        match_noise=False,
    )
    res = insert_lesions(image, label, (2.5, 0.8, 0.8), params, rng=1, count=3)
    assert res.lesions
    for rec in res.lesions:
        assert rec.kind == "hyperdense" and 30.0 <= rec.contrast_hu <= 40.0
        assert res.image[rec.center_voxel] > image[rec.center_voxel] + 10.0


def test_same_seed_same_result_other_seed_other_result(case_factory):
    image, label = case_factory()
    a = insert_lesions(image, label, (2.5, 0.8, 0.8), rng=11, count=4)
    b = insert_lesions(image, label, (2.5, 0.8, 0.8), rng=np.random.default_rng(11), count=4)
    c = insert_lesions(image, label, (2.5, 0.8, 0.8), rng=12, count=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert [r.to_dict() for r in a.lesions] == [r.to_dict() for r in b.lesions]
    assert not np.array_equal(a.label, c.label)


@pytest.mark.parametrize("spacing", [(3.0, 0.6, 0.9), (1.0, 1.5, 0.7)])
def test_a_20_mm_lesion_measures_20_mm_along_each_axis(case_factory, spacing):
    shape = tuple(round(70.0 / s) for s in spacing)
    image, label = case_factory(shape=shape, spacing=spacing, semi_axes_mm=(30.0, 30.0, 30.0))
    params = LesionParams(**PLAIN, diameter_mm=(20.0, 20.0), edge_width_mm=(0.3, 0.3))
    res = insert_lesions(image, label, spacing, params, rng=0, count=1)
    assert len(res.lesions) == 1 and not res.lesions[0].shrunk
    z, y, x = np.nonzero(res.label == 2)
    for axis, coords in enumerate((z, y, x)):
        extent_mm = (coords.max() - coords.min() + 1) * spacing[axis]
        assert abs(extent_mm - 20.0) <= spacing[axis] + 1e-6, (axis, extent_mm)


def test_empty_liver_raises_or_is_skipped(case_factory):
    image, label = case_factory()
    empty = np.zeros_like(label)
    with pytest.raises(InputError, match="no liver voxels"):
        insert_lesions(image, empty, (2.5, 0.8, 0.8), rng=0)
    res = insert_lesions(image, empty, (2.5, 0.8, 0.8), rng=0, empty_liver="skip")
    assert np.array_equal(res.image, image) and np.array_equal(res.label, empty) and not res.lesions


def test_too_small_liver_shrinks_or_skips_but_never_leaves_the_liver(case_factory):
    spacing = (1.0, 1.0, 1.0)
    image, label = case_factory(shape=(40, 40, 40), spacing=spacing, semi_axes_mm=(9.0, 9.0, 9.0))
    # room for ~10 mm lesions only: 40 mm lesions are shrunk (40 -> 30 -> 22.5 -> ... -> ~9.5)
    params = LesionParams(
        **PLAIN, diameter_mm=(5.0, 40.0), size_distribution="uniform", margin_mm=1.0, edge_width_mm=(0.3, 0.3)
    )
    res = insert_lesions(image, label, spacing, params, rng=5, count=3)
    assert res.lesions, "at least one shrunk lesion must fit"
    assert all(r.requested_diameter_mm <= 16.0 for r in res.lesions)
    assert any(r.shrunk for r in res.lesions)
    changed = res.image != image
    assert not (changed & (label == 0)).any()
    assert not ((res.label == 2) & (label == 0)).any()
    # a liver smaller than the smallest allowed lesion: everything skipped, with the reason
    tiny_image, tiny = case_factory(shape=(40, 40, 40), spacing=spacing, semi_axes_mm=(3.0, 3.0, 3.0))
    params = LesionParams(**PLAIN, diameter_mm=(12.0, 20.0), margin_mm=1.0)
    res = insert_lesions(tiny_image, tiny, spacing, params, rng=0, count=2)
    assert not res.lesions and len(res.skipped) == 2
    assert "fits" in res.skipped[0].reason and "liver" in res.skipped[0].reason
    assert np.array_equal(res.image, tiny_image) and np.array_equal(res.label, tiny)


def test_large_vessels_and_existing_tumors_are_avoided(case_factory):
    spacing = (2.0, 0.8, 0.8)
    image, label = case_factory(
        shape=(30, 100, 100),
        spacing=spacing,
        semi_axes_mm=(28.0, 36.0, 36.0),
        vessel_radius_mm=3.0,
        tumor_radius_mm=6.0,
    )
    params = LesionParams(diameter_mm=(5.0, 12.0), vessel_overlap=0.0, margin_mm=2.0)
    res = insert_lesions(image, label, spacing, params, rng=1, count=6)
    assert len(res.lesions) >= 3
    changed = res.image != image
    vessel = (image > 160) & (label == 1)
    vessel = ndimage.binary_opening(vessel, structure=np.ones((1, 3, 3), bool))  # the tube, not noise
    assert vessel.sum() > 100
    assert not (changed & vessel).any()
    # the same draw without vessel avoidance does cover the vessel
    careless = insert_lesions(
        image, label, spacing, LesionParams(**{**params.to_dict(), "avoid_vessels": False}), rng=1, count=6
    )
    assert ((careless.image != image) & vessel).any()
    tumor = label == 2
    assert np.array_equal(res.image[tumor], image[tumor]) and (res.label[tumor] == 2).all()
    near_tumor = ndimage.distance_transform_edt(~tumor, sampling=spacing) <= params.margin_mm
    assert not (changed & near_tumor).any()


def test_lesion_noise_matches_the_scan_noise(case_factory):
    spacing = (2.5, 0.8, 0.8)
    image, label = case_factory(
        shape=(26, 110, 110),
        spacing=spacing,
        semi_axes_mm=(30.0, 40.0, 40.0),
        noise_hu=15.0,
        corr_vox=0.8,
        seed=4,
    )
    params = LesionParams(**PLAIN, diameter_mm=(30.0, 30.0), edge_width_mm=(0.3, 0.3), match_noise=True)
    res = insert_lesions(image, label, spacing, params, rng=0, count=1)
    lesion = (res.label == 2) & (label != 2)
    core = ndimage.binary_erosion(lesion, iterations=3)
    assert core.sum() > 500
    scan_std = float(image[ndimage.binary_erosion(label == 1, iterations=4) & ~lesion].std())
    lesion_std = float(res.image[core].std())
    assert lesion_std == pytest.approx(scan_std, rel=0.15)

    def lag1(values: np.ndarray, mask: np.ndarray) -> float:
        v = np.where(mask, values - values[mask].mean(), 0.0)
        both = mask[:, :, 1:] & mask[:, :, :-1]
        return float((v[:, :, 1:] * v[:, :, :-1])[both].mean() / v[mask].var())

    assert lag1(res.image, core) == pytest.approx(lag1(image, core), abs=0.12)
    # without noise matching the lesion is visibly smoother
    smooth = insert_lesions(
        image, label, spacing, LesionParams(**{**params.to_dict(), "match_noise": False}), rng=0, count=1
    )
    assert float(smooth.image[core].std()) < 0.5 * scan_std


def test_integer_images_stay_integer(case_factory):
    image, label = case_factory()
    res = insert_lesions(np.rint(image).astype(np.int16), label, (2.5, 0.8, 0.8), rng=0, count=2)
    assert res.image.dtype == np.int16


def test_bad_inputs_are_reported(case_factory):
    image, label = case_factory()
    with pytest.raises(GeometryError, match="does not match"):
        insert_lesions(image, label[:-1], (2.5, 0.8, 0.8))
    with pytest.raises(GeometryError, match="spacing"):
        insert_lesions(image, label, (2.5, 0.8))
    with pytest.raises(InputError, match="3D"):
        insert_lesions(image[0], label[0], (2.5, 0.8, 0.8))


def test_params_from_dict_validates_and_round_trips():
    p = LesionParams.from_dict({"count": [2, 4], "diameter_mm": [5, 30], "hyperdense_probability": 0.5})
    assert p.count == (2, 4) and p.diameter_mm == (5.0, 30) and p.hyperdense_probability == 0.5
    assert LesionParams.from_dict(p.to_dict()) == p
    with pytest.raises(ConfigError, match=r"unknown .*\['diamter_mm'\]"):
        LesionParams.from_dict({"diamter_mm": [3, 60]})
    with pytest.raises(ConfigError, match="low <= high"):
        LesionParams(diameter_mm=(30.0, 5.0))
    with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
        LesionParams(rim_probability=1.5)
    with pytest.raises(ConfigError, match="integers"):
        LesionParams(count=(1.5, 3))
