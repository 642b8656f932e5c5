"""read_volume / write_volume: file formats, exact geometry, bad inputs, atomic output."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from liverseg.errors import InputError, OutputError
from liverseg.io import (
    LabelMap,
    Volume,
    binary_mask_to_label,
    check_label_map,
    read_volume,
    to_canonical,
    write_volume,
)


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _volume(dtype=np.float32, direction=None, seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        arr = rng.normal(0, 300, size=(5, 6, 7)).astype(dtype)
    else:
        arr = rng.integers(0, 3, size=(5, 6, 7)).astype(dtype)
    d = np.eye(3) if direction is None else direction
    return Volume(arr, (2.5, 0.75, 0.6), (-101.25, 33.5, 1200.75), d)


def _assert_same(a: Volume, b: Volume) -> None:
    assert a.array.dtype == b.array.dtype
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=1e-6)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-4)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)


OBLIQUE_FLIPPED = _rotation(0.2, -0.1, 0.3) @ np.diag([-1.0, 1.0, -1.0])


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_write_then_read_is_identical(tmp_path, suffix, dtype):
    vol = _volume(dtype, OBLIQUE_FLIPPED)
    out = write_volume(vol, tmp_path / "new" / "sub" / f"case{suffix}")
    assert out.is_file()
    back = read_volume(out, kind="label" if dtype == np.uint8 else "image")
    expected = vol if dtype == np.uint8 else vol.with_array(vol.array.astype(np.float32))
    _assert_same(expected, back)
    assert back.metadata["source"] == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary files left


def test_image_is_float32_and_label_is_uint8(tmp_path):
    path = write_volume(_volume(np.int16), tmp_path / "a.nii.gz")
    assert read_volume(path).array.dtype == np.float32
    lab = write_volume(_volume(np.int16).with_array(np.ones((5, 6, 7), np.int16)), tmp_path / "l.nii.gz")
    assert read_volume(lab, kind="label").array.dtype == np.uint8


def test_bool_labels_are_written_as_uint8(tmp_path):
    mask = _volume().with_array(np.zeros((5, 6, 7), bool))
    path = write_volume(mask, tmp_path / "m.nii.gz")
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt8


def test_oblique_flipped_nifti_canonical_round_trip(tmp_path):
    """Read an oblique, flipped NIfTI, canonicalise, map a result back, write, read: same grid."""
    vol = _volume(np.float32, OBLIQUE_FLIPPED)
    src = write_volume(vol, tmp_path / "oblique.nii.gz")
    image = read_volume(src)
    canon, reo = to_canonical(image)
    assert not reo.is_identity
    assert np.all(np.diag(canon.direction) > 0.8)  # close to identity (LPS+)
    # a voxel keeps its physical position through the canonical mapping
    idx = np.array([1, 2, 3])
    canon_idx = np.rint(canon.physical_to_index(image.index_to_physical(idx))).astype(int)
    assert canon.array[tuple(canon_idx)] == image.array[tuple(idx)]
    result = canon.with_array((canon.array > 0).astype(np.uint8))  # a "segmentation" on canon grid
    back = reo.to_original(result)
    assert back.same_grid(image)
    out = write_volume(back, tmp_path / "result.nii.gz")
    reread = read_volume(out, kind="label")
    _assert_same(back, reread)
    np.testing.assert_array_equal(reread.array, (image.array > 0).astype(np.uint8))


def test_nifti_geometry_matches_nibabel_ras(tmp_path):
    vol = _volume(np.float32, OBLIQUE_FLIPPED)
    path = write_volume(vol, tmp_path / "g.nii.gz")
    ras = nib.load(str(path)).affine
    lps_from_index = np.diag([-1, -1, 1, 1]) @ ras  # nibabel index order (x, y, z)
    xyz = np.array([3, 2, 1, 1.0])
    np.testing.assert_allclose(
        (lps_from_index @ xyz)[:3], vol.index_to_physical(np.array([1, 2, 3])), atol=1e-3
    )


def test_non_orthonormal_nifti_falls_back_with_warning(tmp_path, caplog):
    affine = np.diag([-0.7, -0.7, 2.0, 1.0])
    affine[0, 1] = 0.01  # slight shear: ITK refuses it
    path = tmp_path / "shear.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(5 * 6 * 7, dtype=np.int16).reshape(7, 6, 5).T, affine), path)
    vol = read_volume(path)
    assert vol.shape == (7, 6, 5)
    assert vol.spacing == pytest.approx((2.0, 0.7, 0.7), abs=1e-3)
    assert "not orthonormal" in caplog.text
    np.testing.assert_array_equal(vol.array, np.arange(5 * 6 * 7).reshape(7, 6, 5))


def test_truncated_and_corrupt_nifti_are_errors(tmp_path):
    good = write_volume(_volume(), tmp_path / "good.nii.gz")
    data = good.read_bytes()
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as err:
        read_volume(trunc)
    assert str(trunc) in str(err.value)
    raw = tmp_path / "raw.nii"
    raw.write_bytes(gzip.decompress(data)[:-100])
    with pytest.raises(InputError, match="truncated"):
        read_volume(raw)
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"definitely not gzip")
    with pytest.raises(InputError, match=str(junk)):
        read_volume(junk)


def test_2d_and_4d_inputs_are_errors(tmp_path):
    png = tmp_path / "slice.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    with pytest.raises(InputError, match="2D PNG picture"):
        read_volume(png)
    nii2d = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 9), np.float32), np.eye(4)), nii2d)
    with pytest.raises(InputError, match="expected a 3D CT image, got a 2D image"):
        read_volume(nii2d)
    nii4d = tmp_path / "time.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.float32), np.eye(4)), nii4d)
    with pytest.raises(InputError, match="got a 4D image"):
        read_volume(nii4d)


def test_unknown_extension_and_missing_path(tmp_path):
    odd = tmp_path / "scan.xyz"
    odd.write_bytes(b"1234")
    with pytest.raises(InputError, match=r"unknown format '\.xyz'"):
        read_volume(odd)
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tmp_path / "absent.nii.gz")
    with pytest.raises(InputError, match="expected kind"):
        read_volume(odd, kind="mask")  # type: ignore[arg-type]


def test_label_with_value_7_is_an_error_naming_values(tmp_path):
    arr = np.zeros((3, 4, 5), np.uint8)
    arr[0, 0, 0], arr[1, 1, 1] = 7, 2
    path = write_volume(Volume(arr), tmp_path / "bad.nii.gz")
    with pytest.raises(InputError, match=r"got values \{0, 2, 7\}") as err:
        read_volume(path, kind="label")
    assert str(path) in str(err.value)


def test_binary_255_masks_need_an_explicit_choice(tmp_path):
    arr = np.zeros((3, 4, 5), np.uint8)
    arr[1, 1:3, 1:3] = 255
    path = write_volume(Volume(arr), tmp_path / "mask.nii.gz")
    with pytest.raises(InputError, match="0/255 binary mask"):
        read_volume(path, kind="label")
    raw = read_volume(path, kind="label", allow_binary_255=True)
    np.testing.assert_array_equal(raw.array, arr)
    mapped = binary_mask_to_label(raw, 2)
    assert set(np.unique(mapped.array)) == {0, 2}
    check_label_map(mapped)


def test_float_label_values_are_checked():
    with pytest.raises(InputError, match=r"0\.5"):
        check_label_map(Volume(np.full((2, 2, 2), 0.5, np.float32)))
    ok = check_label_map(Volume(np.ones((2, 2, 2), np.float64)))
    assert ok.array.dtype == np.uint8


def test_unwritable_output_is_output_error_without_partial_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OutputError):
        write_volume(_volume(), blocker / "out.nii.gz")
    with pytest.raises(OutputError, match="expected an output suffix"):
        write_volume(_volume(), tmp_path / "out.png")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken(image, name, *args, **kwargs):
        Path(name).write_bytes(b"partial")
        raise RuntimeError("Exception thrown in SimpleITK WriteImage: disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    target = tmp_path / "out" / "labels.nii.gz"
    with pytest.raises(OutputError, match="disk full"):
        write_volume(_volume(), target)
    assert list(target.parent.iterdir()) == []


def test_write_label_map_stores_uint8_and_checks_values(tmp_path):
    argmax = LabelMap.on(_volume(), np.full((5, 6, 7), 2, np.int64))
    path = write_volume(argmax, tmp_path / "lab.nii.gz")
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt8
    with pytest.raises(InputError, match="values"):
        write_volume(LabelMap.on(argmax, np.full((5, 6, 7), 3, np.int64)), tmp_path / "bad.nii.gz")
    assert not (tmp_path / "bad.nii.gz").exists()
