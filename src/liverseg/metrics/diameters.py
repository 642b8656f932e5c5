"""RECIST-style in-plane lesion diameters, measured on axial slices (array axis 0).

RECIST 1.1 measures a lesion's longest diameter on the axial slice where it is longest, and the
short axis perpendicular to it on the same slice. Here, on every slice of a 3D mask ``(z, y, x)``:

1. the lesion's contour points are the midpoints of the pixel edges between lesion and background
   (the vertices of the marching-squares 0.5 iso-contour of the binary slice), in mm using the
   anisotropic in-plane spacing ``(y, x)``; a single pixel has diameter = pixel size;
2. their convex hull (``scipy.spatial.ConvexHull``) is taken; the longest diameter is the largest
   distance between two hull vertices (the maximum Feret diameter of the slice contour);
3. the short axis is the longest chord of the hull perpendicular to that line on the same slice
   (RECIST's "longest diameter perpendicular to the long axis"); for an ellipse with semi-axes
   a >= b the two are 2a and 2b. (The calliper width perpendicular to the long axis would
   overestimate it whenever pixelation tilts the long axis slightly.)

The slice with the largest longest diameter wins (ties: the lowest slice index). Errors against
the continuous shape are below one pixel per end (the contour points lie within half a pixel of
the true border). Array axis 0 must be the axial (slice) axis; ``liverseg.reporting`` makes sure
of that by measuring on the canonical (LPS) grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist

from liverseg.errors import InputError

__all__ = ["AxialDiameters", "axial_diameters", "contour_points", "longest_axial_diameter_mm"]


@dataclass(frozen=True)
class AxialDiameters:
    """RECIST-style measurement of one lesion.

    Attributes:
        longest_mm: longest in-plane diameter over all axial slices (mm).
        short_axis_mm: longest chord perpendicular to it on the same slice (mm).
        slice_index: index along array axis 0 of that slice.
        endpoints_zyx: ``(2, 3)`` continuous array indices ``(z, y, x)`` of the diameter's ends.
        short_endpoints_zyx: ``(2, 3)`` continuous indices of the short axis' ends.
    """

    longest_mm: float
    short_axis_mm: float
    slice_index: int
    endpoints_zyx: np.ndarray
    short_endpoints_zyx: np.ndarray


def contour_points(mask2d: np.ndarray) -> np.ndarray:
    """Midpoints of the pixel edges between foreground and background of a 2D mask.

    Args:
        mask2d: boolean array ``(rows, cols)``.
    Returns:
        float array ``(n, 2)`` of continuous ``(row, col)`` indices (half-integers on one axis).
    """
    m = np.pad(np.asarray(mask2d, dtype=bool), 1)
    core = m[1:-1, 1:-1]
    pts: list[np.ndarray] = []
    for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):
        neighbour = np.roll(m, -step, axis=axis)[1:-1, 1:-1]
        rc = np.argwhere(core & ~neighbour).astype(np.float64)
        rc[:, axis] += 0.5 * step
        pts.append(rc)
    return np.concatenate(pts, axis=0)


def _hull(points_mm: np.ndarray) -> np.ndarray:
    """Hull vertices in counter-clockwise order (all points when they are collinear)."""
    try:
        return points_mm[ConvexHull(points_mm).vertices]
    except (QhullError, ValueError):  # fewer than 3 points or all collinear
        return points_mm


def _perpendicular_chord(poly: np.ndarray, u: np.ndarray) -> tuple[float, np.ndarray]:
    """Longest chord of convex polygon ``poly`` (ordered ``(h, 2)``) perpendicular to unit ``u``.

    The chord length along ``u`` is concave and piecewise linear with breaks at the vertices'
    projections, so its maximum lies on a line through a vertex: every vertex line is intersected
    with every edge. Returns the length and the ``(2, 2)`` chord ends.
    """
    v = np.array([-u[1], u[0]])
    s, w = poly @ u, poly @ v
    s2, w2 = np.roll(s, -1), np.roll(w, -1)
    t = s[:, None]
    ds = s2 - s
    eps = 1e-9 * max(1.0, float(np.ptp(s)))
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (t - s[None, :]) / ds[None, :]
    on_edge = (np.abs(ds)[None, :] > eps) & (frac >= -1e-12) & (frac <= 1 + 1e-12)
    w_cut = np.where(on_edge, w[None, :] + frac * (w2 - w)[None, :], np.nan)
    at_vertex = np.where(np.abs(t - s[None, :]) <= eps, w[None, :], np.nan)
    cand = np.concatenate([w_cut, at_vertex], axis=1)
    lo, hi = np.nanmin(cand, axis=1), np.nanmax(cand, axis=1)
    k = int(np.argmax(hi - lo))
    ends = np.array([s[k] * u + lo[k] * v, s[k] * u + hi[k] * v])
    return float(hi[k] - lo[k]), ends


def _slice_diameters(
    mask2d: np.ndarray, spacing_yx: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(longest mm, short axis mm, long-axis ends, short-axis ends) of one slice; ends ``(2, 2)``
    in continuous ``(row, col)`` indices."""
    pts = _hull(contour_points(mask2d) * spacing_yx)
    d = cdist(pts, pts)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    longest = float(d[i, j])
    ends = pts[[i, j]] / spacing_yx
    if longest == 0.0 or len(pts) < 3:
        return longest, 0.0, ends, ends.copy()
    u = (pts[j] - pts[i]) / longest
    short, short_ends = _perpendicular_chord(pts, u)
    return longest, short, ends, short_ends / spacing_yx


def axial_diameters(
    mask: np.ndarray, spacing_mm: tuple[float, float, float] | np.ndarray
) -> AxialDiameters | None:
    """Longest axial diameter and perpendicular short axis of a 3D lesion mask (see module doc).

    Args:
        mask: boolean ``(z, y, x)``; array axis 0 is the axial slice axis.
        spacing_mm: voxel size ``(z, y, x)`` in mm (only the in-plane part is used).
    Returns:
        :class:`AxialDiameters`, or ``None`` for an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise InputError(f"expected a 3D mask (z, y, x), got shape {m.shape}")
    sp = np.asarray(spacing_mm, dtype=float).reshape(-1)
    if sp.shape != (3,) or np.any(sp <= 0):
        raise InputError(f"spacing_mm must be 3 positive numbers (z, y, x), got {spacing_mm!r}")
    spacing_yx = sp[1:]
    best: AxialDiameters | None = None
    for z in np.flatnonzero(m.any(axis=(1, 2))):
        longest, short, ends, short_ends = _slice_diameters(m[z], spacing_yx)
        if best is None or longest > best.longest_mm:
            zz = np.full(2, float(z))
            best = AxialDiameters(
                longest, short, int(z), np.column_stack([zz, ends]), np.column_stack([zz, short_ends])
            )
    return best


def longest_axial_diameter_mm(mask: np.ndarray, spacing_mm: tuple[float, float, float] | np.ndarray) -> float:
    """Longest axial diameter (mm) of a 3D lesion mask; 0.0 for an empty mask."""
    result = axial_diameters(mask, spacing_mm)
    return 0.0 if result is None else result.longest_mm
