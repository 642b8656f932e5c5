"""Input checks shared by the metric functions (private).

Every metric accepts any array-like that numpy can turn into a boolean mask of 1 to 3
dimensions; ``pred`` and ``ref`` must have the same shape. Spacing is in mm, one value per array
axis in array order (``(z, y, x)`` for a 3D volume), like :attr:`liverseg.io.Volume.spacing`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from liverseg.errors import GeometryError, InputError

SpacingLike = Sequence[float] | np.ndarray | float | None


def as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """Return ``mask`` as a boolean array; raise :class:`InputError` for non-binary input.

    Boolean arrays pass through untouched (no copy). Integer/float arrays must contain only 0 and 1
    (a label map with 2 = tumor must be split by class first, e.g. ``labels == 2``).
    """
    arr = np.asarray(mask)
    if arr.dtype == bool:
        return arr
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise InputError(
            f"{name} must be a binary mask (values 0/1 or bool), got values in "
            f"[{arr.min()}, {arr.max()}] with dtype {arr.dtype}; select a class first, e.g. labels == 2"
        )
    return arr.astype(bool)


def check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean arrays of one shape; :class:`GeometryError` when shapes differ."""
    p = as_mask(pred, "pred")
    r = as_mask(ref, "ref")
    if p.shape != r.shape:
        raise GeometryError(f"pred and ref must have the same shape, got pred {p.shape} and ref {r.shape}")
    if p.ndim == 0 or p.ndim > 3:
        raise InputError(f"masks must have 1 to 3 dimensions, got shape {p.shape}")
    return p, r


def check_spacing(spacing_mm: SpacingLike, ndim: int) -> tuple[float, ...]:
    """Spacing as a tuple of ``ndim`` positive floats (mm); ``None`` means 1 mm along every axis."""
    if spacing_mm is None:
        return (1.0,) * ndim
    sp = np.atleast_1d(np.asarray(spacing_mm, dtype=float))
    if sp.size == 1:
        sp = np.repeat(sp, ndim)
    if sp.shape != (ndim,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise GeometryError(
            f"spacing_mm must be {ndim} positive numbers (mm, array order), got {spacing_mm!r}"
        )
    return tuple(float(s) for s in sp)


def ratio(num: float, den: float) -> float:
    """``num / den`` with the package's convention: 0/0 -> NaN, x/0 (x > 0) -> +inf."""
    if den == 0:
        return float("nan") if num == 0 else float("inf") * (1.0 if num > 0 else -1.0)
    return float(num) / float(den)


def union_bbox(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box of the non-zero voxels of ``mask`` grown by ``margin`` voxels (clipped).

    Returns ``None`` for an empty mask. Uses per-axis projections (``np.any``), which is much
    faster than ``np.argwhere`` on large volumes.
    """
    slices: list[slice] = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        proj = np.any(mask, axis=other) if other else mask
        nz = np.flatnonzero(proj)
        if nz.size == 0:
            return None
        lo = max(int(nz[0]) - margin, 0)
        hi = min(int(nz[-1]) + 1 + margin, mask.shape[axis])
        slices.append(slice(lo, hi))
    return tuple(slices)
