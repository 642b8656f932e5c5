"""measure_lesions on analytic shapes: ellipsoid diameters/volume, sphere position on an oblique,
permuted and flipped grid, ordering, HU statistics and location."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liverseg.errors import GeometryError, InputError
from liverseg.io import Volume
from liverseg.reporting import measure_lesions, overlay_images


def _physical_grid(vol: Volume) -> np.ndarray:
    idx = np.indices(vol.shape).reshape(3, -1).T
    return vol.index_to_physical(idx).reshape(*vol.shape, 3)


def _ellipsoid(points: np.ndarray, centre, semi_axes) -> np.ndarray:
    return sum(((points[..., i] - centre[i]) / semi_axes[i]) ** 2 for i in range(3)) <= 1.0


def test_ellipsoid_diameters_and_volume_anisotropic():
    """Semi-axes (LPS x, y, z) = 9, 15, 12 mm on 0.9 x 0.7 x 2.0 mm voxels, centred on a voxel.

    Expected: longest axial diameter 30 mm (along y), short axis 18 mm, volume 4/3 pi abc.
    Diameters within one in-plane voxel (0.9 mm); volume within 2 % (voxelisation of a smooth
    surface: the inside/outside errors along the surface mostly cancel; observed ~0.3 %).
    """
    spacing = (2.0, 0.7, 0.9)
    vol = Volume(np.zeros((24, 64, 48), dtype=np.float32), spacing, (-10.0, 5.0, 100.0))
    pts = _physical_grid(vol)
    centre = vol.index_to_physical(np.array([12, 32, 24]))
    liver = _ellipsoid(pts, centre, (20, 21, 22))
    tumor = _ellipsoid(pts, centre, (9.0, 15.0, 12.0))
    labels = vol.with_array(np.where(tumor, 2, np.where(liver, 1, 0)).astype(np.uint8))
    image = vol.with_array(np.where(tumor, 30.0, 80.0).astype(np.float32))
    (lesion,) = measure_lesions(image, labels)
    assert lesion["id"] == 1
    assert lesion["longest_axial_diameter_mm"] == pytest.approx(30.0, abs=0.9)
    assert lesion["short_axis_mm"] == pytest.approx(18.0, abs=0.9)
    assert lesion["volume_ml"] == pytest.approx(4 / 3 * math.pi * 9 * 15 * 12 / 1000, rel=0.02)
    assert lesion["recist_measurable"] is True
    # slices 11 and 13 cut the ellipse at 98.6 % of its size: pixelation may pick either
    assert abs(lesion["largest_slice"] - 12) <= 1 and lesion["slice_range"] == [
        12 - 6,
        12 + 6,
    ]  # poles at +-12 mm = 6 slices
    assert lesion["centroid_voxel_zyx"] == pytest.approx([12, 32, 24], abs=0.01)  # float ties on the boundary
    assert lesion["centroid_lps_mm"] == pytest.approx(centre.tolist(), abs=0.01)
    assert (lesion["mean_hu"], lesion["std_hu"]) == (30.0, 0.0)
    ends = np.asarray(lesion["diameter_endpoints_voxel"])
    assert ends[:, 0].tolist() == [lesion["largest_slice"]] * 2
    p = vol.index_to_physical(ends)
    assert np.linalg.norm(p[1] - p[0]) == pytest.approx(lesion["longest_axial_diameter_mm"], abs=0.01)
    # long axis runs along y (rows): the line is much longer in rows than in columns
    assert abs(ends[1, 1] - ends[0, 1]) * 0.7 > 3 * abs(ends[1, 2] - ends[0, 2]) * 0.9


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.mark.parametrize("deg", [0.0, 12.0], ids=["permuted-flipped", "oblique"])
def test_sphere_position_on_a_non_canonical_grid(deg):
    """Array axis 0 runs to the patient's right, axis 1 superior, axis 2 anterior (flips, a
    permutation and optionally a 12 degree in-plane rotation). The sphere (r = 10 mm) centred
    at a known LPS point must be found there, with slice numbers along input axis 1."""
    # columns = LPS directions of ITK axes x (array 2), y (array 1), z (array 0)
    direction = _rot_z(deg) @ np.array([[0.0, 0, -1], [-1, 0, 0], [0, 1, 0]])
    spacing = (1.3, 1.5, 1.2)  # (array 0, 1, 2)
    shape = (84, 60, 80)
    probe = Volume(np.zeros(shape, dtype=np.float32), spacing, (0, 0, 0), direction)
    centre_idx = (np.asarray(shape) - 1) / 2
    origin = -probe.index_to_physical(centre_idx)  # volume centre at LPS (0, 0, 0)
    vol = Volume(np.zeros(shape, dtype=np.float32), spacing, origin, direction)
    pts = _physical_grid(vol)
    lesion_centre = np.array([12.3, -4.1, 14.7])  # left of, and above, the liver centre
    liver_centre = np.array([-10.0, 0.0, 0.0])
    liver = _ellipsoid(pts, liver_centre, (40, 30, 30))
    tumor = _ellipsoid(pts, lesion_centre, (10, 10, 10))
    labels = vol.with_array(np.where(tumor, 2, np.where(liver, 1, 0)).astype(np.uint8))
    image = vol.with_array(np.where(tumor, 20.0, 70.0).astype(np.float32))
    (lesion,) = measure_lesions(image, labels)
    assert lesion["centroid_lps_mm"] == pytest.approx(lesion_centre.tolist(), abs=0.3)
    back = vol.index_to_physical(np.asarray(lesion["centroid_voxel_zyx"]))
    assert back == pytest.approx(lesion["centroid_lps_mm"], abs=0.01)
    assert lesion["longest_axial_diameter_mm"] == pytest.approx(20.0, abs=1.5)
    assert lesion["short_axis_mm"] == pytest.approx(20.0, abs=1.5)
    assert lesion["volume_ml"] == pytest.approx(4 / 3 * math.pi * 1000 / 1000, rel=0.03)
    assert lesion["location"]["side"] == "left" and lesion["location"]["level"] == "superior"
    # slices count along input axis 1 (the axial axis here)
    on_axis1 = np.flatnonzero(tumor.any(axis=(0, 2)))
    assert lesion["slice_range"] == [int(on_axis1[0]), int(on_axis1[-1])]
    ends = np.asarray(lesion["diameter_endpoints_voxel"])
    assert ends[:, 1].tolist() == [lesion["largest_slice"]] * 2
    p = vol.index_to_physical(ends)
    assert abs(p[1, 2] - p[0, 2]) < 1e-6  # the diameter lies in an axial plane (constant LPS z)
    assert np.linalg.norm(p[1] - p[0]) == pytest.approx(lesion["longest_axial_diameter_mm"], abs=0.01)
    # pictures are drawn on the canonical grid from these input-grid coordinates
    pictures = overlay_images(
        image, labels, {"lesions": [lesion], "liver_centroid_lps_mm": liver_centre.tolist()}
    )
    assert [name for name, _ in pictures] == ["overview.png", "lesion_01.png"]
    assert all(png.startswith(b"\x89PNG") for _, png in pictures)


def test_two_lesions_sorted_by_size_with_hu_and_location():
    vol = Volume(np.zeros((20, 60, 60), dtype=np.float32), (2.0, 1.0, 1.0))
    labels = np.zeros(vol.shape, dtype=np.uint8)
    labels[2:18, 5:55, 5:55] = 1
    labels[4:6, 10:13, 40:43] = 2  # small (18 voxels), on the patient's left (+x = high column), inferior
    labels[12:16, 30:40, 10:20] = 2  # large (400 voxels), right, superior
    hu = np.full(vol.shape, 60.0, dtype=np.float32)
    hu[12:16, 30:40, 10:20] = np.linspace(0, 100, 400).reshape(4, 10, 10)
    lesions = measure_lesions(vol.with_array(hu), vol.with_array(labels))
    assert [les["id"] for les in lesions] == [1, 2]
    big, small = lesions
    assert big["volume_ml"] == pytest.approx(400 * 2 / 1000) and small["volume_ml"] == pytest.approx(
        18 * 2 / 1000
    )
    assert big["mean_hu"] == pytest.approx(50.0, abs=0.05)
    assert big["std_hu"] == pytest.approx(np.linspace(0, 100, 400).std(), abs=0.05)
    # the body fills the field of view: midline at column 29.5; the big lesion's centre is column 14.5
    assert big["location"] == {
        "side": "right",
        "level": "superior",
        "midline_offset_mm": -15.0,
        "description": "patient's right, 15 mm from the midline, superior third of the liver",
    }
    assert small["location"]["side"] == "left" and small["location"]["level"] == "inferior"
    assert (
        small["location"]["description"]
        == "patient's left, 12 mm from the midline, inferior third of the liver"
    )
    # slice numbers count from the head down (NIfTI-like input): canonical slices 12..15 of 20
    assert big["slice_numbers"] == [5, 8] and big["slice_range"] == [12, 15]
    assert big["largest_slice_number"] == 20 - big["largest_slice"]
    assert big["largest_slice_z_mm"] == pytest.approx(2.0 * big["largest_slice"])
    assert small["recist_measurable"] is False and big["recist_measurable"] is True


def test_no_tumor_and_bad_input():
    vol = Volume(np.zeros((4, 8, 8), dtype=np.float32))
    labels = np.zeros(vol.shape, dtype=np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    assert measure_lesions(vol, vol.with_array(labels)) == []
    with pytest.raises(InputError, match=r"values 0 .*got dtype uint8 with values in \[0, 7\]"):
        measure_lesions(vol, vol.with_array(labels * 7))
    other = Volume(np.zeros((4, 8, 8), dtype=np.uint8), (1.0, 1.0, 2.0))
    with pytest.raises(GeometryError, match="grid does not match"):
        measure_lesions(vol, other)
