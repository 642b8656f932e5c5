"""LabelMap: values checked once, nearest-neighbour by type, exact geometry; geometry code only in io."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import liverseg
from liverseg.errors import ConfigError, GeometryError, InputError
from liverseg.io import Grid, LabelMap, Volume, read_grid, read_volume, to_canonical, write_volume
from liverseg.preprocessing import resample_to_shape, resample_to_spacing

SPACING = (2.5, 0.7, 0.8)
ORIGIN = (-120.25, 33.125, 7.5)


def _oblique() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rz @ np.diag([1.0, -1.0, -1.0])  # rotated and two axes flipped


def _labels() -> np.ndarray:
    lab = np.zeros((6, 9, 8), np.uint8)
    lab[1:5, 2:8, 1:7] = 1
    lab[2:4, 4:6, 3:5] = 2
    return lab


# ------------------------------------------------------------------ construction checks
def test_labelmap_refuses_fractional_floats_with_a_clear_message() -> None:
    arr = np.zeros((2, 3, 4), np.float32)
    arr[0, 0, 0] = 0.4
    with pytest.raises(InputError) as err:
        LabelMap(arr)
    msg = str(err.value)
    assert "expected a label map of integers {0 (background), 1 (liver), 2 (tumor)}" in msg
    assert "float32" in msg and "0.4" in msg


def test_labelmap_refuses_values_outside_the_set_naming_them() -> None:
    arr = np.zeros((2, 3, 4), np.int16)
    arr[1, 1, 1], arr[1, 2, 3] = 3, -1
    with pytest.raises(InputError) as err:
        LabelMap(arr, metadata={"source": "case7.nii.gz"})
    msg = str(err.value)
    assert msg.startswith(
        "case7.nii.gz: expected a label map with values in {0 (background), 1 (liver), 2 (tumor)}"
    )
    assert "got values {-1, 0, 3}" in msg


def test_labelmap_refuses_wrong_ndim_and_non_numeric_dtype() -> None:
    with pytest.raises(InputError, match=r"expected a 3D volume \(z, y, x\), got an array with 2 dimension"):
        LabelMap(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match=r"expected a 3D volume .* 4 dimension"):
        LabelMap(np.zeros((1, 2, 3, 4), np.uint8))
    with pytest.raises(InputError, match="got dtype <U1"):
        LabelMap(np.full((2, 2, 2), "a"))


def test_labelmap_stores_uint8_from_integral_inputs_and_keeps_grid() -> None:
    for arr in (_labels().astype(np.int64), _labels().astype(np.float64), _labels() > 0):
        lab = LabelMap(arr, SPACING, ORIGIN, _oblique())
        assert lab.array.dtype == np.uint8
        assert np.array_equal(lab.array, np.asarray(arr).astype(np.uint8))
        assert lab.grid.same_as(Grid(arr.shape, SPACING, ORIGIN, _oblique()), atol=0.0)
    binary = LabelMap(np.where(_labels() > 0, 255, 0), allowed=(0, 1, 2, 255))
    assert binary.values == [0, 255]


def test_labelmap_on_takes_the_grid_and_with_array_gives_a_plain_volume() -> None:
    image = Volume(np.zeros((6, 9, 8), np.float32), SPACING, ORIGIN, _oblique())
    lab = LabelMap.on(image, _labels())
    assert isinstance(lab, LabelMap) and lab.same_grid(image)
    hu = lab.with_array(np.full(lab.shape, -1000.0, np.float32))
    assert type(hu) is Volume  # an image on the label map's grid is not a label map
    with pytest.raises(InputError, match=r"shape \(6, 9, 8\)"):
        LabelMap.on(image, np.zeros((6, 9, 7), np.uint8))


# ------------------------------------------------------------------ interpolation by type
def test_resampling_a_labelmap_is_nearest_neighbour_and_keeps_the_label_set() -> None:
    # 0 next to 2 with no 1 in between: linear interpolation would create 1s (and a float array)
    arr = np.zeros((4, 6, 6), np.uint8)
    arr[:, :, 3:] = 2
    lab = LabelMap(arr, (2.0, 1.0, 1.0), ORIGIN)
    up, info = resample_to_spacing(lab, (1.0, 0.3, 0.3))
    assert isinstance(up, LabelMap) and up.array.dtype == np.uint8
    assert up.values == [0, 2]
    linear = resample_to_spacing(Volume(arr.astype(np.float32), (2.0, 1.0, 1.0), ORIGIN), (1.0, 0.3, 0.3))[0]
    assert np.any((linear.array > 0.5) & (linear.array < 1.5))  # what the type prevents
    back = info.invert_volume(up)
    assert isinstance(back, LabelMap) and back.same_grid(lab)
    assert np.array_equal(back.array, arr)
    small, _ = resample_to_shape(LabelMap(_labels(), SPACING), (None, 5, 5))
    assert isinstance(small, LabelMap) and set(small.values) <= {0, 1, 2}


def test_a_labelmap_refuses_an_interpolating_order() -> None:
    lab = LabelMap(_labels(), SPACING)
    with pytest.raises(
        ConfigError, match=r"a LabelMap is resampled nearest-neighbour \(order 0\).*got order=1"
    ):
        resample_to_spacing(lab, (1.0, 1.0, 1.0), order=1)
    assert resample_to_spacing(lab, (1.0, 1.0, 1.0), order=0)[0].values == [0, 1, 2]


def test_reorientation_keeps_the_labelmap_type_and_grid() -> None:
    lab = LabelMap(_labels(), SPACING, ORIGIN, _oblique())
    canon, reo = to_canonical(lab)
    assert isinstance(canon, LabelMap)
    back = reo.to_original(canon)
    assert isinstance(back, LabelMap) and back.grid.same_as(lab.grid, atol=1e-9)
    assert np.array_equal(back.array, lab.array)


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_write_read_round_trip_keeps_geometry(tmp_path: Path, suffix: str) -> None:
    lab = LabelMap(_labels().astype(np.int64), SPACING, ORIGIN, _oblique())
    path = write_volume(lab, tmp_path / f"lab{suffix}")
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt8
    back = read_volume(path, kind="label")
    header = read_grid(path)
    assert isinstance(back, LabelMap) and np.array_equal(back.array, lab.array)
    # NRRD/MetaImage store the geometry as decimal doubles; NIfTI's sform is float32
    atol = 1e-5 if suffix == ".nii.gz" else 1e-12
    for got in (back.grid, header):
        assert got.shape == lab.shape
        assert np.allclose(got.spacing, lab.spacing, rtol=0, atol=atol)
        assert np.allclose(got.origin, lab.origin, rtol=0, atol=atol)
        assert np.allclose(got.direction, lab.direction, rtol=0, atol=atol)


def test_read_grid_reads_headers_and_grids_compare_with_both_named(tmp_path: Path) -> None:
    a = write_volume(LabelMap(_labels(), SPACING, ORIGIN), tmp_path / "a.nii.gz")
    b = write_volume(LabelMap(_labels(), (2.5, 0.7, 0.9), ORIGIN), tmp_path / "b.nii.gz")
    ga, gb = read_grid(a), read_grid(b)
    assert ga.same_as(Grid.from_geometry(ga.geometry()))
    with pytest.raises(
        GeometryError, match=r"prediction grid does not match the reference grid: reference .*0\.8"
    ):
        ga.require_same(gb, "prediction", reference="reference")
    with pytest.raises(InputError, match="does not exist"):
        read_grid(tmp_path / "missing.nii.gz")


def test_grid_to_sitk_builds_scalar_and_vector_images_on_the_grid() -> None:
    grid = Grid((6, 9, 8), SPACING, ORIGIN, _oblique())
    probs = np.random.default_rng(0).random((3, 6, 9, 8)).astype(np.float32)
    img = grid.to_sitk(probs)
    assert img.GetNumberOfComponentsPerPixel() == 3 and img.GetSize() == (8, 9, 6)
    assert Grid.from_itk_header(img).same_as(grid, atol=1e-12)
    assert np.array_equal(sitk.GetArrayFromImage(img)[..., 1], probs[1])
    with pytest.raises(GeometryError, match=r"expected an array of shape \(6, 9, 8\)"):
        grid.to_sitk(np.zeros((6, 9, 7)))


# ------------------------------------------------------------------ geometry stays in io
#: SimpleITK calls that build or change a grid; only these io modules may make them.
_GEOMETRY_CALLS = {
    "GetImageFromArray",
    "GetImageViewFromArray",
    "SetSpacing",
    "SetOrigin",
    "SetDirection",
    "CopyInformation",
    "ReadImageInformation",
    "Resample",
    "ResampleImageFilter",
}
#: volume.py: Grid.to_sitk (the one array -> image bridge); itk_files.py: header reading.
_ALLOWED = {"io/volume.py", "io/itk_files.py"}


def test_no_geometry_code_outside_io_volume() -> None:
    root = Path(liverseg.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in _ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in _GEOMETRY_CALLS:
                offenders.append(f"{rel}:{node.lineno} {node.attr}")
    assert offenders == [], "build SimpleITK images with Volume/Grid.to_sitk, read headers with read_grid"
