"""Gantry-tilted CT series onto a regular grid, and label maps back onto the tilted slices.

A series acquired with a tilted gantry has image planes that are not perpendicular to the line
through their positions: each slice is shifted sideways, in its own plane, by an amount
proportional to its distance along the slice normal (a sheared stack). ``Volume`` holds only
orthogonal grids, so the slices are resampled **in-plane**, as dcm2niix does for its
tilt-corrected output: slice ``k`` keeps its plane, its pixel size and its position along the
normal, and is shifted sideways by its own offset (linear interpolation of the fractional part).
The output grid has the slices' orientation, the slice normal as third axis, and is widened so
that no source pixel is cut off; voxels no slice covers hold the lowest value of the series
(air / outside the scanner's field of view). Every voxel then lies at its true patient position.

This regular grid *is* the input grid of the segmentation (the label map, the report geometry
and the measurements are on it). A DICOM-SEG must instead reference the original slices frame by
frame, so :func:`labels_to_source` maps a label map back onto them (nearest neighbour: the exact
inverse shift, rounded to the pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from liverseg.io.dicom_geometry import StackGeometry

__all__ = [
    "TiltGrid",
    "describe_tilt",
    "labels_from_source",
    "labels_to_source",
    "resample_tilted",
    "tilt_grid",
]


@dataclass(frozen=True)
class TiltGrid:
    """Where each tilted source slice lies on the regular output grid.

    Attributes:
        offsets_px: ``(n, 2)`` float: output ``(row, column)`` index of each source slice's pixel
            ``[0, 0]`` (slice ``k`` of the source is slice ``k`` of the output).
        shape_yx: output in-plane size ``(rows, columns)``.
        source_shape_yx: source slice size ``(rows, columns)``.
        origin: LPS mm of the output voxel ``[0, 0, 0]``.
        tilt_deg: the gantry tilt in degrees.
    """

    offsets_px: np.ndarray
    shape_yx: tuple[int, int]
    source_shape_yx: tuple[int, int]
    origin: tuple[float, float, float]
    tilt_deg: float

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready description (stored in ``Volume.metadata["dicom"]["tilt"]``)."""
        return {
            "tilt_deg": round(self.tilt_deg, 3),
            "offsets_px": np.round(self.offsets_px, 6).tolist(),
            "shape_yx": list(self.shape_yx),
            "source_shape_yx": list(self.source_shape_yx),
            "method": "in-plane shift per slice, linear interpolation (as dcm2niix)",
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], origin: tuple[float, float, float]) -> TiltGrid:
        """Inverse of :meth:`to_metadata` (the origin comes from the volume)."""
        return cls(
            offsets_px=np.asarray(meta["offsets_px"], dtype=float),
            shape_yx=(int(meta["shape_yx"][0]), int(meta["shape_yx"][1])),
            source_shape_yx=(int(meta["source_shape_yx"][0]), int(meta["source_shape_yx"][1])),
            origin=origin,
            tilt_deg=float(meta["tilt_deg"]),
        )


def tilt_grid(geo: StackGeometry, rows: int, columns: int) -> TiltGrid:
    """The regular grid holding every pixel of a sheared stack (see the module docstring).

    Args:
        geo: a stack with ``lateral_mm`` set (:func:`~liverseg.io.dicom_geometry.order_slices`).
        rows, columns: the source matrix size.
    """
    if geo.lateral_mm is None:
        raise ValueError("tilt_grid needs a sheared stack (StackGeometry.lateral_mm is None)")
    _, ps_row, ps_col = geo.spacing  # (z, y, x): y along the column direction, x along the row direction
    # lateral_mm[:, 0] is along the row direction (array x), [:, 1] along the column direction (y)
    shift = np.stack([geo.lateral_mm[:, 1] / ps_row, geo.lateral_mm[:, 0] / ps_col], axis=1)
    low = np.minimum(shift.min(axis=0), 0.0)
    high = np.maximum(shift.max(axis=0), 0.0)
    offsets = shift - low
    extra = np.ceil(high - low - 1e-6).astype(int)
    shape = (rows + int(extra[0]), columns + int(extra[1]))
    d = np.asarray(geo.direction)
    origin = np.asarray(geo.origin) + low[0] * ps_row * d[:, 1] + low[1] * ps_col * d[:, 0]
    return TiltGrid(
        offsets_px=offsets,
        shape_yx=shape,
        source_shape_yx=(rows, columns),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        tilt_deg=geo.tilt_deg,
    )


def resample_tilted(source: np.ndarray, grid: TiltGrid, dtype: Any = np.float32) -> np.ndarray:
    """Resample the source slices ``(n, rows, columns)`` onto ``grid``: ``(n, *grid.shape_yx)``.

    Each slice is placed at its integer offset and shifted by the fractional rest with linear
    interpolation; uncovered voxels hold ``source.min()``.
    """
    n, rows, cols = source.shape
    fill = float(source.min())
    out = np.full((n, *grid.shape_yx), fill, dtype=dtype)
    for k in range(n):
        whole = np.floor(grid.offsets_px[k]).astype(int)
        frac = grid.offsets_px[k] - whole
        canvas = out[k]
        canvas[whole[0] : whole[0] + rows, whole[1] : whole[1] + cols] = source[k]
        if frac.any():
            out[k] = ndimage.shift(canvas, frac, order=1, mode="constant", cval=fill)
    return out


def labels_to_source(labels: np.ndarray, grid: TiltGrid) -> np.ndarray:
    """Map a label array on the regular grid ``(n, *grid.shape_yx)`` back onto the source slices.

    Returns ``(n, rows, columns)``: source pixel ``(i, j)`` of slice ``k`` takes the label of the
    nearest output voxel ``(k, i + offset_row, j + offset_col)``.
    """
    n = labels.shape[0]
    rows, cols = grid.source_shape_yx
    if labels.shape[1:] != grid.shape_yx:
        raise ValueError(f"labels must have in-plane shape {grid.shape_yx}, got {labels.shape[1:]}")
    out = np.zeros((n, rows, cols), dtype=labels.dtype)
    ii = np.arange(rows)
    jj = np.arange(cols)
    for k in range(n):
        r = np.clip(np.floor(ii + grid.offsets_px[k, 0] + 0.5).astype(int), 0, grid.shape_yx[0] - 1)
        c = np.clip(np.floor(jj + grid.offsets_px[k, 1] + 0.5).astype(int), 0, grid.shape_yx[1] - 1)
        out[k] = labels[k][np.ix_(r, c)]
    return out


def describe_tilt(tilt_deg: float, shape_yx: tuple[int, int] | list[int]) -> str:
    """The warning put into the report for a tilt-corrected series."""
    return (
        f"gantry tilt of {tilt_deg:.1f} degrees: the slices were resampled in-plane onto a regular grid "
        f"of {shape_yx[0]}x{shape_yx[1]} pixels (as dcm2niix does); the label map and the measurements "
        "are on that grid, the DICOM-SEG on the original slices"
    )


def labels_from_source(source_labels: np.ndarray, grid: TiltGrid) -> np.ndarray:
    """Inverse of :func:`labels_to_source`: source-frame labels ``(n, rows, columns)`` onto the
    regular grid ``(n, *grid.shape_yx)`` (nearest neighbour; voxels no slice covers get 0)."""
    n = source_labels.shape[0]
    rows, cols = grid.source_shape_yx
    if source_labels.shape[1:] != (rows, cols):
        raise ValueError(
            f"source labels must have in-plane shape {(rows, cols)}, got {source_labels.shape[1:]}"
        )
    out = np.zeros((n, *grid.shape_yx), dtype=source_labels.dtype)
    yy = np.arange(grid.shape_yx[0])
    xx = np.arange(grid.shape_yx[1])
    for k in range(n):
        r = np.floor(yy - grid.offsets_px[k, 0] + 0.5).astype(int)
        c = np.floor(xx - grid.offsets_px[k, 1] + 0.5).astype(int)
        rv, cv = (r >= 0) & (r < rows), (c >= 0) & (c < cols)
        out[k][np.ix_(rv, cv)] = source_labels[k][np.ix_(r[rv], c[cv])]
    return out
