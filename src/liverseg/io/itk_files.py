"""Single-file volume formats through SimpleITK: NIfTI, NRRD, MetaImage (MHA/MHD).

ITK's NIfTI reader silently returns garbage for truncated files (it reads what is there), so
NIfTI files are checked for completeness first: uncompressed files against the size their header
announces, gzip files by decompressing the stream once (zlib checks the length and CRC).
NIfTI files whose sform/qform is not orthonormal (ITK refuses them) are read with nibabel and
the nearest orthonormal direction, with a WARNING giving the deviation.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import InputError, OutputError
from liverseg.io.volume import Volume
from liverseg.utils import atomic_path

__all__ = ["ITK_READ_SUFFIXES", "ITK_WRITE_SUFFIXES", "read_itk_file", "suffix_of", "write_itk_file"]

log = logging.getLogger(__name__)

ITK_READ_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: .mhd/.nhdr write a second (data) file, which cannot be made atomic; use .mha/.nrrd instead.
ITK_WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
_CHUNK = 16 * 1024 * 1024


def suffix_of(path: str | Path) -> str:
    """Lower-case format suffix, keeping ``.nii.gz`` whole (``"scan.NII.GZ"`` -> ``".nii.gz"``)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def _check_nifti_complete(path: Path) -> None:
    import nibabel as nib

    try:
        img = nib.load(str(path))  # reads the header only; voxels stay on disk
        header, offset = img.header, int(img.dataobj.offset)
    except Exception as exc:  # nibabel raises many types for corrupt headers
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path) from exc
    n_vox = int(np.prod(header.get_data_shape(), dtype=np.int64))
    expected = offset + n_vox * header.get_data_dtype().itemsize
    if suffix_of(path) == ".nii.gz":
        size = 0
        try:
            with gzip.open(path, "rb") as fh:
                while block := fh.read(_CHUNK):
                    size += len(block)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(
                f"the gzip stream is truncated or corrupt ({exc}); expected a complete .nii.gz file "
                "(re-copy or re-export it)",
                path,
            ) from exc
    else:
        size = path.stat().st_size
    if size < expected:
        raise InputError(
            f"the file is truncated: its header announces {expected} bytes of header and voxels "
            f"{tuple(header.get_data_shape())}, got {size} bytes",
            path,
        )


def _read_nifti_nibabel(path: Path) -> Volume:
    """Fallback for NIfTI files with a non-orthonormal affine (ITK refuses them)."""
    import nibabel as nib

    img = nib.load(str(path))
    if len(img.shape) != 3:
        raise InputError(f"expected a 3D volume, got a {len(img.shape)}D image of shape {img.shape}", path)
    affine = np.asarray(img.affine, dtype=float)
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]  # RAS -> LPS, columns = index axes i, j, k
    spacing_xyz = np.linalg.norm(lps, axis=0)
    u, _, vt = np.linalg.svd(lps / spacing_xyz)
    direction = u @ vt  # nearest orthonormal matrix (polar decomposition)
    deviation = float(np.abs(direction - lps / spacing_xyz).max())
    log.warning(
        "%s: the NIfTI affine is not orthonormal (max deviation %.3g); using the nearest "
        "orthonormal direction",
        path,
        deviation,
    )
    origin = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]
    array = np.asarray(img.dataobj).transpose(2, 1, 0)
    sx, sy, sz = spacing_xyz
    return Volume(array, (sz, sy, sx), origin, direction)


def read_itk_file(path: Path, *, kind: str) -> Volume:
    """Read a NIfTI/NRRD/MetaImage file (``kind`` "image" or "label" only affects messages).

    Returns the volume with the file's own dtype; raises :class:`InputError` for unreadable,
    truncated, 2D or 4D files.
    """
    import SimpleITK as sitk

    suffix = suffix_of(path)
    if suffix in (".nii", ".nii.gz"):
        _check_nifti_complete(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if "orthonormal" in str(exc) and suffix in (".nii", ".nii.gz"):
            return _read_nifti_nibabel(path)
        raise InputError(f"cannot read the {suffix} file ({_itk_reason(exc)})", path) from exc
    size = reader.GetSize()
    what = "CT image" if kind == "image" else "label map"
    if reader.GetDimension() == 2 or (len(size) == 3 and size[2] == 1 and kind == "image"):
        raise InputError(
            f"expected a 3D {what}, got a 2D image of size {size[:2]} (x, y); give a volume, a DICOM "
            "series, or a folder of slices via read_png_stack",
            path,
        )
    if reader.GetDimension() != 3:
        raise InputError(
            f"expected a 3D {what}, got a {reader.GetDimension()}D image of size {size} (x, y, z, ...); "
            "extract one 3D volume first",
            path,
        )
    if reader.GetNumberOfComponents() != 1:
        raise InputError(
            f"expected one value per voxel, got {reader.GetNumberOfComponents()} components (a vector "
            "or RGB image)",
            path,
        )
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read the voxel data ({_itk_reason(exc)})", path) from exc
    return Volume.from_sitk(image)


def _itk_reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def write_itk_file(volume: Volume, path: Path) -> Path:
    """Write ``volume`` atomically to a .nii.gz/.nii/.nrrd/.mha file (bool is stored as uint8)."""
    import SimpleITK as sitk

    suffix = suffix_of(path)
    if suffix not in ITK_WRITE_SUFFIXES:
        raise OutputError(
            f"expected an output suffix among {', '.join(ITK_WRITE_SUFFIXES)}, got {suffix or 'none'!r}",
            path,
        )
    array: Any = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = volume.with_array(array).to_sitk()
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=suffix != ".nii")
        except RuntimeError as exc:
            raise OutputError(f"cannot write the volume ({_itk_reason(exc)})", path) from exc
    return path
