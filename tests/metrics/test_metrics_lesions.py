"""Lesion detection on constructed lesion sets, and the RECIST diameter helper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liverseg.metrics import axial_diameters, connected_lesions, lesion_detection, longest_axial_diameter_mm
from liverseg.metrics.diameters import contour_points

SPACING = (2.0, 0.5, 0.5)


def _ball(shape, centre_vox, radius_mm, spacing=SPACING):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre_vox, spacing, strict=True))
    return d2 <= radius_mm**2


def test_constructed_lesion_set():
    shape = (24, 120, 120)
    a = _ball(shape, (6, 30, 30), 8.0)  # measurable (16 mm), found by two predicted pieces
    b = _ball(shape, (12, 80, 30), 3.0)  # small (6 mm), touched by one voxel
    c = _ball(shape, (18, 30, 90), 7.0)  # measurable (14 mm), missed
    ref = a | b | c
    pred = np.zeros(shape, dtype=bool)
    pred[6, 25:30, 25:35] = True  # piece 1 on A
    pred[6, 34:36, 25:35] = True  # piece 2 on A (separate component)
    pred[12, 80, 30] = True  # one voxel on B
    pred[20, 100:105, 100:105] = True  # false positive D
    res = lesion_detection(pred, ref, SPACING)
    assert res["n_ref"] == 3 and res["n_pred"] == 4
    assert res["n_detected"] == 2 and res["recall"] == pytest.approx(2 / 3)
    assert res["n_pred_matched"] == 3 and res["n_false_positive"] == 1
    assert res["precision"] == pytest.approx(3 / 4)
    assert (res["n_ref_measurable"], res["n_detected_measurable"]) == (2, 1)
    assert res["recall_measurable"] == pytest.approx(0.5)
    assert (res["n_ref_small"], res["n_detected_small"], res["recall_small"]) == (1, 1, 1.0)
    diameters = sorted(les["longest_axial_diameter_mm"] for les in res["ref_lesions"])
    assert diameters == pytest.approx([6.0, 14.0, 16.0], abs=0.5)  # within one pixel (0.5 mm)


def test_26_connectivity_joins_diagonal_voxels():
    m = np.zeros((3, 3, 3), dtype=bool)
    m[0, 0, 0] = m[1, 1, 1] = True
    assert connected_lesions(m)[1] == 1
    assert connected_lesions(m, connectivity=6)[1] == 2
    res = lesion_detection(m, m, (1, 1, 1))
    assert res["n_ref"] == 1 and res["n_pred"] == 1


def test_empty_policy():
    empty = np.zeros((4, 8, 8), dtype=bool)
    one = empty.copy()
    one[1, 2:4, 2:4] = True
    both = lesion_detection(empty, empty, SPACING)
    assert (both["precision"], both["recall"], both["n_ref"], both["n_pred"]) == (1.0, 1.0, 0, 0)
    assert math.isnan(both["recall_measurable"]) and math.isnan(both["recall_small"])
    only_pred = lesion_detection(one, empty, SPACING)
    assert only_pred["precision"] == 0.0 and math.isnan(only_pred["recall"])
    assert only_pred["n_false_positive"] == 1
    only_ref = lesion_detection(empty, one, SPACING)
    assert only_ref["recall"] == 0.0 and math.isnan(only_ref["precision"])
    assert only_ref["recall_small"] == 0.0


def test_contour_points_of_one_pixel():
    pts = contour_points(np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool))
    assert sorted(map(tuple, pts.tolist())) == [(0.5, 1.0), (1.0, 0.5), (1.0, 1.5), (1.5, 1.0)]


def test_axial_diameters_rectangle_and_single_voxel():
    m = np.zeros((3, 20, 20), dtype=bool)
    m[1, 2:12, 4:8] = True  # 10 rows x 4 cols on slice 1
    m[2, 5, 5] = True
    d = axial_diameters(m, (3.0, 1.0, 2.0))
    assert d.slice_index == 1
    # contour points run along edge midpoints: 10 rows (10 mm) by 4 cols (8 mm); the farthest
    # pair spans 9.5 rows/4 cols or 10 rows/3 cols, both short of the 12.8 mm rectangle diagonal
    assert d.longest_mm == pytest.approx(max(np.hypot(9.0 + 1.0, 3 * 2.0), np.hypot(9.0, 4 * 2.0)), abs=1e-9)
    assert d.endpoints_zyx[:, 0].tolist() == [1.0, 1.0]
    # the short axis is perpendicular to the long one (in mm) and no longer than it
    sp = np.array([3.0, 1.0, 2.0])
    long_vec = (d.endpoints_zyx[1] - d.endpoints_zyx[0]) * sp
    short_vec = (d.short_endpoints_zyx[1] - d.short_endpoints_zyx[0]) * sp
    assert np.dot(long_vec, short_vec) == pytest.approx(0.0, abs=1e-9)
    assert np.linalg.norm(short_vec) == pytest.approx(d.short_axis_mm)
    assert 0 < d.short_axis_mm <= d.longest_mm
    single = np.zeros((1, 3, 3), dtype=bool)
    single[0, 1, 1] = True
    assert longest_axial_diameter_mm(single, (5.0, 0.7, 0.7)) == pytest.approx(0.7)
    assert axial_diameters(np.zeros((2, 2, 2), dtype=bool), (1, 1, 1)) is None


def test_ellipse_long_and_short_axis_with_anisotropic_pixels():
    """Ellipse with semi-axes 12 mm (rows) and 7 mm (columns) on 0.8 x 0.6 mm pixels."""
    sy, sx = 0.8, 0.6
    yy, xx = np.mgrid[:60, :60]
    m = (((yy - 30) * sy / 12.0) ** 2 + ((xx - 30) * sx / 7.0) ** 2 <= 1)[None]
    d = axial_diameters(m, (1.0, sy, sx))
    assert d.longest_mm == pytest.approx(24.0, abs=max(sy, sx))
    assert d.short_axis_mm == pytest.approx(14.0, abs=max(sy, sx))
