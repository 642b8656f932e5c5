"""The Volume type: validation, affine/index mapping, canonical reorientation (exact inverse)."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import GeometryError, InputError
from liverseg.io import Volume, to_canonical


def _rot(axis: int, theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    m = np.eye(3)
    i, j = [a for a in range(3) if a != axis]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def test_rejects_non_3d_and_bad_geometry() -> None:
    with pytest.raises(InputError, match="3D"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(InputError, match="3D"):
        Volume(np.zeros((2, 3, 4, 5)))
    with pytest.raises(GeometryError, match="positive"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(GeometryError, match="orthonormal"):
        Volume(np.zeros((2, 2, 2)), direction=np.ones((3, 3)))


def test_affine_matches_simpleitk() -> None:
    d = _rot(2, 0.4) @ _rot(0, -0.2)
    v = Volume(np.zeros((3, 4, 5), np.float32), (2.5, 0.7, 0.8), (10.0, -5.0, 3.0), d)
    img = v.to_sitk()
    for idx_zyx in [(0, 0, 0), (2, 3, 4), (1, 0, 3)]:
        expected = img.TransformIndexToPhysicalPoint(tuple(int(i) for i in idx_zyx[::-1]))
        assert np.allclose(v.index_to_physical(np.array(idx_zyx)), expected)
    assert np.allclose(v.physical_to_index(v.index_to_physical(np.array([2.0, 3.0, 4.0]))), [2, 3, 4])
    back = Volume.from_sitk(img)
    assert back.same_grid(v)


@pytest.mark.parametrize(
    "direction",
    [
        np.eye(3),
        np.diag([-1.0, -1.0, 1.0]),  # RAS-like flips
        np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]),  # permuted + flipped
        np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]) @ _rot(2, 0.3),  # oblique
    ],
)
def test_canonical_is_exact_and_invertible(direction: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    arr = rng.random((4, 5, 6)).astype(np.float32)
    v = Volume(arr, (2.0, 0.7, 0.8), (10.0, -20.0, 30.0), direction)
    canon, reo = to_canonical(v)
    # canonical direction is the closest to identity: positive diagonal dominance
    assert np.all(np.diag(canon.direction) > 0.7)
    # every voxel keeps its physical position
    for idx in [(0, 0, 0), (3, 4, 5), (1, 2, 3), (2, 0, 5)]:
        p = v.index_to_physical(np.array(idx))
        ci = np.round(canon.physical_to_index(p)).astype(int)
        assert np.allclose(canon.physical_to_index(p), ci, atol=1e-6)
        assert canon.array[tuple(ci)] == v.array[idx]
    back = reo.to_original(canon.with_array(canon.array * 2))
    assert back.same_grid(v)
    assert np.array_equal(back.array, arr * 2)
    # leading channel axes are carried along
    stack = np.stack([canon.array, canon.array + 1])
    assert np.array_equal(reo.to_original_array(stack)[1], arr + 1)


def test_with_array_and_grid_checks() -> None:
    v = Volume(np.zeros((2, 3, 4)), (1, 2, 3))
    with pytest.raises(GeometryError):
        v.with_array(np.zeros((2, 3, 5)))
    other = Volume(np.zeros((2, 3, 4)), (1, 2, 3.5))
    assert not v.same_grid(other)
    with pytest.raises(GeometryError, match="label grid"):
        v.require_same_grid(other)
    assert v.voxel_volume_ml == pytest.approx(6 / 1000)
