"""Bounding boxes, crop/uncrop with exact geometry, empty slices (liverseg.preprocessing.crop)."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import GeometryError, InputError
from liverseg.io import Volume
from liverseg.preprocessing import (
    body_bbox,
    box_from_json,
    box_to_json,
    crop,
    crop_to_box,
    grow_box,
    label_bbox,
    nonempty_slices,
    uncrop,
)
from liverseg.synth import make_phantom

_C, _S = np.cos(0.4), np.sin(0.4)
OBLIQUE = np.array([[_C, 0.0, -_S], [0.0, -1.0, 0.0], [_S, 0.0, _C]])


def test_crop_overlays_the_original_exactly() -> None:
    rng = np.random.default_rng(0)
    v = Volume(rng.normal(size=(12, 20, 25)).astype(np.float32), (2.5, 0.7, 0.9), (-3.0, 40.0, 7.5), OBLIQUE)
    box = (slice(3, 9), slice(5, 17), slice(2, 20))
    c = crop(v, box)
    assert c.shape == (6, 12, 18)
    assert c.spacing == v.spacing
    np.testing.assert_allclose(c.direction, v.direction)
    idx = np.stack([rng.integers(0, n, 100) for n in c.shape], axis=1)
    start = np.array([s.start for s in box])
    # same physical position and same value for every cropped voxel
    np.testing.assert_allclose(c.index_to_physical(idx), v.index_to_physical(idx + start), atol=1e-9)
    np.testing.assert_array_equal(c.array[tuple(idx.T)], v.array[tuple((idx + start).T)])
    assert crop_to_box is crop


def test_uncrop_is_the_inverse_of_crop() -> None:
    lab = np.zeros((10, 12, 14), np.uint8)
    lab[2:5, 3:9, 4:10] = 1
    lab[3, 5, 6] = 2
    v = Volume(lab, (2.0, 1.0, 1.0))
    box = label_bbox(lab, v.spacing, 0.0)
    assert box == (slice(2, 5), slice(3, 9), slice(4, 10))
    c = crop(v, box)
    np.testing.assert_array_equal(uncrop(c.array, box, v.shape), lab)
    probs = np.stack([1.0 - c.array, c.array.astype(float)]).astype(np.float32)
    full = uncrop(probs, box, v.shape, fill=0.0)
    assert full.shape == (2, *v.shape) and full.dtype == np.float32
    assert full[:, 0].sum() == 0
    with pytest.raises(GeometryError, match="box size"):
        uncrop(c.array[:, :-1], box, v.shape)


def test_label_bbox_margin_in_mm_on_anisotropic_spacing() -> None:
    mask = np.zeros((20, 60, 60), bool)
    mask[10, 20, 30] = True
    spacing = (2.5, 0.8, 0.8)
    # 5 mm: z ceil(5 / 2.5) = 2 voxels, y/x ceil(5 / 0.8) = 7 voxels on each side
    assert label_bbox(mask, spacing, 5.0) == (slice(8, 13), slice(13, 28), slice(23, 38))
    # per-axis margins, and clipping at the volume border
    assert label_bbox(mask, spacing, (30.0, 0.0, 100.0)) == (slice(0, 20), slice(20, 21), slice(0, 60))
    # the box covers at least the margin in mm on each side
    box = label_bbox(mask, spacing, 4.0)
    assert (10 - box[0].start) * spacing[0] >= 4.0 and (box[1].stop - 1 - 20) * spacing[1] >= 4.0


def test_label_bbox_of_a_label_volume_and_empty_mask() -> None:
    lab = np.zeros((5, 6, 7), np.uint8)
    lab[1:3, 2, 3:5] = 2
    assert label_bbox(Volume(lab), (1.0, 1.0, 1.0)) == (slice(1, 3), slice(2, 3), slice(3, 5))
    with pytest.raises(InputError, match="empty"):
        label_bbox(np.zeros((3, 3, 3)), (1, 1, 1), 5.0)
    with pytest.raises(GeometryError, match=">= 0"):
        label_bbox(lab, (1, 1, 1), -1.0)


def test_crop_rejects_boxes_outside_the_volume() -> None:
    v = Volume(np.zeros((4, 5, 6), np.float32))
    with pytest.raises(GeometryError, match="does not fit"):
        crop(v, (slice(0, 5), slice(0, 5), slice(0, 6)))
    with pytest.raises(GeometryError, match="does not fit"):
        crop(v, (slice(2, 2), slice(0, 5), slice(0, 6)))
    with pytest.raises(GeometryError, match="step"):
        crop(v, (slice(0, 4, 2), slice(0, 5), slice(0, 6)))
    with pytest.raises(GeometryError, match="3 slices"):
        crop(v, (slice(0, 4), slice(0, 5)))  # type: ignore[arg-type]


def test_box_helpers() -> None:
    box = (slice(1, 4), slice(2, 8), slice(0, 3))
    assert box_from_json(box_to_json(box)) == box
    assert grow_box(box, (5, 9, 9), (2.0, 1.0, 1.0), 3.0) == (slice(0, 5), slice(0, 9), slice(0, 6))


def test_body_bbox_finds_the_body_and_ignores_the_table() -> None:
    image, label, _ = make_phantom(4)
    box = body_bbox(image)
    arr = image.array
    # the table (a plate > 0 HU posterior to the body, below the padding) is outside the box
    table_rows = [y for y in range(arr.shape[1]) if (arr[:, y, :] > 50).mean() > 0.5]
    assert table_rows and min(table_rows) >= box[1].stop
    # every voxel of the liver (and the whole body at -500 HU in the central slice) is inside
    liver_box = label_bbox(label.array, label.spacing)
    for b, lb in zip(box, liver_box, strict=True):
        assert b.start <= lb.start and lb.stop <= b.stop
    z = arr.shape[0] // 2
    inside = np.zeros(arr.shape[1:], bool)
    inside[box[1], box[2]] = True
    body = arr[z] > -500
    body[min(table_rows) - 2 :, :] = False
    assert not np.any(body & ~inside)
    # the box is tight: the body touches each in-plane side of it (within one grid step)
    assert body[box[1].start : box[1].start + 3].any() and body[:, box[2].stop - 3 : box[2].stop].any()


def test_body_bbox_margin_and_no_body() -> None:
    arr = np.full((6, 40, 40), -1000.0, np.float32)
    arr[1:5, 10:30, 12:28] = 40.0
    v = Volume(arr, (3.0, 1.0, 1.0))
    assert body_bbox(v) == (slice(1, 5), slice(10, 30), slice(12, 28))
    assert body_bbox(v, margin_mm=2.0) == (slice(0, 6), slice(8, 32), slice(10, 30))
    with pytest.raises(InputError, match="no voxel above"):
        body_bbox(v.with_array(np.full((6, 40, 40), -1000.0, np.float32)))


def test_nonempty_slices() -> None:
    lab = np.zeros((6, 4, 4), np.uint8)
    lab[1, 0, 0] = 1
    lab[4, 2, 2] = 2
    np.testing.assert_array_equal(nonempty_slices(lab), [1, 4])
    np.testing.assert_array_equal(nonempty_slices(Volume(lab), axis=1), [0, 2])
    assert nonempty_slices(np.zeros((3, 3, 3))).size == 0
