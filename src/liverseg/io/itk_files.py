"""Single-file volume formats through SimpleITK: NIfTI, NRRD, MetaImage (MHA/MHD).

Before any voxel is decoded: NIfTI files get the raw-header and voxel checks of
:mod:`liverseg.io.nifti_check` (ITK silently repairs or hides truncation, impossible spacing and
NaN voxels); every format gets its size (from the header) and geometry checked
(:mod:`liverseg.io.limits`). Floating-point NRRD/MetaImage voxels are checked to be finite.

NIfTI files whose sform is slightly non-orthonormal (ITK refuses them; a deviation of the
normalised axes from the nearest orthonormal matrix up to :data:`MAX_SHEAR`) are read with
nibabel and that nearest orthonormal direction: a WARNING and ``metadata["warnings"]`` (which
the segmentation report carries) give the deviation. A larger shear is refused: no grid
liverseg can represent is close to it.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from liverseg.errors import InputError, OutputError
from liverseg.io.limits import check_finite, check_geometry, check_voxel_count
from liverseg.io.nifti_check import check_nifti_file
from liverseg.io.volume import Grid, Volume
from liverseg.utils import atomic_path

__all__ = [
    "ITK_READ_SUFFIXES",
    "ITK_WRITE_SUFFIXES",
    "read_grid",
    "read_itk_file",
    "suffix_of",
    "verify_itk_file",
    "write_channels",
    "write_itk_file",
]

log = logging.getLogger(__name__)

ITK_READ_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: .mhd/.nhdr write a second (data) file, which cannot be made atomic; use .mha/.nrrd instead.
ITK_WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
#: Largest deviation from orthonormal of a NIfTI affine's normalised axes read with the nearest
#: orthonormal direction (about 1 degree of shear); beyond it the file is refused.
MAX_SHEAR = 0.02
_CHUNK = 16 * 1024 * 1024


def suffix_of(path: str | Path) -> str:
    """Lower-case format suffix, keeping ``.nii.gz`` whole (``"scan.NII.GZ"`` -> ``".nii.gz"``)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def _nibabel_grid(img: Any, path: Path) -> tuple[Grid, str]:
    """Grid of a NIfTI whose sform is slightly non-orthonormal (ITK refuses it), and the warning."""
    if len(img.shape) != 3:
        raise InputError(f"expected a 3D volume, got a {len(img.shape)}D image of shape {img.shape}", path)
    affine = np.asarray(img.affine, dtype=float)
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]  # RAS -> LPS, columns = index axes i, j, k
    spacing_xyz = np.linalg.norm(lps, axis=0)
    if not np.all(np.isfinite(lps)) or np.any(spacing_xyz <= 0):
        raise InputError(f"the NIfTI affine is singular or not finite, got {affine[:3, :3].tolist()}", path)
    u, _, vt = np.linalg.svd(lps / spacing_xyz)
    direction = u @ vt  # nearest orthonormal matrix (polar decomposition)
    deviation = float(np.abs(direction - lps / spacing_xyz).max())
    if deviation > MAX_SHEAR:
        raise InputError(
            f"the NIfTI affine is not orthonormal (its axes deviate by {deviation:.3g} from the nearest "
            f"orthonormal ones, more than the {MAX_SHEAR} liverseg corrects): a sheared grid, e.g. "
            "gantry tilt; resample it onto a regular grid first",
            path,
        )
    warning = (
        f"the NIfTI affine is not orthonormal (max deviation {deviation:.3g}); the nearest orthonormal "
        "direction was used, so positions may be off by that fraction of the distance from the origin"
    )
    origin = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]
    sx, sy, sz = spacing_xyz
    return Grid(tuple(img.shape[::-1]), (sz, sy, sx), origin, direction), warning  # type: ignore[arg-type]


def _read_nifti_nibabel(path: Path) -> Volume:
    """Fallback for NIfTI files with a slightly non-orthonormal affine (ITK refuses them)."""

    img = nib.load(str(path))
    grid, warning = _nibabel_grid(img, path)
    log.warning("%s: %s", path, warning)
    array = np.asarray(img.dataobj).transpose(2, 1, 0)
    return Volume(array, grid.spacing, grid.origin, grid.direction, {"warnings": [warning]})


def _read_header(path: Path, kind: str) -> tuple[Any, Grid] | None:
    """Open ``path``'s header with ITK and check it (3D, size, geometry, one component).

    Returns the reader (voxels not read yet) and the grid, or ``None`` for a NIfTI whose sform
    ITK refuses as not orthonormal (read with nibabel instead).
    """

    suffix = suffix_of(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if "orthonormal" in str(exc) and suffix in (".nii", ".nii.gz"):
            return None
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
    check_voxel_count(size[::-1], path, f"the {suffix} header")
    check_geometry(reader.GetSpacing(), reader.GetDirection(), path, f"the {suffix} header")
    if reader.GetNumberOfComponents() != 1:
        raise InputError(
            f"expected one value per voxel, got {reader.GetNumberOfComponents()} components (a vector "
            "or RGB image)",
            path,
        )
    return reader, Grid.from_itk_header(reader)


def read_grid(path: str | Path, *, kind: str = "label") -> Grid:
    """The voxel grid of a NIfTI/NRRD/MetaImage file from its header alone (no voxel decoded).

    The same header checks as :func:`read_itk_file` (3D, size limit, geometry, one component);
    ``kind`` ("image" or "label") only affects messages.

    Raises:
        InputError: missing, unreadable, not 3D, too large or impossible geometry.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "does not exist or is not a file; expected a .nii, .nii.gz, .nrrd or .mha file", path
        )
    header = _read_header(path, kind)
    if header is None:
        return _nibabel_grid(nib.load(str(path)), path)[0]
    return header[1]


def read_itk_file(path: Path, *, kind: str) -> Volume:
    """Read a NIfTI/NRRD/MetaImage file (``kind`` "image" or "label" only affects messages).

    Returns the volume with the file's own dtype; raises :class:`InputError` for unreadable,
    truncated, 2D or 4D files.
    """
    nifti = suffix_of(path) in (".nii", ".nii.gz")
    if nifti:
        check_nifti_file(path)
    header = _read_header(path, kind)
    if header is None:
        return _read_nifti_nibabel(path)
    reader, _ = header
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read the voxel data ({_itk_reason(exc)})", path) from exc
    volume = Volume.from_sitk(image)
    if not nifti:  # NIfTI voxels were checked on the raw bytes (ITK reads NaN there as 0)
        check_finite(volume.array, path)
    return volume


def _itk_reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def verify_itk_file(tmp: Path, expected: Any, final: Path) -> None:
    """Re-read a just-written file and refuse it unless it holds exactly ``expected``.

    SimpleITK does not report failed writes (a full disk leaves a truncated ``.nii.gz`` that it
    still reads), so every written volume is read back: the gzip stream must be complete (zlib
    checks its CRC and length) and the voxels and geometry equal to what was written.

    Args:
        tmp: the written (temporary) file.
        expected: the ``SimpleITK.Image`` that was written.
        final: the destination, named in the error.
    """

    try:
        if tmp.name.lower().endswith(".gz"):
            with gzip.open(tmp, "rb") as fh:
                while fh.read(_CHUNK):
                    pass
        back = sitk.ReadImage(str(tmp))
    except (OSError, EOFError, zlib.error, RuntimeError) as exc:
        raise OutputError(
            f"the written file does not read back ({_one_line(exc)}): disk full?", final
        ) from exc
    same = (
        back.GetSize() == expected.GetSize()
        and back.GetNumberOfComponentsPerPixel() == expected.GetNumberOfComponentsPerPixel()
        and np.allclose(back.GetSpacing(), expected.GetSpacing(), rtol=1e-5)
        and np.allclose(back.GetOrigin(), expected.GetOrigin(), rtol=1e-5, atol=1e-3)
        and np.allclose(back.GetDirection(), expected.GetDirection(), atol=1e-5)
        and np.array_equal(
            sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(expected), equal_nan=True
        )
    )
    if not same:
        raise OutputError("the written file does not read back identical to the volume: disk full?", final)


def _one_line(exc: Exception) -> str:
    return _itk_reason(exc) if isinstance(exc, RuntimeError) else " ".join(str(exc).split())


def _write_image(image: Any, path: Path) -> Path:
    """Write a ``SimpleITK.Image`` atomically, verified by reading it back (:func:`verify_itk_file`)."""

    suffix = suffix_of(path)
    if suffix not in ITK_WRITE_SUFFIXES:
        raise OutputError(
            f"expected an output suffix among {', '.join(ITK_WRITE_SUFFIXES)}, got {suffix or 'none'!r}",
            path,
        )
    with atomic_path(path, verify=lambda tmp: verify_itk_file(tmp, image, path)) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=suffix != ".nii")
        except RuntimeError as exc:
            raise OutputError(f"cannot write the volume ({_itk_reason(exc)})", path) from exc
    return path


def write_itk_file(volume: Volume, path: Path) -> Path:
    """Write ``volume`` atomically to a .nii.gz/.nii/.nrrd/.mha file (bool is stored as uint8).

    The file is read back and compared before it replaces ``path`` (:func:`verify_itk_file`).
    """
    array: Any = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return _write_image(volume.grid.to_sitk(array), path)


def write_channels(grid: Grid, array: np.ndarray, path: Path) -> Path:
    """Write a ``(C, z, y, x)`` array on ``grid`` as one C-component vector image (e.g. probabilities).

    Atomic and verified like :func:`write_itk_file`; the dtype is kept.
    """
    array = np.asarray(array)
    if array.ndim != 4:
        raise OutputError(f"expected a (C, z, y, x) array, got shape {array.shape}", path)
    return _write_image(grid.to_sitk(array), path)
