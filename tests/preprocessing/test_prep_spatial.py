"""Resampling to a spacing/shape and its exact inverse (liverseg.preprocessing.spatial)."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import ConfigError, GeometryError
from liverseg.io import Volume
from liverseg.preprocessing import ResampleInfo, resample_array, resample_to_shape, resample_to_spacing

# An oblique, flipped direction (columns: x, y, z axes in LPS) to make sure geometry goes through it.
_C, _S = np.cos(0.3), np.sin(0.3)
OBLIQUE = np.array([[_C, -_S, 0.0], [_S, _C, 0.0], [0.0, 0.0, -1.0]])


def _ramp(shape: tuple[int, int, int], coef: tuple[float, float, float] = (2.0, 3.0, -1.0)) -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    return (coef[0] * z + coef[1] * y + coef[2] * x).astype(np.float32)


def _blob(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], sigma_mm: float = 12.0
) -> np.ndarray:
    grids = np.meshgrid(
        *((np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )
    r2 = sum(g**2 for g in grids)
    return (1000.0 * np.exp(-r2 / (2 * sigma_mm**2)) - 500.0).astype(np.float32)


def _center_mm(v: Volume) -> np.ndarray:
    return v.index_to_physical((np.asarray(v.shape, dtype=float) - 1) / 2)


def test_new_grid_keeps_extent_and_field_of_view_centre() -> None:
    v = Volume(np.zeros((20, 30, 41), np.float32), (2.0, 1.0, 0.7), (10.0, -20.0, 30.0), OBLIQUE)
    r, info = resample_to_spacing(v, (1.0, 0.5, None), order=1)
    assert r.shape == (40, 60, 41) == info.shape
    assert r.spacing == (1.0, 0.5, 0.7)
    np.testing.assert_allclose(r.direction, v.direction)
    np.testing.assert_allclose(_center_mm(r), _center_mm(v), atol=1e-9)
    # rounding of the new size: 41 * 0.7 / 1.6 = 17.94 -> 18 voxels
    r2, _ = resample_to_spacing(v, (None, None, 1.6), order=1)
    assert r2.shape == (20, 30, 18)
    np.testing.assert_allclose(_center_mm(r2), _center_mm(v), atol=1e-9)


def test_resampled_values_sit_at_the_right_physical_positions() -> None:
    """Linear interpolation of a linear function is exact: compare through physical space."""
    shape = (12, 20, 24)
    v = Volume(_ramp(shape), (2.5, 0.8, 0.8), (5.0, 6.0, 7.0), OBLIQUE)
    r, _ = resample_to_spacing(v, (1.5, 1.3, 0.55), order=1)
    rng = np.random.default_rng(0)
    idx_new = np.stack([rng.integers(1, n - 1, 50) for n in r.shape], axis=1)
    idx_old = v.physical_to_index(r.index_to_physical(idx_new))
    inside = np.all((idx_old >= 0) & (idx_old <= np.asarray(shape) - 1), axis=1)
    expected = idx_old[inside] @ np.array([2.0, 3.0, -1.0])
    got = r.array[tuple(idx_new[inside].T)]
    np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize("order", [1, 3])
def test_round_trip_is_exact_in_shape_and_close_in_values(order: int) -> None:
    shape, spacing = (40, 64, 72), (2.0, 0.75, 0.75)
    v = Volume(_blob(shape, spacing), spacing, (0.0, 0.0, 0.0), OBLIQUE)
    r, info = resample_to_spacing(v, (3.0, 1.5, 1.5), order=order)
    back = info.invert(r.array, order=order)
    assert back.shape == v.shape and back.dtype == np.float32
    err = np.abs(back - v.array)
    assert float(err.mean()) < 2.0  # HU, on a 1000 HU blob
    assert float(err[4:-4, 6:-6, 6:-6].max()) < 25.0
    vol_back = info.invert_volume(r, order=order)
    assert vol_back.same_grid(v)


def test_upsample_then_invert_recovers_linear_data_exactly() -> None:
    shape = (10, 12, 14)
    v = Volume(_ramp(shape), (2.0, 1.0, 1.0))
    r, info = resample_to_spacing(v, (1.0, 0.5, 0.5), order=1)
    back = info.invert(r.array, order=1)
    np.testing.assert_allclose(back[1:-1, 1:-1, 1:-1], v.array[1:-1, 1:-1, 1:-1], atol=1e-4)


def test_labels_use_nearest_neighbour_and_keep_their_values() -> None:
    rng = np.random.default_rng(3)
    lab = rng.choice(np.array([0, 1, 2], np.uint8), size=(9, 17, 19), p=[0.6, 0.3, 0.1])
    v = Volume(lab, (3.0, 0.9, 0.9))
    r, _info = resample_to_spacing(v, (1.2, 1.7, 0.6), order=0)
    assert r.array.dtype == np.uint8
    assert set(np.unique(r.array)) <= {0, 1, 2}
    # each resampled voxel equals the original voxel nearest to its physical position
    idx_new = np.stack([rng.integers(0, n, 200) for n in r.shape], axis=1)
    idx_old = np.clip(
        np.floor(v.physical_to_index(r.index_to_physical(idx_new)) + 0.5), 0, np.asarray(v.shape) - 1
    )
    np.testing.assert_array_equal(r.array[tuple(idx_new.T)], lab[tuple(idx_old.astype(int).T)])
    # integer upsampling followed by the inverse gives the labels back exactly
    up, info_up = resample_to_spacing(v, (1.5, 0.45, 0.45), order=0)
    np.testing.assert_array_equal(info_up.invert(up.array, order=0), lab)


def test_apply_resamples_a_label_like_the_image() -> None:
    v = Volume(_blob((16, 24, 24), (2.0, 1.0, 1.0)), (2.0, 1.0, 1.0))
    lab = (v.array > 0).astype(np.uint8)
    r_img, info = resample_to_spacing(v, (3.0, 2.0, 2.0), order=1)
    r_lab = info.apply(lab, order=0)
    r_lab2, _ = resample_to_spacing(v.with_array(lab), (3.0, 2.0, 2.0), order=0)
    np.testing.assert_array_equal(r_lab, r_lab2.array)
    assert r_lab.shape == r_img.shape


def test_invert_handles_channel_stacks() -> None:
    v = Volume(np.zeros((11, 20, 22), np.float32), (2.5, 0.8, 0.8))
    r, info = resample_to_spacing(v, (None, 1.6, 1.6), order=1)
    rng = np.random.default_rng(5)
    probs = rng.random((3, *r.shape)).astype(np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    back = info.invert(probs, order=1)
    assert back.shape == (3, *v.shape)
    np.testing.assert_allclose(back[1], info.invert(probs[1], order=1))
    np.testing.assert_allclose(back.sum(axis=0), 1.0, atol=1e-5)  # linear interpolation keeps the partition
    with pytest.raises(GeometryError, match="resampled grid"):
        info.invert(probs[:, :-1], order=1)


def test_none_and_equal_spacing_are_identity() -> None:
    arr = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    v = Volume(arr, (2.0, 1.0, 1.0), (1.0, 2.0, 3.0))
    r, info = resample_to_spacing(v, (None, 1.0, None), order=3)
    assert info.is_identity and r.same_grid(v)
    np.testing.assert_array_equal(r.array, arr)
    np.testing.assert_array_equal(info.invert(r.array, order=1), arr)


def test_unchanged_axes_are_bit_exact() -> None:
    plane = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    v = Volume(np.repeat(plane[None], 5, axis=0), (2.0, 1.0, 1.0))
    r, info = resample_to_spacing(v, (1.0, None, None), order=1)
    assert r.shape == (10, 6, 8)
    assert info.offset == pytest.approx((-0.25, 0.0, 0.0))
    for z in range(r.shape[0]):  # only z is interpolated: in-plane values are untouched
        np.testing.assert_array_equal(r.array[z], plane)


def test_resample_to_shape_keeps_extent() -> None:
    v = Volume(_blob((6, 128, 96), (3.0, 0.7, 0.7)), (3.0, 0.7, 0.7), (0.0, 0.0, 0.0), OBLIQUE)
    r, info = resample_to_shape(v, (None, 64, 48), order=1)
    assert r.shape == (6, 64, 48)
    assert r.spacing == pytest.approx((3.0, 1.4, 1.4))
    np.testing.assert_allclose(_center_mm(r), _center_mm(v), atol=1e-9)
    assert info.offset == pytest.approx((0.0, 0.5, 0.5))  # align_corners=False
    back = info.invert(r.array, order=1)
    assert back.shape == v.shape
    assert float(np.abs(back - v.array).mean()) < 5.0


@pytest.mark.parametrize("order", [0, 1, 3])
def test_slab_processing_matches_whole_volume(order: int) -> None:
    arr = np.random.default_rng(2).normal(size=(23, 17, 19)).astype(np.float32)
    if order == 0:
        arr = (arr > 0).astype(np.uint8)
    args = ((1.7, 0.6, 1.3), (0.2, -0.3, 0.4), (14, 30, 15))
    whole = resample_array(arr, *args, order=order)
    slabs = resample_array(arr, *args, order=order, chunk_voxels=500)
    np.testing.assert_allclose(whole.astype(np.float64), slabs, atol=1e-4)


def test_bool_masks_resample_as_bool() -> None:
    mask = np.zeros((4, 8, 8), bool)
    mask[1:3, 2:6, 2:6] = True
    r, _ = resample_to_spacing(Volume(mask, (2.0, 1.0, 1.0)), (1.0, 0.5, 0.5), order=0)
    assert r.array.dtype == bool and r.array.sum() == mask.sum() * 8


def test_bad_arguments() -> None:
    v = Volume(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ConfigError, match="order"):
        resample_to_spacing(v, (1.0, 1.0, 1.0), order=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive"):
        resample_to_spacing(v, (-1.0, 1.0, 1.0), order=1)
    with pytest.raises(ConfigError, match="3 entries"):
        resample_to_spacing(v, (1.0, 1.0), order=1)
    with pytest.raises(ConfigError, match="positive integers"):
        resample_to_shape(v, (2.5, None, None), order=1)
    assert isinstance(resample_to_spacing(v, (2.0, 2.0, 2.0), order=1)[1], ResampleInfo)


@pytest.mark.parametrize("order", [0, 1])
def test_separable_nearest_and_linear_match_scipy(order: int) -> None:
    from scipy import ndimage

    arr = np.random.default_rng(7).normal(size=(13, 21, 17)).astype(np.float32)
    scale, offset, shape = (1.37, 0.61, 2.03), (0.11, -0.2, 0.3), (11, 36, 9)
    ref = ndimage.affine_transform(
        arr, np.array(scale), offset=offset, output_shape=shape, order=order, mode="nearest"
    )
    got = resample_array(arr, scale, offset, shape, order=order)
    np.testing.assert_allclose(got, ref, atol=1e-5)
