"""Surface metrics: hand-computed cases, the empty policy, analytic spheres, method agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from liverseg.metrics import assd, hausdorff, hd95, mssd, surface_distances, surface_metrics, surface_voxels


def test_single_voxels_anisotropic():
    pred = np.zeros((8, 8, 8), dtype=bool)
    ref = np.zeros_like(pred)
    pred[2, 2, 2] = True
    ref[4, 2, 5] = True  # 2 slices (2.5 mm) and 3 columns (0.5 mm) away
    expected = np.hypot(2 * 2.5, 3 * 0.5)
    sp = (2.5, 0.7, 0.5)
    assert assd(pred, ref, sp) == pytest.approx(expected)
    assert mssd(pred, ref, sp) == pytest.approx(expected)
    assert hausdorff(pred, ref, sp) == pytest.approx(expected)
    assert hd95(pred, ref, sp) == pytest.approx(expected)


def test_cube_with_one_bump_by_hand():
    """3x3x3 cube vs the same cube plus one voxel on a face (1 mm isotropic).

    Surfaces: 26 voxels each (the bumped face centre becomes interior in the prediction and the
    bump is new). Directed distances: 25 zeros and one 1 mm in each direction, so ASSD = 2/52,
    MSSD = 1, and both 95th percentiles are 0 (linear interpolation between two zeros).
    """
    ref = np.zeros((7, 7, 7), dtype=bool)
    ref[2:5, 2:5, 2:5] = True
    pred = ref.copy()
    pred[3, 3, 5] = True
    d_pr, d_rp = surface_distances(pred, ref)
    assert d_pr.size == 26 and d_rp.size == 26
    assert sorted(d_pr)[-2:] == [0.0, 1.0] and sorted(d_rp)[-2:] == [0.0, 1.0]
    m = surface_metrics(pred, ref)
    assert m["assd"] == pytest.approx(2 / 52)
    assert m["mssd"] == pytest.approx(1.0)
    assert m["hd95"] == pytest.approx(0.0)


def test_surface_voxels_of_a_cube():
    cube = np.zeros((5, 5, 5), dtype=bool)
    cube[1:4, 1:4, 1:4] = True
    surf = surface_voxels(cube)
    assert surf.sum() == 26 and not surf[2, 2, 2]
    # voxels on the array border count as surface (outside the array is background)
    assert surface_voxels(np.ones((3, 3, 3), dtype=bool)).sum() == 26


def test_empty_policy():
    empty = np.zeros((4, 4, 4), dtype=bool)
    one = empty.copy()
    one[1, 1, 1] = True
    assert surface_metrics(empty, empty) == {"assd": 0.0, "mssd": 0.0, "hd95": 0.0}
    for p, r in ((one, empty), (empty, one)):
        assert surface_metrics(p, r, (2.0, 1.0, 1.0)) == {"assd": np.inf, "mssd": np.inf, "hd95": np.inf}
    d_pr, d_rp = surface_distances(one, empty)
    assert d_pr.tolist() == [np.inf] and d_rp.size == 0


def _sphere(shape, spacing, centre_mm, radius_mm):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm, strict=True)) <= radius_mm**2


def test_concentric_spheres_anisotropic():
    """Radii 20 and 14 mm: every surface distance is the radius difference, 6 mm, up to the
    voxelisation of both surfaces (surface voxel centres lie up to one voxel inside the true
    sphere). Tolerances: ASSD within half the largest spacing (errors of both surfaces mostly
    cancel on average), HD and HD95 within the largest spacing (2 mm)."""
    spacing = (2.0, 0.8, 1.1)
    shape = (28, 64, 48)
    centre = (27.0, 25.6, 26.4)
    ref = _sphere(shape, spacing, centre, 20.0)
    pred = _sphere(shape, spacing, centre, 14.0)
    m = surface_metrics(pred, ref, spacing)
    assert m["assd"] == pytest.approx(6.0, abs=1.0)
    assert m["mssd"] == pytest.approx(6.0, abs=2.0)
    assert m["hd95"] == pytest.approx(6.0, abs=2.0)
    assert m["hd95"] <= m["mssd"]
    # symmetric
    assert surface_metrics(ref, pred, spacing)["assd"] == pytest.approx(m["assd"])
    # ignoring the anisotropy would be badly wrong: proves spacing is used per axis
    assert abs(surface_metrics(pred, ref, (1.0, 1.0, 1.0))["assd"] - 6.0) > 1.0


def _blob(rng, shape, thr=0.05):
    return ndimage.gaussian_filter(rng.normal(size=shape), 2.0) > thr


def test_kdtree_and_dense_edt_agree_and_cropping_is_exact():
    rng = np.random.default_rng(7)
    sp = (2.5, 0.8, 1.1)
    for _ in range(3):
        p, r = _blob(rng, (20, 30, 26)), _blob(rng, (20, 30, 26))
        a = surface_distances(p, r, sp, method="kdtree")
        b = surface_distances(p, r, sp, method="edt")
        np.testing.assert_allclose(np.sort(a[0]), np.sort(b[0]), atol=1e-9)
        np.testing.assert_allclose(np.sort(a[1]), np.sort(b[1]), atol=1e-9)
        # padding the volume (so the crop box moves) changes nothing -- except that blobs
        # touching the old border get closed surfaces there in both cases, as before
        pp, rp = np.pad(p, 5), np.pad(r, 5)
        np.testing.assert_allclose(surface_metrics(pp, rp, sp)["assd"], surface_metrics(p, r, sp)["assd"])


def test_unknown_method():
    m = np.ones((2, 2, 2), dtype=bool)
    with pytest.raises(ValueError, match="method"):
        surface_distances(m, m, method="chamfer")
