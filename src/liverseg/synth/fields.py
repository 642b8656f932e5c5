"""Geometric building blocks of the phantoms: a physical coordinate grid, smooth random fields,
ellipsoids and tubes. Everything is in millimetres on a ``(z, y, x)`` grid.

Coordinates are offsets from the field-of-view centre along the canonical (LPS) axes:
``X`` increases towards the patient's **left**, ``Y`` towards **posterior**, ``Z`` towards
**superior**; they are broadcastable arrays of shape ``(1, 1, nx)``, ``(1, ny, 1)``, ``(nz, 1, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Grid", "ellipsoid_radius", "segment_distance", "smooth_field", "soft_step"]


@dataclass(frozen=True)
class Grid:
    """Physical coordinates (mm, float32) of the voxel centres of a ``shape`` grid.

    Attributes:
        shape: ``(nz, ny, nx)``.
        spacing: ``(sz, sy, sx)`` in mm.
        Z, Y, X: broadcastable coordinate arrays (see the module docstring).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    Z: np.ndarray
    Y: np.ndarray
    X: np.ndarray

    @classmethod
    def make(cls, shape: Sequence[int], spacing: Sequence[float]) -> Grid:
        nz, ny, nx = (int(s) for s in shape)
        sz, sy, sx = (float(s) for s in spacing)
        z = ((np.arange(nz) - (nz - 1) / 2.0) * sz).astype(np.float32)
        y = ((np.arange(ny) - (ny - 1) / 2.0) * sy).astype(np.float32)
        x = ((np.arange(nx) - (nx - 1) / 2.0) * sx).astype(np.float32)
        return cls((nz, ny, nx), (sz, sy, sx), z[:, None, None], y[None, :, None], x[None, None, :])

    @property
    def extent(self) -> tuple[float, float, float]:
        """Field of view in mm ``(z, y, x)``."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing, strict=True))  # type: ignore[return-value]

    def sub(self, box: tuple[slice, slice, slice]) -> Grid:
        """The coordinates of a sub-box (for local computations around one structure)."""
        shape = tuple(s.stop - s.start for s in box)
        return Grid(shape, self.spacing, self.Z[box[0]], self.Y[:, box[1]], self.X[:, :, box[2]])  # type: ignore[arg-type]

    def box_around(self, center_zyx_mm: Sequence[float], radius_mm: float) -> tuple[slice, slice, slice]:
        """Index box (clipped to the grid) containing the sphere ``radius_mm`` around a point."""
        out = []
        for c, n, s, coords in zip(
            center_zyx_mm,
            self.shape,
            self.spacing,
            (self.Z.ravel(), self.Y.ravel(), self.X.ravel()),
            strict=True,
        ):
            lo = int(np.floor((c - radius_mm - coords[0]) / s))
            hi = int(np.ceil((c + radius_mm - coords[0]) / s)) + 1
            out.append(slice(min(max(0, lo), n - 1), max(min(n, hi), 1)))
        return (out[0], out[1], out[2])


def _bspline_matrix(n_fine: int, n_coarse: int) -> np.ndarray:
    """``(n_fine, n_coarse)`` cubic B-spline weights of fine samples spread over the inner coarse
    cells (two cells of margin each side, so every row sums to 1)."""
    c = 2.0 + (n_coarse - 5.0) * (np.arange(n_fine) / max(n_fine - 1, 1))
    t = np.abs(c[:, None] - np.arange(n_coarse)[None, :])
    w = np.where(t < 1.0, 2.0 / 3.0 - t**2 + t**3 / 2.0, np.where(t < 2.0, (2.0 - t) ** 3 / 6.0, 0.0))
    return w.astype(np.float32)


def smooth_field(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], corr_mm: float
) -> np.ndarray:
    """A smooth random field (float32, zero mean, unit std) with correlation length ``corr_mm``.

    White noise on a coarse grid with ``corr_mm`` cells, evaluated as a cubic B-spline (no
    prefilter: a smooth approximation, which is all a random field needs) with one small matrix
    product per axis: cheap, and resolution independent (the same seed and field of view give
    the same anatomy at any spacing).
    """
    shape = tuple(int(n) for n in shape)
    extent = [n * s for n, s in zip(shape, spacing, strict=True)]
    coarse_shape = tuple(int(np.ceil(e / corr_mm)) + 5 for e in extent)
    field = rng.standard_normal(coarse_shape).astype(np.float32)
    for axis, (n_f, n_c) in enumerate(zip(shape, coarse_shape, strict=True)):
        field = np.moveaxis(np.tensordot(_bspline_matrix(n_f, n_c), field, axes=([1], [axis])), 0, axis)
    field = np.ascontiguousarray(field, dtype=np.float32)
    field -= np.float32(field.mean())
    std = float(field.std())
    if std > 0:
        field /= np.float32(std)
    return field


def ellipsoid_radius(grid: Grid, center_zyx: Sequence[float], semi_axes_zyx: Sequence[float]) -> np.ndarray:
    """Normalised ellipsoid radius ``sqrt(sum(((p - c) / a)^2))``: < 1 inside, 1 on the surface."""
    cz, cy, cx = center_zyx
    az, ay, ax = semi_axes_zyx
    r2 = ((grid.Z - cz) / az) ** 2 + ((grid.Y - cy) / ay) ** 2 + ((grid.X - cx) / ax) ** 2
    return np.sqrt(r2, dtype=np.float32)


def segment_distance(
    grid: Grid, a_zyx: Sequence[float], b_zyx: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) from every grid point to the segment ``a``-``b``, and the position ``t`` in
    ``[0, 1]`` of the closest point along it (for tapering tube radii)."""
    a = np.asarray(a_zyx, dtype=np.float32)
    d = np.asarray(b_zyx, dtype=np.float32) - a
    length2 = float(d @ d) or 1e-6
    pz, py, px = grid.Z - a[0], grid.Y - a[1], grid.X - a[2]
    t = np.clip((pz * d[0] + py * d[1] + px * d[2]) / length2, 0.0, 1.0).astype(np.float32)
    dist = np.sqrt((pz - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (px - t * d[2]) ** 2, dtype=np.float32)
    return dist, t


def soft_step(signed_mm: np.ndarray, width_mm: float) -> np.ndarray:
    """Logistic edge: 1 well inside (``signed_mm > 0``), 0.5 on the boundary, 0 outside.

    ``width_mm`` is the 10-90 % edge width divided by ~4.4 (a logistic scale).
    """
    w = max(float(width_mm), 1e-3)
    return (1.0 / (1.0 + np.exp(-np.clip(signed_mm / w, -40.0, 40.0)))).astype(np.float32)
