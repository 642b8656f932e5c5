"""Hostile and faulty volume files: non-finite voxels, impossible geometry, decompression bombs.

Every reader must refuse (one clear line naming the file) rather than silently change values or
geometry, and sizes are checked from the header before any voxel is decoded.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from liverseg.errors import InputError
from liverseg.io import Volume, read_volume, write_volume
from liverseg.io import limits as io_limits

# byte offsets of NIfTI-1 header fields (nifti1.h)
_PIXDIM, _QFORM_CODE, _SFORM_CODE, _QUATERN, _SROW = 76, 252, 254, 256, 280


def _nifti_bytes(arr: np.ndarray, affine: np.ndarray | None = None) -> bytearray:
    """An uncompressed NIfTI-1 file of ``arr`` (nibabel index order x, y, z) as editable bytes."""
    img = nib.Nifti1Image(arr, np.diag([0.8, 0.8, 2.5, 1.0]) if affine is None else affine)
    return bytearray(img.to_bytes())


def _put(raw: bytearray, offset: int, fmt: str, *values: float) -> None:
    struct.pack_into("<" + fmt, raw, offset, *values)


def _save(raw: bytes, path: Path) -> Path:
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1) if path.name.endswith(".gz") else raw)
    return path


def _ct(shape=(6, 7, 8)) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 300, shape).astype(np.float32)


# ---------------------------------------------------------------------------------- non-finite
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nifti_non_finite_voxels_are_refused_not_read_as_zero(tmp_path, suffix, bad):
    arr = _ct()
    arr[1, 2, 3] = bad
    path = _save(_nifti_bytes(arr), tmp_path / f"ct{suffix}")
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).any()  # what ITK does
    for kind in ("image", "label"):
        with pytest.raises(InputError, match=r"1 NaN/infinite voxel") as err:
            read_volume(path, kind=kind)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_nifti_infinite_scale_factor_is_refused(tmp_path):
    img = nib.Nifti1Image(np.ones((4, 5, 6), np.int16), np.eye(4))
    raw = bytearray(img.to_bytes())
    _put(raw, 112, "f", np.inf)  # scl_slope
    path = _save(raw, tmp_path / "scaled.nii")
    with pytest.raises(InputError, match="scl_slope"):
        read_volume(path)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_nrrd_and_metaimage_non_finite_voxels_are_refused(tmp_path, suffix):
    arr = _ct()
    arr[0, 0, 0] = np.nan
    arr[5, 6, 7] = np.inf
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    with pytest.raises(InputError, match=r"2 NaN/infinite voxel"):
        read_volume(path)


def _dicom_series(folder: Path, slope: str | None = None) -> Path:
    import pydicom

    from _helpers_dicom import write_volume_as_dicom

    write_volume_as_dicom(Volume(np.full((3, 8, 8), 40.0, np.float32)), folder)
    if slope is not None:
        for path in folder.iterdir():
            ds = pydicom.dcmread(path)
            with pytest.warns(UserWarning, match="Invalid value for VR DS"):
                ds["RescaleSlope"].value = slope
            ds.save_as(path)
    return folder


def test_dicom_series_with_non_finite_rescale_is_refused(tmp_path):
    folder = _dicom_series(tmp_path / "series", slope="NaN")
    with pytest.raises(InputError, match="NaN/infinite"):
        read_volume(folder)


# ---------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(
    "pixdim", [(0.0, 0.8, 2.5), (-0.8, 0.8, 2.5), (np.nan, 0.8, 2.5), (0.8, 0.8, np.inf)]
)
def test_nifti_zero_negative_or_non_finite_spacing_is_refused(tmp_path, pixdim):
    raw = _nifti_bytes(_ct())
    _put(raw, _PIXDIM + 4, "3f", *pixdim)
    path = _save(raw, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match=r"spacing.*must be positive") as err:
        read_volume(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "srow",
    [
        [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],  # a zero column
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]],  # rank 2
        [[np.nan, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
    ],
)
def test_nifti_singular_or_non_finite_affine_is_refused(tmp_path, srow):
    raw = _nifti_bytes(_ct())
    _put(raw, _QFORM_CODE, "h", 0)
    _put(raw, _SFORM_CODE, "h", 1)
    _put(raw, _SROW, "12f", *np.asarray(srow, float).reshape(-1))
    path = _save(raw, tmp_path / "ct.nii.gz")
    with pytest.raises(InputError, match=r"affine .*(singular|finite)") as err:
        read_volume(path)
    assert str(path) in str(err.value)


def test_nifti_strongly_sheared_affine_is_refused(tmp_path):
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[0, 2] = 1.0  # 22 degrees of shear: no orthonormal grid is close to it
    path = _save(_nifti_bytes(_ct(), affine), tmp_path / "shear.nii")
    with pytest.raises(InputError, match="not orthonormal"):
        read_volume(path)


def test_nifti_slightly_sheared_affine_falls_back_with_a_report_warning(tmp_path):
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[0, 1] = 0.004  # below the documented tolerance: nearest orthonormal direction, warned
    path = _save(_nifti_bytes(_ct(), affine), tmp_path / "shear.nii")
    vol = read_volume(path)
    assert any("not orthonormal" in w for w in vol.metadata["warnings"])


@pytest.mark.parametrize(
    "old, new",
    [
        (b"ElementSpacing = 1 1 1", b"ElementSpacing = 0 1 1"),
        (b"ElementSpacing = 1 1 1", b"ElementSpacing = -1 1 1"),
        (b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 0 0 0 0 1 0 0 0 1"),
        (b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 1 0 1 1 0 0 0 1"),
    ],
)
def test_metaimage_impossible_geometry_is_refused_naming_the_file(tmp_path, old, new):
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(_ct().astype(np.int16)), str(path))
    raw = path.read_bytes()
    assert old in raw
    path.write_bytes(raw.replace(old, new))
    with pytest.raises(InputError, match=r"(spacing|direction)") as err:
        read_volume(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------------- sizes
def _gzip_zeros_member(nbytes: int) -> bytes:
    """One gzip member holding ``nbytes`` zero bytes (gzip files may concatenate members)."""
    return gzip.compress(bytes(nbytes), compresslevel=9)


def _nifti_gz_bomb(path: Path, shape: tuple[int, int, int], data_bytes: int) -> Path:
    """A small .nii.gz whose header announces ``shape`` (int16) followed by ``data_bytes`` zeros."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr.set_zooms((0.8, 0.8, 2.5))
    hdr["vox_offset"] = 352
    head = hdr.binaryblock + b"\0" * 4
    block = 16 * 1024 * 1024
    member = _gzip_zeros_member(block)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(head))
        for _ in range(data_bytes // block):
            fh.write(member)
        fh.write(gzip.compress(bytes(data_bytes % block)))
    return path


def test_gzip_bomb_is_refused_from_its_header_in_bounded_memory(tmp_path):
    """A ~2 MB file announcing 1024^3 voxels (2 GiB int16, 4 GiB as float32): refused from the
    header, in a process that may not use more than 1.5 GiB of address space."""
    path = _nifti_gz_bomb(tmp_path / "bomb.nii.gz", (1024, 1024, 1024), 2 * 1024**3)
    assert path.stat().st_size < 4 * 1024**2
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024**2, 1536 * 1024**2))\n"
        "from liverseg.errors import InputError\n"
        "from liverseg.io import read_volume\n"
        "try:\n"
        "    read_volume(sys.argv[1])\n"
        "except InputError as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("REFUSED") and "too large" in res.stdout, res.stdout + res.stderr[-2000:]
    assert "(1024, 1024, 1024)" in res.stdout


def test_trailing_gzip_data_is_not_decompressed(tmp_path, monkeypatch):
    """Decompression stops once the voxels the header announces are read (plus one block)."""
    path = _nifti_gz_bomb(tmp_path / "tail.nii.gz", (8, 8, 8), 512 * 1024**2)
    seen = {"bytes": 0}
    real_read = gzip.GzipFile.read

    def counting_read(self, size=-1):
        data = real_read(self, size)
        seen["bytes"] += len(data)
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counting_read)
    read_volume(path, kind="label")
    assert seen["bytes"] < 64 * 1024**2


def test_metaimage_size_is_checked_from_the_header(tmp_path, monkeypatch):
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(_ct().astype(np.int16)), str(path))
    monkeypatch.setattr(io_limits, "MAX_VOXELS", 100)

    def no_decoding(self):
        raise AssertionError("voxels were decoded before the size check")

    monkeypatch.setattr(sitk.ImageFileReader, "Execute", no_decoding)
    with pytest.raises(InputError, match=r"too large.*\(6, 7, 8\)"):
        read_volume(path)


def test_dicom_series_size_is_checked_before_pixels(tmp_path, monkeypatch):
    from liverseg.io import dicom_series

    folder = _dicom_series(tmp_path / "series")
    monkeypatch.setattr(io_limits, "MAX_VOXELS", 100)

    def no_pixels(*_a, **_k):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(dicom_series, "_read_pixels", no_pixels)
    with pytest.raises(InputError, match=r"too large.*\(3, 8, 8\)"):
        read_volume(folder)


def test_valid_files_still_read_identically(tmp_path):
    vol = Volume(_ct(), (2.5, 0.8, 0.8), (1.0, 2.0, 3.0))
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        back = read_volume(write_volume(vol, tmp_path / f"ok{suffix}"))
        np.testing.assert_array_equal(back.array, vol.array)
        assert back.metadata.get("warnings", []) == []
