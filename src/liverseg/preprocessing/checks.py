"""Sanity checks on an input volume before it is segmented: is it CT in HU, is it too large, is its
field of view one a CT scanner can produce.

The heuristic of :func:`check_ct_intensities`, applied in this order (the first rule that fires
raises :class:`~liverseg.errors.InputError`):

1. **Non-finite values**: any NaN or +/-inf voxel.
2. **Constant image**: minimum == maximum.
3. **Already normalised**: ``max - min < 50``. No CT spans less than 50 HU (air to soft tissue
   alone is ~1000 HU); this is a ``[0, 1]``, ``[0, 255]/255`` or z-scored array.
4. **8-bit image**: ``metadata["intensity"] == "png8"`` (set by the PNG reader), or integer
   values with ``0 <= min`` and ``max <= 255``: a PNG/JPEG or a windowed export, not HU.
5. **No negative values** (``min >= 0``): CT in HU has air around -1000 HU (outside the body,
   lungs, bowel gas). A non-negative image is MR (or PET, ultrasound...), *or* CT whose
   ``RescaleIntercept`` (usually -1024) was not applied: raw 12-bit stored values 0..4095.
   The message says both; when the maximum is <= 4095 it hints at the intercept.

Softer signs only add a warning to the returned statistics (and the log), because real CT can
show them: no voxel at or below -850 HU (air) although negative values exist (a CT cropped to
an organ, or a wrong rescale), or a median above 1500 HU (a wrong rescale slope/intercept).

Statistics are computed on at most ~4 M voxels (a regular stride through the array), so a
512 x 512 x 1000 volume is checked in well under a second; the non-finite check and min/max
see every voxel, slab by slab.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import InputError
from liverseg.io.limits import MAX_VOXELS
from liverseg.io.volume import Volume

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "MAX_INPLANE_FOV_MM",
    "MAX_Z_EXTENT_MM",
    "check_ct_intensities",
    "check_field_of_view",
    "check_volume_size",
]

log = logging.getLogger(__name__)

#: Default limit of :func:`check_volume_size`: 512 x 512 x 2048 voxels (2 GiB as float32), the
#: limit the readers already apply from the file header (:data:`liverseg.io.limits.MAX_VOXELS`).
DEFAULT_MAX_VOXELS = MAX_VOXELS

#: Largest in-plane field of view (mm, per axis) of a CT: scanner bores are 70-90 cm wide and the
#: reconstruction field of view is at most ~70 cm. A larger one means a wrong spacing in the header.
MAX_INPLANE_FOV_MM = 1000.0
#: Longest scan (mm along the slices): more than a whole-body scan of the tallest patient.
MAX_Z_EXTENT_MM = 3000.0

_SAMPLE_VOXELS = 4_000_000
_SLAB_VOXELS = 1 << 24
_PERCENTILES = (0.5, 1.0, 5.0, 50.0, 95.0, 99.0, 99.5)


def _source(volume: Volume, path: str | Path | None) -> str | Path | None:
    return path if path is not None else volume.metadata.get("source")


def _slabs(array: np.ndarray) -> list[slice]:
    step = max(1, _SLAB_VOXELS // max(1, array[0].size))
    return [slice(z, min(array.shape[0], z + step)) for z in range(0, array.shape[0], step)]


def _sample(array: np.ndarray) -> np.ndarray:
    """Up to ~``_SAMPLE_VOXELS`` voxels taken with a regular stride (deterministic)."""
    step = max(1, int(np.ceil(array.size / _SAMPLE_VOXELS)))
    step += 1 - step % 2  # odd: a stride sharing no factor with power-of-two rows visits every column
    flat = array.reshape(-1) if array.flags.c_contiguous else np.ascontiguousarray(array).reshape(-1)
    return np.asarray(flat[::step], dtype=np.float64)


def check_ct_intensities(volume: Volume, *, path: str | Path | None = None) -> dict[str, Any]:
    """Raise :class:`InputError` unless ``volume`` looks like CT in Hounsfield units.

    See the module docstring for the exact rules. ``path`` (default
    ``volume.metadata["source"]``) is named in the message.

    Returns:
        Statistics for the report: ``min``, ``max``, ``p0.5`` ... ``p99.5`` (HU),
        ``air_fraction`` (share of sampled voxels <= -850 HU), ``soft_tissue_fraction``
        (share in [-200, 300] HU) and ``warnings`` (list of strings, possibly empty).
    """
    src = _source(volume, path)
    arr = volume.array
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"expected CT intensities as real numbers (HU), got dtype {arr.dtype}", src)

    lo, hi, n_bad = np.inf, -np.inf, 0
    for sl in _slabs(arr):
        part = arr[sl]
        if np.issubdtype(part.dtype, np.floating):
            finite = np.isfinite(part)
            if not finite.all():
                n_bad += int(part.size - np.count_nonzero(finite))
                continue
        lo = min(lo, float(part.min()))
        hi = max(hi, float(part.max()))
    if n_bad:
        raise InputError(
            f"expected finite CT intensities (HU), got {n_bad} NaN/inf voxel(s) of {arr.size}", src
        )
    if lo == hi:
        raise InputError(f"expected a CT image in HU, got a constant image (every voxel = {lo:g})", src)
    if hi - lo < 50:
        raise InputError(
            f"expected CT in HU (air about -1000, soft tissue 0..100, bone several hundred), got values "
            f"spanning only [{lo:.4g}, {hi:.4g}]: the image looks already normalised (e.g. [0, 1] or "
            f"z-score), not in Hounsfield units",
            src,
        )

    sample = _sample(arr)
    integer_valued = bool(np.issubdtype(arr.dtype, np.integer) or np.all(sample == np.round(sample)))
    if volume.metadata.get("intensity") == "png8" or (integer_valued and lo >= 0 and hi <= 255):
        raise InputError(
            f"expected CT in HU, got an 8-bit image (values {lo:g}..{hi:g}), e.g. a PNG/JPEG or a "
            f"windowed export: Hounsfield units cannot be recovered from it; use the original DICOM "
            f"or NIfTI CT",
            src,
        )
    if lo >= 0:
        hint = (
            " Values within 0..4095 are typical of raw 12-bit CT stored values: if this is CT, "
            "RescaleIntercept (usually -1024) may not have been applied."
            if hi <= 4095
            else " If this is CT, its RescaleSlope/RescaleIntercept may not have been applied."
        )
        raise InputError(
            f"expected CT in HU with air near -1000 HU, got no negative value at all (range "
            f"{lo:g}..{hi:g}): this looks like MR or another modality, or unrescaled CT.{hint}",
            src,
        )

    pct = np.percentile(sample, _PERCENTILES)
    stats: dict[str, Any] = {"min": lo, "max": hi}
    stats.update({f"p{p:g}": round(float(v), 2) for p, v in zip(_PERCENTILES, pct, strict=True)})
    stats["air_fraction"] = round(float(np.mean(sample <= -850.0)), 5)
    stats["soft_tissue_fraction"] = round(float(np.mean((sample >= -200.0) & (sample <= 300.0))), 5)
    warnings: list[str] = []
    if stats["air_fraction"] == 0.0:
        warnings.append(
            f"no air-like voxel (<= -850 HU) in the image (minimum {lo:g} HU): a CT cropped to an "
            f"organ, or intensities that are not HU"
        )
    if stats["p50"] > 1500.0:
        warnings.append(
            f"median intensity {stats['p50']:g} is implausibly high for CT in HU: check the "
            f"rescale slope/intercept"
        )
    for w in warnings:
        log.warning("%s%s", f"{src}: " if src is not None else "", w)
    stats["warnings"] = warnings
    return stats


def check_volume_size(
    volume: Volume, max_voxels: int = DEFAULT_MAX_VOXELS, *, path: str | Path | None = None
) -> None:
    """Raise :class:`InputError` when ``volume`` has more than ``max_voxels`` voxels.

    The message names the shape, the voxel count, the float32 memory it would take and the limit.
    """
    n = int(np.prod(volume.shape, dtype=np.int64))
    if n > max_voxels:
        gib = n * 4 / 2**30
        raise InputError(
            f"volume too large: shape (z, y, x) {volume.shape} = {n:,} voxels ({gib:.1f} GiB as "
            f"float32); at most {max_voxels:,} voxels are accepted. Crop or downsample it first",
            _source(volume, path),
        )


def check_field_of_view(volume: Volume, *, path: str | Path | None = None) -> None:
    """Raise :class:`InputError` when the volume's physical extent is impossible for a CT.

    The in-plane extent (rows and columns times their spacing) must be at most
    :data:`MAX_INPLANE_FOV_MM` per axis and the slice extent at most :data:`MAX_Z_EXTENT_MM`.
    A wrong spacing in a header (e.g. 5 mm voxels for a 512 x 512 image: a 2.5 m field of view)
    would otherwise make the model's resampled grids tens of times too large, costing many GiB
    and minutes for a meaningless result.
    """
    nz, ny, nx = volume.shape
    sz, sy, sx = volume.spacing
    fov_y, fov_x, extent_z = ny * sy, nx * sx, nz * sz
    if max(fov_y, fov_x) > MAX_INPLANE_FOV_MM or extent_z > MAX_Z_EXTENT_MM:
        raise InputError(
            f"expected a CT field of view of at most {MAX_INPLANE_FOV_MM:.0f} mm in-plane and "
            f"{MAX_Z_EXTENT_MM:.0f} mm along the slices, got {fov_y:.0f} x {fov_x:.0f} mm in-plane and "
            f"{extent_z:.0f} mm (shape (z, y, x) {volume.shape} at spacing {tuple(round(v, 4) for v in volume.spacing)} "
            "mm): the voxel spacing in the header is implausible",
            _source(volume, path),
        )
