"""Checks every reader applies before trusting a file: size from the header, geometry, finite voxels.

* :func:`check_voxel_count`: the voxel count announced by a header (NIfTI ``dim``, NRRD/MHA
  sizes, DICOM rows x columns x slices) against :data:`MAX_VOXELS`, *before* any voxel is
  decoded, so a small compressed file announcing a huge volume (a "gzip bomb") costs no memory.
* :func:`check_geometry`: spacing finite and positive, direction finite and orthonormal.
  Readers that would silently repair an impossible geometry (ITK turns a zero spacing into 1 mm
  and a negative one into a flipped axis) call this on the raw header values first.
* :func:`check_finite`: no NaN or infinite voxel (slab by slab, bounded extra memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liverseg.errors import InputError

__all__ = ["MAX_VOXELS", "check_finite", "check_geometry", "check_voxel_count", "count_nonfinite"]

#: Largest volume any reader accepts: 512 x 512 x 2048 voxels (2 GiB as float32).
MAX_VOXELS = 512 * 512 * 2048
#: Tolerance of the orthonormality check of a direction matrix (as :class:`~liverseg.io.Volume`).
ORTHONORMAL_ATOL = 1e-4
_SLAB_BYTES = 64 * 1024 * 1024


def check_voxel_count(shape: Sequence[int], path: str | Path | None, what: str = "the header") -> None:
    """Raise :class:`InputError` when ``shape`` (as announced by ``what``) exceeds :data:`MAX_VOXELS`."""
    dims = tuple(int(s) for s in shape)
    n = int(np.prod(np.asarray(dims, dtype=np.float64)))  # float: no overflow on absurd headers
    if any(d < 0 for d in dims):
        raise InputError(f"{what} announces a negative size {dims}", path)
    if n > MAX_VOXELS:
        raise InputError(
            f"volume too large: {what} announces shape {dims} = {n:,} voxels ({n * 4 / 2**30:.1f} GiB as "
            f"float32); at most {MAX_VOXELS:,} voxels are accepted. Crop or downsample it first",
            path,
        )


def check_geometry(
    spacing: Sequence[float], direction: Sequence[float] | np.ndarray, path: str | Path | None, what: str
) -> None:
    """Refuse a spacing that is not finite and positive, or a direction that is not orthonormal.

    Args:
        spacing: voxel size in mm, any axis order (the message repeats it as given).
        direction: 3x3 direction cosines (flat or matrix).
        path: the file, named in the message.
        what: where the values come from, e.g. ``"the MetaImage header"``.
    """
    sp = np.asarray(spacing, dtype=float)
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(
            f"voxel spacing in {what} must be positive finite mm, got {tuple(float(v) for v in sp)}", path
        )
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(d)):
        raise InputError(f"direction cosines in {what} must be finite, got {d.tolist()}", path)
    if not np.allclose(d.T @ d, np.eye(3), atol=ORTHONORMAL_ATOL):
        raise InputError(
            f"direction cosines in {what} must be orthonormal (unit, perpendicular axes), got "
            f"{np.round(d, 6).tolist()}",
            path,
        )


def count_nonfinite(array: np.ndarray) -> int:
    """Number of NaN / +-inf values of a float array (0 for integer arrays), slab by slab."""
    if not np.issubdtype(array.dtype, np.floating) and not np.iscomplexobj(array):
        return 0
    flat = array.reshape(-1) if array.flags.c_contiguous else None
    if flat is None:
        return int(array.size - np.count_nonzero(np.isfinite(array)))
    step = max(1, _SLAB_BYTES // max(1, array.itemsize))
    bad = 0
    for i in range(0, flat.size, step):
        part = flat[i : i + step]
        bad += int(part.size - np.count_nonzero(np.isfinite(part)))
    return bad


def check_finite(array: np.ndarray, path: str | Path | None) -> None:
    """Raise :class:`InputError` when ``array`` holds any NaN or infinite value."""
    bad = count_nonfinite(array)
    if bad:
        raise InputError(nonfinite_message(bad, array.size), path)


def nonfinite_message(bad: int, total: int) -> str:
    """The one-line message for ``bad`` non-finite voxels among ``total``."""
    return (
        f"expected finite voxel values, got {bad} NaN/infinite voxel(s) of {total}: the file is corrupt "
        "or holds a derived map, not an image in physical units"
    )
