"""Liver lesions of the phantoms: hypo- or hyperdense ellipsoids with soft edges, inside the liver.

Sizes follow the clinical cut-off of the seed reports (RECIST-like, longest diameter >= 10 mm is
"measurable"): a phantom with tumors gets one lesion of 12-40 mm, a second of 5-9.5 mm when it
has two or more, and further ones of either kind. Each lesion is placed where the liver's
distance map (mm) leaves room for its whole soft edge, apart from the other lesions; its label
(2) is the half-maximum of the edge profile intersected with the liver, so it never leaves the
liver. Large hypodense lesions may get a necrotic core, some lesions an enhancing rim.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy import ndimage

from liverseg.synth.fields import Grid, ellipsoid_radius, smooth_field, soft_step

__all__ = ["add_lesions", "draw_diameters"]

log = logging.getLogger(__name__)

SMALL_MM = (5.0, 9.5)
LARGE_MM = (12.0, 40.0)


def draw_diameters(rng: np.random.Generator, n: int) -> list[float]:
    """Nominal diameters (mm) of ``n`` lesions: the first >= 12 mm, the second < 10 mm, then mixed."""
    out: list[float] = []
    for k in range(n):
        small = k == 1 or (k >= 2 and rng.random() < 0.4)
        if small:
            out.append(float(rng.uniform(*SMALL_MM)))
        else:
            lo, hi = LARGE_MM if k == 0 else (10.0, 35.0)
            out.append(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
    return out


def add_lesions(
    rng: np.random.Generator,
    grid: Grid,
    hu: np.ndarray,
    liver: np.ndarray,
    liver_hu: float,
    n: int,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Insert up to ``n`` lesions into ``hu`` (modified in place, only inside ``liver``).

    Args:
        rng: random generator (consumed deterministically).
        grid: the phantom's coordinate grid (mm).
        hu: float32 ``(z, y, x)`` noiseless HU image.
        liver: bool ``(z, y, x)`` liver mask.
        liver_hu: the parenchyma's HU (lesion contrast is relative to it).
        n: requested number of lesions (fewer when the liver has no room).

    Returns:
        A bool tumor mask (inside ``liver``) and one record per inserted lesion: ``center_voxel_zyx``,
        ``diameter_mm`` (nominal), ``semi_axes_mm`` (z, y, x), ``kind`` ("hypo"/"hyper"),
        ``contrast_hu``, ``edge_width_mm`` (10-90 %), ``necrotic_core``, ``rim``, ``voxels``.
    """
    tumor = np.zeros(liver.shape, dtype=bool)
    records: list[dict[str, Any]] = []
    if n <= 0 or not liver.any():
        return tumor, records
    dist = ndimage.distance_transform_edt(liver, sampling=grid.spacing).astype(np.float32)
    placed: list[tuple[np.ndarray, float]] = []
    for d_nominal in draw_diameters(rng, n):
        semi = d_nominal / 2.0 * rng.uniform(0.85, 1.15, size=3)
        edge = float(rng.uniform(0.4, 1.1))  # logistic scale (mm)
        center = None
        for shrink in (1.0, 0.8, 0.65, 0.5):
            reach = float(semi.max() * shrink + 3.0 * edge + 1.0)
            ok = dist >= reach
            for c_mm, r_mm in placed:
                ok &= _distance_from(grid, c_mm) >= reach + r_mm + 2.0
            candidates = np.flatnonzero(ok)
            if candidates.size:
                semi = semi * shrink
                flat = int(candidates[rng.integers(candidates.size)])
                center = np.array(np.unravel_index(flat, liver.shape))
                break
        if center is None:
            log.debug("no room in the liver for a %.1f mm lesion: skipped", d_nominal)
            continue
        rec = _draw_lesion(rng, grid, hu, liver, tumor, liver_hu, center, semi, edge)
        if rec["voxels"] == 0:
            continue
        c_mm = np.array([grid.Z.ravel()[center[0]], grid.Y.ravel()[center[1]], grid.X.ravel()[center[2]]])
        placed.append((c_mm, float(semi.max() + 3.0 * edge)))
        rec["diameter_mm"] = round(float(2.0 * np.cbrt(np.prod(semi))), 2)
        records.append(rec)
    return tumor, records


def _distance_from(grid: Grid, c_mm: np.ndarray) -> np.ndarray:
    return np.sqrt((grid.Z - c_mm[0]) ** 2 + (grid.Y - c_mm[1]) ** 2 + (grid.X - c_mm[2]) ** 2)


def _draw_lesion(
    rng: np.random.Generator,
    grid: Grid,
    hu: np.ndarray,
    liver: np.ndarray,
    tumor: np.ndarray,
    liver_hu: float,
    center: np.ndarray,
    semi: np.ndarray,
    edge: float,
) -> dict[str, Any]:
    """Paint one lesion centred at voxel ``center`` (semi-axes ``semi`` mm, z, y, x)."""
    c_mm = np.array([grid.Z.ravel()[center[0]], grid.Y.ravel()[center[1]], grid.X.ravel()[center[2]]])
    box = grid.box_around(c_mm, float(semi.max() + 6.0 * edge + max(grid.spacing)))
    sub = grid.sub(box)
    r = ellipsoid_radius(sub, c_mm, semi)
    mean_semi = float(np.mean(semi))
    diameter = 2.0 * mean_semi
    if diameter > 15.0:  # lobulated outline for larger lesions
        r = r * (1.0 + 0.08 * smooth_field(rng, sub.shape, grid.spacing, max(diameter / 2.0, 4.0)))
    signed = (1.0 - r) * mean_semi  # ~mm inside (+) / outside (-) the surface
    liver_box = liver[box]
    profile = soft_step(signed, edge) * liver_box

    kind = "hypo" if rng.random() < 0.75 else "hyper"
    contrast = -float(rng.uniform(20, 60)) if kind == "hypo" else float(rng.uniform(25, 60))
    value = liver_hu + contrast + 5.0 * smooth_field(rng, sub.shape, grid.spacing, 4.0)
    necrotic = kind == "hypo" and diameter >= 25.0 and rng.random() < 0.5
    if necrotic:
        value = value - float(rng.uniform(15, 30)) * soft_step((0.55 - r) * mean_semi, 1.5)
    rim = rng.random() < 0.25
    if rim:
        value = value + float(rng.uniform(15, 30)) * np.exp(-(((r - 0.9) / 0.12) ** 2))
    local = hu[box]
    hu[box] = local * (1.0 - profile) + value * profile
    mask = (profile >= 0.5) & liver_box
    tumor[box] |= mask
    return {
        "center_voxel_zyx": [int(v) for v in center],
        "semi_axes_mm": [round(float(v), 2) for v in semi],
        "kind": kind,
        "contrast_hu": round(contrast, 1),
        "edge_width_mm": round(4.39 * edge, 2),
        "necrotic_core": bool(necrotic),
        "rim": bool(rim),
        "voxels": int(mask.sum()),
    }
