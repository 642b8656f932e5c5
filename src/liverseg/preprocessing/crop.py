"""Bounding boxes, cropping with exact geometry, the inverse paste-back, and empty-slice removal.

A *box* is a tuple of three ``slice`` objects ``(z, y, x)`` with step 1 and
``0 <= start < stop <= size``, usable directly as ``array[box]``. :func:`crop` moves the origin
to the physical position of the box's first voxel (through the direction matrix), so the cropped
volume overlays the original exactly; :func:`uncrop` is its inverse for arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cc3d
import numpy as np
from scipy import ndimage

from liverseg.errors import GeometryError, InputError
from liverseg.io.volume import Grid, Volume

__all__ = [
    "Box",
    "body_bbox",
    "box_from_json",
    "box_to_json",
    "crop",
    "crop_to_box",
    "grow_box",
    "label_bbox",
    "nonempty_slices",
    "normalize_box",
    "uncrop",
]

log = logging.getLogger(__name__)

Box = tuple[slice, slice, slice]


def normalize_box(box: Sequence[slice], shape: Sequence[int]) -> Box:
    """Validate ``box`` against ``shape`` (z, y, x) and return it with explicit integer bounds.

    Raises :class:`GeometryError` for a box that is not 3 step-1 slices, is empty, or does not
    lie inside ``shape`` (slices are *not* silently clipped here: a box from another grid is a bug).
    """
    if len(box) != 3 or not all(isinstance(s, slice) for s in box):
        raise GeometryError(f"a box must be 3 slices (z, y, x), got {box!r}")
    out = []
    for s, n in zip(box, shape, strict=True):
        if s.step not in (None, 1):
            raise GeometryError(f"box slices must have step 1, got {s!r}")
        start = 0 if s.start is None else int(s.start)
        stop = int(n) if s.stop is None else int(s.stop)
        if not 0 <= start < stop <= n:
            raise GeometryError(f"box {box!r} does not fit (or is empty) in a volume of shape {tuple(shape)}")
        out.append(slice(start, stop))
    return (out[0], out[1], out[2])


def _mask_array(mask: np.ndarray | Volume) -> np.ndarray:
    arr = mask.array if isinstance(mask, Volume) else np.asarray(mask)
    if arr.ndim != 3:
        raise InputError(f"expected a 3D mask (z, y, x), got shape {arr.shape}")
    return arr


def _margin_triple(margin_mm: float | Sequence[float]) -> np.ndarray:
    m = np.broadcast_to(np.asarray(margin_mm, dtype=float), (3,)).copy()
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise GeometryError(f"margin must be >= 0 mm (one value or z, y, x), got {margin_mm!r}")
    return m


def label_bbox(
    mask: np.ndarray | Volume,
    spacing_zyx: Sequence[float],
    margin_mm: float | Sequence[float] = 0.0,
) -> Box:
    """Bounding box of the non-zero voxels of ``mask``, grown by ``margin_mm`` and clipped to it.

    Args:
        mask: ``(z, y, x)`` boolean or label array (any non-zero voxel counts), or a Volume.
        spacing_zyx: voxel size (mm) used to convert the margin to voxels per axis.
        margin_mm: margin in mm, one value or ``(z, y, x)``; each side grows by
            ``ceil(margin / spacing)`` voxels, so the box covers at least the margin.

    Raises:
        InputError: ``mask`` has no non-zero voxel (callers decide what "no liver" means).
    """
    arr = _mask_array(mask)
    spacing = np.asarray(spacing_zyx, dtype=float).reshape(-1)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise GeometryError(f"spacing_zyx must be 3 positive numbers (mm), got {spacing_zyx!r}")
    margin_vox = np.ceil(_margin_triple(margin_mm) / spacing - 1e-9).astype(int)
    out = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(arr, axis=others))
        if hits.size == 0:
            raise InputError(f"the mask is empty (no non-zero voxel in shape {arr.shape}): no bounding box")
        lo = max(0, int(hits[0]) - int(margin_vox[axis]))
        hi = min(arr.shape[axis], int(hits[-1]) + 1 + int(margin_vox[axis]))
        out.append(slice(lo, hi))
    return (out[0], out[1], out[2])


def body_bbox(
    volume: Volume,
    threshold_hu: float = -500.0,
    *,
    margin_mm: float | Sequence[float] = 0.0,
    grid_mm: float = 3.0,
    thin_mm: float = 10.0,
) -> Box:
    """Bounding box of the patient's body in a CT (HU): the largest connected region above
    ``threshold_hu``, ignoring the table where possible.

    For speed on 512 x 512 x 1000 volumes the search runs on a strided copy with voxels of about
    ``grid_mm``; thin structures (the table top, blankets, tubes: thinner than ``thin_mm``
    in-plane) are removed by a per-slice morphological opening before the largest 6-connected
    component is taken (a table separated from the body by air or thin padding is then a separate
    component). That component's box is mapped back to the full grid conservatively (one grid
    step larger), then shrunk to the full-resolution extent of the voxels above the threshold
    inside it, and grown by ``margin_mm``.

    Raises:
        InputError: no voxel above ``threshold_hu``.
    """
    arr = volume.array
    strides = [max(1, int(grid_mm // s)) for s in volume.spacing]
    small = arr[:: strides[0], :: strides[1], :: strides[2]] > threshold_hu
    if not small.any():
        raise InputError(
            f"no voxel above {threshold_hu:g} HU: cannot find the body (is this CT in HU?)",
            volume.metadata.get("source"),
        )
    step_y, step_x = (volume.spacing[1] * strides[1], volume.spacing[2] * strides[2])
    ry, rx = (max(1, round(thin_mm / 2.0 / step_y)), max(1, round(thin_mm / 2.0 / step_x)))
    yy, xx = np.ogrid[-ry : ry + 1, -rx : rx + 1]
    disk = ((yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0)[None]
    opened = ndimage.binary_opening(small, structure=disk)
    if not opened.any():  # everything above the threshold is thin: keep it rather than fail
        log.debug("body_bbox: opening removed everything; using the raw threshold mask")
        opened = small
    body = cc3d.largest_k(opened.view(np.uint8), k=1, connectivity=6) > 0
    out = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(body, axis=others))
        st, n = strides[axis], arr.shape[axis]
        out.append(slice(max(0, (int(hits[0]) - 1) * st + 1), min(n, (int(hits[-1]) + 1) * st)))
    box = _refine(arr, (out[0], out[1], out[2]), threshold_hu)
    return grow_box(box, arr.shape, volume.spacing, margin_mm)


def _refine(arr: np.ndarray, box: Box, threshold_hu: float, slab_voxels: int = 1 << 24) -> Box:
    """Shrink a conservative box to the full-resolution extent of the voxels above the threshold
    inside it (slab by slab along z, so no full-size mask is allocated)."""
    sub = arr[box]
    hits = [np.zeros(n, bool) for n in sub.shape]
    step = max(1, slab_voxels // max(1, sub[0].size))
    for z0 in range(0, sub.shape[0], step):
        m = sub[z0 : z0 + step] > threshold_hu
        hits[0][z0 : z0 + step] = m.any(axis=(1, 2))
        hits[1] |= m.any(axis=(0, 2))
        hits[2] |= m.any(axis=(0, 1))
    out = []
    for h, b in zip(hits, box, strict=True):
        idx = np.flatnonzero(h)
        out.append(slice(b.start + int(idx[0]), b.start + int(idx[-1]) + 1) if idx.size else b)
    return (out[0], out[1], out[2])


def crop(volume: Volume, box: Sequence[slice]) -> Volume:
    """The sub-volume ``volume.array[box]`` with its origin moved so it overlays ``volume`` exactly.

    Spacing and direction are kept; the new origin is the physical position of the box's first
    voxel. The array is copied (contiguous), metadata is kept.
    """
    b = normalize_box(box, volume.shape)
    start = np.array([s.start for s in b], dtype=float)
    origin = volume.index_to_physical(start)
    arr = np.ascontiguousarray(volume.array[b])
    return volume.regridded(arr, Grid(arr.shape, volume.spacing, origin, volume.direction))


#: The name used in docs/contracts.md.
crop_to_box = crop


def uncrop(
    array: np.ndarray, box: Sequence[slice], full_shape: Sequence[int], fill: float | int = 0
) -> np.ndarray:
    """Inverse of :func:`crop` for arrays: paste ``array`` into a ``full_shape`` array at ``box``.

    Args:
        array: ``(z, y, x)`` or ``(C, z, y, x)`` whose spatial shape is the box's size.
        box: the box used for cropping.
        full_shape: ``(z, y, x)`` of the original grid.
        fill: value outside the box (0 for labels; e.g. 1.0 for a background probability channel
            is the caller's choice per channel).

    Returns:
        ``(*lead, *full_shape)`` with ``array``'s dtype.
    """
    full = tuple(int(n) for n in full_shape)
    b = normalize_box(box, full)
    array = np.asarray(array)
    size = tuple(s.stop - s.start for s in b)
    if array.ndim < 3 or tuple(array.shape[-3:]) != size:
        raise GeometryError(
            f"array to uncrop must have spatial shape {size} (the box size), got {array.shape}"
        )
    out = np.full((*array.shape[:-3], *full), fill, dtype=array.dtype)
    out[(..., *b)] = array
    return out


def nonempty_slices(label: np.ndarray | Volume, *, axis: int = 0) -> np.ndarray:
    """Indices (ascending, int64) of the slices along ``axis`` that contain a non-zero voxel.

    Used for the seeds' "empty-slice removal": ``image[nonempty_slices(label)]``.
    """
    arr = _mask_array(label)
    if axis not in (0, 1, 2, -1, -2, -3):
        raise GeometryError(f"axis must be 0, 1 or 2, got {axis}")
    axis = axis % 3
    others = tuple(a for a in range(3) if a != axis)
    return np.flatnonzero(np.any(arr, axis=others)).astype(np.int64)


def box_to_json(box: Sequence[slice]) -> list[list[int]]:
    """``[[start, stop], ...]`` (z, y, x) for manifests and reports."""
    return [[int(s.start), int(s.stop)] for s in box]


def box_from_json(data: Sequence[Sequence[int]]) -> Box:
    """Inverse of :func:`box_to_json`."""
    if len(data) != 3 or any(len(p) != 2 for p in data):
        raise GeometryError(f"a box must be [[z0, z1], [y0, y1], [x0, x1]], got {data!r}")
    return (slice(*map(int, data[0])), slice(*map(int, data[1])), slice(*map(int, data[2])))


def grow_box(
    box: Sequence[slice],
    shape: Sequence[int],
    spacing_zyx: Sequence[float],
    margin_mm: float | Sequence[float],
) -> Box:
    """``box`` grown by ``ceil(margin_mm / spacing)`` voxels per side, clipped to ``shape``."""
    b = normalize_box(box, shape)
    m = np.ceil(_margin_triple(margin_mm) / np.asarray(spacing_zyx, dtype=float) - 1e-9).astype(int)
    out = [
        slice(max(0, s.start - int(k)), min(int(n), s.stop + int(k)))
        for s, k, n in zip(b, m, shape, strict=True)
    ]
    return (out[0], out[1], out[2])
