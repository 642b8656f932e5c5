"""Where a synthetic lesion may go: the liver eroded by a margin, off vessels and existing tumors.

All arrays here live in a *work box*: the liver's bounding box grown by a pad and clipped to the
image. ``Region.allowed`` marks voxels that a lesion's footprint (every voxel whose HU changes) may
cover. A lesion fits at a centre when its whole footprint lies in ``allowed``; parts beyond the image
border count as allowed only with ``border="open"`` (a slab or patch cut from a larger volume, where
the liver continues), never with ``"closed"`` (a whole scan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

__all__ = ["Region", "build_region", "liver_box", "overlap_slices"]

Border = Literal["closed", "open"]


def _edt_mm(
    mask: np.ndarray, spacing: tuple[float, float, float], outside: list[tuple[bool, bool]]
) -> np.ndarray:
    """Distance (mm) from each True voxel to the nearest False voxel; ``outside[axis][side]`` adds a
    False layer beyond that face (scipy's EDT alone treats the array border as not-background)."""
    pad = [(int(lo), int(hi)) for lo, hi in outside]
    padded = np.pad(mask, pad, constant_values=False) if any(any(p) for p in pad) else mask
    dist = ndimage.distance_transform_edt(padded, sampling=spacing)
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, mask.shape, strict=True))
    return dist[crop]


@dataclass(eq=False)
class Region:
    """The admissible region of one scan inside its work box (mutable: lesions are carved out).

    Attributes:
        box: slices of the work box in the full image.
        spacing: voxel size in mm ``(z, y, x)``.
        allowed: bool work-box mask of voxels a lesion footprint may cover.
        depth_mm: distance (mm) from each voxel to the nearest non-allowed voxel, computed once
            (before lesions are inserted) to prune candidate centres.
        open_faces: ``open_faces[axis][side]`` True where the work box face is the image border
            and the border is open (footprint beyond it is ignored).
        vessels: bool work-box mask of large vessels, or None.
        vessel_overlap: largest fraction of a footprint that may lie on ``vessels``.
    """

    box: tuple[slice, slice, slice]
    spacing: tuple[float, float, float]
    allowed: np.ndarray
    depth_mm: np.ndarray
    open_faces: list[tuple[bool, bool]] = field(default_factory=list)
    vessels: np.ndarray | None = None
    vessel_overlap: float = 0.0

    def candidates(self, min_depth_mm: float) -> np.ndarray:
        """Flat work-box indices of voxels at least ``min_depth_mm`` deep in the allowed region."""
        return np.flatnonzero(self.depth_mm >= min_depth_mm)

    def padded(self, half: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray | None]:
        """``allowed`` (True beyond open faces, else False) and ``vessels`` (False) padded by
        ``half`` voxels per side.

        A footprint of half-size ``half`` centred at work-box voxel ``c`` is then the window
        ``[c, c + 2 * half + 1)`` of the padded arrays.
        """
        shape = tuple(n + 2 * h for n, h in zip(self.allowed.shape, half, strict=True))
        inner = tuple(slice(h, h + n) for h, n in zip(half, self.allowed.shape, strict=True))
        vessels = None
        if self.vessels is not None and self.vessels.any():
            vessels = np.zeros(shape, bool)
            vessels[inner] = self.vessels
        out = np.zeros(shape, bool)
        for axis, (lo_open, hi_open) in enumerate(self.open_faces):
            h = half[axis]
            if lo_open:
                idx = [slice(None)] * 3
                idx[axis] = slice(0, h)
                out[tuple(idx)] = True
            if hi_open:
                idx = [slice(None)] * 3
                idx[axis] = slice(out.shape[axis] - h, None)
                out[tuple(idx)] = True
        out[inner] = self.allowed
        return out, vessels

    def fits(
        self,
        padded: tuple[np.ndarray, np.ndarray | None],
        footprint: np.ndarray,
        center: tuple[int, int, int],
    ) -> bool:
        """True when ``footprint`` (odd-sized, centred) at work-box voxel ``center`` is all allowed
        and covers at most ``vessel_overlap`` of its voxels on vessels (``padded`` from :meth:`padded`)."""
        window = tuple(slice(c, c + n) for c, n in zip(center, footprint.shape, strict=True))
        allowed, vessels = padded
        if not np.all(allowed[window][footprint]):
            return False
        if vessels is None:
            return True
        on_vessels = int(np.count_nonzero(vessels[window] & footprint))
        return on_vessels <= self.vessel_overlap * int(np.count_nonzero(footprint))

    def carve(self, mask: np.ndarray, center: tuple[int, int, int]) -> None:
        """Remove ``mask`` (odd-sized, centred at work-box voxel ``center``) from ``allowed``."""
        src, dst = overlap_slices(center, mask.shape, self.allowed.shape)
        self.allowed[dst] &= ~mask[src]


def overlap_slices(
    center: tuple[int, int, int], local_shape: tuple[int, ...], box_shape: tuple[int, ...]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices (local grid, box) of the overlap of a centred local grid with the box."""
    src, dst = [], []
    for c, n, size in zip(center, local_shape, box_shape, strict=True):
        h = n // 2
        lo, hi = c - h, c + h + 1
        lo_c, hi_c = max(lo, 0), min(hi, size)
        src.append(slice(lo_c - lo, n - (hi - hi_c)))
        dst.append(slice(lo_c, hi_c))
    return tuple(src), tuple(dst)


def liver_box(
    label: np.ndarray, spacing: tuple[float, float, float], *, pad_mm: float, border: Border
) -> tuple[tuple[slice, slice, slice], list[tuple[bool, bool]]]:
    """The work box: the liver's bounding box grown by ``pad_mm`` and clipped to the image.

    Args:
        label: full ``(z, y, x)`` label map (liver = label > 0, assumed non-empty).
        spacing: voxel size in mm.
        pad_mm: grow the liver bounding box by this much (room for the local background ring).
        border: "closed" (the image border is outside the liver) or "open" (the liver continues).

    Returns:
        ``(box, open_faces)``: work-box slices and, per axis, whether each face is an open border.
    """
    liver = label > 0
    box, faces = [], []
    for axis in range(3):
        nz = np.flatnonzero(liver.any(axis=tuple(a for a in range(3) if a != axis)))
        pad = int(np.ceil(pad_mm / spacing[axis])) + 1
        lo = max(int(nz[0]) - pad, 0)
        hi = min(int(nz[-1]) + pad + 1, label.shape[axis])
        box.append(slice(lo, hi))
        faces.append((lo == 0 and border == "open", hi == label.shape[axis] and border == "open"))
    return (box[0], box[1], box[2]), faces


def build_region(
    box: tuple[slice, slice, slice],
    open_faces: list[tuple[bool, bool]],
    blocked: np.ndarray,
    spacing: tuple[float, float, float],
    margin_mm: float,
) -> Region:
    """The admissible region: work-box voxels farther than ``margin_mm`` from every blocked voxel.

    Args:
        box: the work box (see :func:`liver_box`).
        open_faces: per axis and side, whether the face is an open image border.
        blocked: bool work-box mask of voxels to keep away from: outside the liver, large vessels,
            existing tumors.
        spacing: voxel size in mm.
        margin_mm: the clearance.

    One Euclidean distance transform gives both the region (``d > margin``) and, for pruning
    candidate centres, each voxel's depth in it (``d - margin``: the distance to the set
    ``{d <= margin}`` is exactly ``d - margin`` in Euclidean space).
    """
    closed = [(not lo, not hi) for lo, hi in open_faces]
    dist = _edt_mm(~blocked, spacing, closed)
    allowed = dist > margin_mm
    return Region(box, spacing, allowed, (dist - margin_mm).astype(np.float32), open_faces)
