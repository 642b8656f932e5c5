"""Lesion geometry: lobulated, randomly rotated ellipsoids and unions of 2-3 of them, in mm.

A shape is described by a signed distance (mm, negative inside) evaluated on a voxel box around the
lesion centre, so anisotropic spacing is handled by construction: the box coordinates are voxel
offsets times the spacing. The radial distance ``|p| - r(u)`` (``u`` the direction of ``p``) is used
instead of the exact Euclidean distance to the boundary; for the near-spherical shapes generated
here the two agree to first order at the boundary, which is all the soft edge needs.

Lobulation is spherical-harmonic-like radial noise: a small random lattice, smoothed, sampled on the
unit sphere (cubic upsampling, then trilinear lookup) and scaled to a maximal relative deviation ``A``, so the
boundary radius is ``r_ellipsoid(u) * (1 + A * g(u))`` with ``|g| <= 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from liverseg.augment.params import LesionParams

__all__ = ["Blob", "LesionShape", "sample_diameter", "sample_shape"]

# Directions on which the radial noise is normalised (Fibonacci sphere).
_N_SPHERE = 400


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(phi), np.sin(phi) * np.sin(theta), np.sin(phi) * np.cos(theta)], axis=1)


_SPHERE = _fibonacci_sphere(_N_SPHERE)


@dataclass(frozen=True, eq=False)
class Blob:
    """One lobulated ellipsoid.

    Attributes:
        center_mm: offset ``(z, y, x)`` in mm of the blob centre from the lesion centre.
        semi_axes_mm: ellipsoid semi-axes in mm (before rotation).
        rotation: 3x3 rotation matrix (columns: the ellipsoid axes in ``(z, y, x)`` mm space).
        lobulation: maximal relative radial deviation ``A`` (0 = smooth ellipsoid).
        lattice: radial-noise lattice ``(m, m, m)`` (a smoothed random lattice upsampled 2x with
            cubic splines), scaled so ``|g(u)| <= 1`` on the unit sphere.
    """

    center_mm: np.ndarray
    semi_axes_mm: np.ndarray
    rotation: np.ndarray
    lobulation: float
    lattice: np.ndarray

    def radial_noise(self, unit: np.ndarray) -> np.ndarray:
        """``g(u)`` for unit vectors ``unit`` of shape ``(3, ...)``; same trailing shape out."""
        m = self.lattice.shape[0]
        coords = (unit.reshape(3, -1) + 1.0) * 0.5 * (m - 1)
        # the lattice is already a fine cubic upsampling: trilinear lookup is smooth enough and fast
        g = ndimage.map_coordinates(self.lattice, coords, order=1, mode="nearest", prefilter=False)
        return g.reshape(unit.shape[1:])

    def boundary_radius(self, unit: np.ndarray) -> np.ndarray:
        """Boundary distance (mm) from the blob centre along unit vectors ``(3, ...)``."""
        local = np.tensordot(self.rotation.T, unit, axes=1)  # ellipsoid frame
        inv = np.tensordot(1.0 / self.semi_axes_mm**2, local**2, axes=1)
        r = 1.0 / np.sqrt(inv)
        if self.lobulation > 0:
            r = r * (1.0 + self.lobulation * self.radial_noise(unit))
        return r

    def signed_distance(self, dz: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Radial signed distance (mm, < 0 inside) at broadcastable offsets from the lesion centre."""
        pz, py, px = np.broadcast_arrays(
            dz - self.center_mm[0], dy - self.center_mm[1], dx - self.center_mm[2]
        )
        norm = np.sqrt(pz**2 + py**2 + px**2)
        safe = np.where(norm > 0, norm, 1.0)
        unit = np.stack([np.where(norm > 0, pz / safe, 1.0), py / safe, px / safe])
        return (norm - self.boundary_radius(unit)).astype(np.float32)

    @property
    def max_radius_mm(self) -> float:
        """Upper bound of the boundary radius (mm)."""
        return float(self.semi_axes_mm.max() * (1.0 + self.lobulation))

    @property
    def min_radius_mm(self) -> float:
        """Lower bound of the boundary radius (mm)."""
        return float(self.semi_axes_mm.min() * (1.0 - self.lobulation))


@dataclass(frozen=True, eq=False)
class LesionShape:
    """A lesion: the union of one or more :class:`Blob` (signed distance = their minimum)."""

    blobs: tuple[Blob, ...]
    requested_diameter_mm: float

    def signed_distance(self, dz: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        """Signed distance (mm, < 0 inside) at broadcastable offsets ``(z, y, x)`` mm from the centre."""
        sdf = self.blobs[0].signed_distance(dz, dy, dx)
        for blob in self.blobs[1:]:
            sdf = np.minimum(sdf, blob.signed_distance(dz, dy, dx))
        return sdf

    @property
    def bounding_radius_mm(self) -> float:
        """Radius of a sphere around the lesion centre that contains the whole lesion."""
        return max(float(np.linalg.norm(b.center_mm)) + b.max_radius_mm for b in self.blobs)

    @property
    def inner_radius_mm(self) -> float:
        """Radius of a sphere around the lesion centre that lies inside the lesion."""
        return self.blobs[0].min_radius_mm

    @property
    def equivalent_radius_mm(self) -> float:
        """Equivalent-sphere radius of the main blob (mm), used to size the necrotic core."""
        return float(np.prod(self.blobs[0].semi_axes_mm) ** (1.0 / 3.0))

    def scaled(self, factor: float) -> LesionShape:
        """The same shape scaled by ``factor`` (used to shrink a lesion that does not fit)."""
        blobs = tuple(
            Blob(b.center_mm * factor, b.semi_axes_mm * factor, b.rotation, b.lobulation, b.lattice)
            for b in self.blobs
        )
        return LesionShape(blobs, self.requested_diameter_mm * factor)


def sample_diameter(params: LesionParams, rng: np.random.Generator) -> float:
    """Draw one lesion diameter (mm) from ``params.diameter_mm`` and ``params.size_distribution``."""
    low, high = params.diameter_mm
    if params.size_distribution == "log_uniform":
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def _random_blob(
    radius_mm: float, center_mm: np.ndarray, params: LesionParams, rng: np.random.Generator
) -> Blob:
    ratios = rng.uniform(*params.axis_ratio, size=3)
    ratios = ratios / np.prod(ratios) ** (1.0 / 3.0)  # keep the volume of the sphere of radius_mm
    rotation = Rotation.random(random_state=rng).as_matrix()
    lobulation = float(rng.uniform(*params.lobulation))
    scale = float(rng.uniform(*params.lobulation_scale))
    m = max(3, round(2 * scale) + 1)
    coarse = ndimage.gaussian_filter(rng.standard_normal((m, m, m)), sigma=0.8, mode="wrap")
    lattice = ndimage.zoom(coarse, (2 * (m - 1) + 1) / m, order=3, mode="nearest", grid_mode=False)
    blob = Blob(np.asarray(center_mm, float), radius_mm * ratios, rotation, lobulation, lattice)
    g = blob.radial_noise(_SPHERE.T)
    peak = float(np.abs(g - g.mean()).max())
    # Interpolation is linear in the lattice and reproduces constants, so shifting and scaling the
    # lattice shifts and scales g; keep a 10 % reserve for peaks between the sphere samples.
    lattice = (lattice - g.mean()) / (1.1 * peak) if peak > 0 else np.zeros_like(lattice)
    return Blob(blob.center_mm, blob.semi_axes_mm, rotation, lobulation, lattice)


def sample_shape(diameter_mm: float, params: LesionParams, rng: np.random.Generator) -> LesionShape:
    """A random lesion of equivalent diameter ``diameter_mm`` (main blob), possibly merged.

    With probability ``params.merge_probability`` the lesion is the union of 2-3 blobs: satellites
    of 50-90 % of the main radius whose centres lie 0.5-0.9 x (sum of radii) away, so they overlap
    the main blob and form one connected lesion.
    """
    radius = diameter_mm / 2.0
    blobs = [_random_blob(radius, np.zeros(3), params, rng)]
    if rng.random() < params.merge_probability:
        n_blobs = int(rng.integers(params.merge_blobs[0], params.merge_blobs[1] + 1))
        for _ in range(n_blobs - 1):
            satellite = _random_blob(radius * float(rng.uniform(0.5, 0.9)), np.zeros(3), params, rng)
            direction = rng.standard_normal(3)
            direction /= np.linalg.norm(direction)
            # closer than the sum of the two inner radii: the blobs overlap, the lesion is connected
            dist = float(rng.uniform(0.5, 0.95)) * (blobs[0].min_radius_mm + satellite.min_radius_mm)
            blobs.append(
                Blob(
                    direction * dist,
                    satellite.semi_axes_mm,
                    satellite.rotation,
                    satellite.lobulation,
                    satellite.lattice,
                )
            )
    return LesionShape(tuple(blobs), float(diameter_mm))
