"""The synthetic abdomen: body wall, skeleton, lungs, liver with vessels and the other organs.

All positions and sizes are in mm relative to the field-of-view centre (see
:mod:`liverseg.synth.fields` for the axes: ``X`` to the patient's left, ``Y`` posterior, ``Z``
superior). The liver therefore lies at negative ``X`` (patient right), the spleen and stomach at
positive ``X``, the spine and kidneys posterior (positive ``Y``), the lungs at the top (high
``Z``). In-plane sizes scale with the body, which is shrunk when the field of view is too small
for it; craniocaudal sizes are absolute mm.

Typical HU (portal venous phase, randomised per case): air -1000, lung -850, fat -100, muscle 50,
liver 55-105 (vessels 40-90 brighter), spleen about the liver, kidneys 140-200, aorta 140-220,
vertebral cancellous bone 180-260 with a 600-900 HU cortex, ribs 350-600.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cc3d
import numpy as np

from liverseg.synth.fields import Grid, ellipsoid_radius, segment_distance, smooth_field, soft_step

__all__ = ["Anatomy", "build_anatomy"]


@dataclass
class Anatomy:
    """A phantom before lesions, blur and noise.

    Attributes:
        hu: float32 ``(z, y, x)`` noiseless HU.
        liver: bool ``(z, y, x)``, the liver (label 1), vessels inside it included.
        vessels: bool ``(z, y, x)``, intrahepatic vessels (a subset of ``liver``).
        params: the case's random parameters (HU values, sizes in mm) for the info dict.
    """

    hu: np.ndarray
    liver: np.ndarray
    vessels: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def _superellipse(grid: Grid, cx: float, cy: float, ax: float, ay: float, p: float = 2.2) -> np.ndarray:
    """In-plane normalised superellipse radius (``(1, ny, nx)``): < 1 inside."""
    return ((np.abs(grid.X - cx) / ax) ** p + (np.abs(grid.Y - cy) / ay) ** p) ** (1.0 / p)


def _largest(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return mask
    return cc3d.largest_k(mask.view(np.uint8), k=1, connectivity=6) > 0


def build_anatomy(rng: np.random.Generator, grid: Grid) -> Anatomy:
    """Draw one random abdomen on ``grid`` (deterministic for a given generator state)."""
    u = rng.uniform
    Lz, Ly, Lx = grid.extent
    Z, Y, X = grid.Z, grid.Y, grid.X
    full = grid.shape

    def bc(mask: np.ndarray) -> np.ndarray:
        return np.broadcast_to(mask, full)

    # ---- body outline and wall ------------------------------------------------------------
    a0, b0 = u(140, 170), u(100, 125)
    s = min(1.0, 0.46 * Lx / a0, 0.40 * Ly / b0)
    A, B = a0 * s, b0 * s
    cx, cy = u(-6, 6) * s, u(-10, 0) * s
    t_fat, t_mus = u(8, 28) * s, u(8, 14) * s
    a_in, b_in = A - t_fat - t_mus, B - t_fat - t_mus
    wobble = 0.015 * smooth_field(rng, full, grid.spacing, 60.0)
    rho_body = _superellipse(grid, cx, cy, A, B) - wobble
    rho_mus = _superellipse(grid, cx, cy, A - t_fat, B - t_fat) - wobble
    rho_cav = _superellipse(grid, cx, cy, a_in, b_in) - wobble
    tex = smooth_field(rng, full, grid.spacing, 8.0)

    hu = np.full(full, -1000.0, dtype=np.float32)
    # table: a plate below the back, separated by low-density padding
    y_tab = cy + B + u(6, 16) * s
    pad = (cy + B * 0.9 < Y) & (y_tab > Y) & (np.abs(X - cx) < 0.9 * A) & (rho_body >= 1)
    hu = np.where(pad, np.float32(-820.0), hu)
    table = bc((y_tab <= Y) & (y_tab + 10 * s > Y) & (np.abs(X) < min(230.0, Lx / 2)))
    hu = np.where(table, np.float32(u(100, 300)), hu)
    body = rho_body < 1
    fat_hu = u(-115, -85)
    hu[body] = (fat_hu + 8 * tex)[body]
    hu[rho_mus < 1] = (u(40, 60) + 6 * tex)[rho_mus < 1]
    cavity = rho_cav < 1
    hu[cavity] = (fat_hu + 10 + 10 * tex)[cavity]

    # ---- skeleton and great vessels (positions) ---------------------------------------------
    vb_r = u(17, 22) * s
    y_sp = cy + b_in - 55 * s
    x_sp = cx + u(-3, 3) * s
    spine_body = bc(((X - x_sp) ** 2 + (Y - y_sp) ** 2) < vb_r**2)
    disc = bc(np.mod(Z - u(0, 32), 32.0) < 7.0)
    aorta = bc(((X - x_sp - 18 * s) ** 2 + (Y - y_sp + vb_r + 12 * s) ** 2) < (u(10, 13) * s) ** 2)
    ivc = ((X - x_sp + 24 * s) ** 2 + (Y - y_sp + vb_r + 10 * s) ** 2) < (u(9, 12) * s) ** 2
    ivc = bc(ivc)
    paraspinal = bc(
        (((np.abs(X - x_sp) - 32 * s) / (24 * s)) ** 2 + ((Y - y_sp - 48 * s) / (22 * s)) ** 2) < 1
    )

    # ---- diaphragm, lungs, mediastinum --------------------------------------------------------
    z_dr = Lz / 2 - u(0.12, 0.22) * Lz
    z_dl = z_dr - u(8, 25)
    x_r, x_l = cx - 0.45 * a_in, cx + 0.45 * a_in
    dome = ((Y - cy) / (0.9 * b_in)) ** 2
    h_dia = np.maximum(
        z_dr - 55 * (((X - x_r) / (0.55 * a_in)) ** 2 + dome),
        z_dl - 55 * (((X - x_l) / (0.55 * a_in)) ** 2 + dome),
    )
    thorax = cavity & (h_dia < Z)
    heart = (((X - cx - 15 * s) / (0.32 * a_in)) ** 2 + ((Y - cy + 0.2 * b_in) / (0.5 * b_in)) ** 2) < 1
    mediastinum = thorax & heart & (y_sp - vb_r > Y)
    lungs = thorax & ~mediastinum
    hu[lungs] = (-860 + 20 * tex)[lungs]
    hu[mediastinum] = (u(30, 45) + 5 * tex)[mediastinum]
    abdomen = cavity & ~thorax

    # ---- bowel (lower abdomen), stomach ----------------------------------------------------
    h_liver = min(u(150, 185), 0.9 * Lz)
    z_top = z_dr - 3.0
    f_bowel = smooth_field(rng, full, grid.spacing, 25.0)
    f_gas = smooth_field(rng, full, grid.spacing, 12.0)
    bowel = abdomen & (z_top - 0.7 * h_liver > Z) & (f_bowel > 0.3) & (y_sp > Y)
    hu[bowel] = (u(20, 40) + 8 * tex)[bowel]
    gas = bowel & (f_gas > 1.6)
    hu[gas] = -900.0
    st_c = (z_dl - 45, cy - 0.2 * b_in, cx + 0.32 * a_in)
    st_ax = (45.0, 0.3 * b_in, 0.25 * a_in)
    r_st = ellipsoid_radius(grid, st_c, st_ax)
    stomach = abdomen & (r_st < 1) & (h_dia - 3 > Z)
    hu[stomach] = u(5, 25)
    hu[stomach & (r_st > 0.9)] = 40.0
    hu[stomach & (r_st <= 0.9) & (st_c[1] - 0.45 * st_ax[1] > Y)] = -1000.0  # supine: gas anterior

    # ---- spleen, kidneys ------------------------------------------------------------------
    liver_hu = u(55, 105)
    lob = smooth_field(rng, full, grid.spacing, 40.0)
    spleen = (
        abdomen
        & (h_dia - 3 > Z)
        & (
            ellipsoid_radius(
                grid, (z_dl - 50, cy + 0.35 * b_in, cx + 0.68 * a_in), (50.0, 0.3 * b_in, 0.2 * a_in)
            )
            < 1 + 0.05 * lob
        )
    )
    spleen_hu = liver_hu + u(-15, 10)
    hu[spleen] = (spleen_hu + 4 * tex)[spleen]
    kidney_hu = u(140, 200)
    kidneys = np.zeros(full, dtype=bool)
    for side, zc in ((-1.0, z_dr - u(105, 125)), (1.0, z_dl - u(90, 105))):
        kc = (zc, y_sp - 5 * s, x_sp + side * (vb_r + 45 * s))
        r_k = ellipsoid_radius(grid, kc, (55.0, 28 * s, 24 * s))
        k = abdomen & (r_k < 1)
        kidneys |= k
        hu[k] = (kidney_hu + 5 * tex)[k]
        medulla = k & (r_k < 0.65)
        hu[medulla] = kidney_hu - 50
        sinus = medulla & (side * (X - kc[2]) < 0) & (r_k < 0.45)
        hu[sinus] = -40.0

    # ---- liver ------------------------------------------------------------------------------
    f = u(0.9, 1.1)
    right = ellipsoid_radius(
        grid,
        (z_top - h_liver / 2, cy - 0.05 * b_in + u(-5, 5) * s, cx - 0.42 * a_in),
        (h_liver / 2, 0.7 * b_in * f, 0.56 * a_in * f),
    )
    left = ellipsoid_radius(
        grid,
        (z_top - 0.3 * h_liver, cy - 0.42 * b_in, cx + 0.12 * a_in),
        (0.3 * h_liver, 0.32 * b_in, 0.42 * a_in * u(0.7, 1.2)),
    )
    liver = (np.minimum(right, left) < 1 + 0.1 * lob) & abdomen & (rho_cav < 0.97) & (h_dia - 2 > Z)
    gb = None
    if rng.random() < 0.6:
        gb = (
            ellipsoid_radius(
                grid, (z_top - 0.75 * h_liver, cy - 0.35 * b_in, cx - 0.2 * a_in), (28.0, 13 * s, 13 * s)
            )
            < 1
        )
    blocked = kidneys | spine_body | aorta | ivc | paraspinal
    if gb is not None:
        blocked |= gb
    liver = _largest(liver & ~blocked)
    hu[liver] = (liver_hu + 5 * tex)[liver]
    vessels, vessel_hu = _liver_vessels(
        rng, grid, liver, hu, liver_hu, (z_top, y_sp - vb_r - 10 * s, x_sp - 24 * s)
    )
    if gb is not None:
        gb &= abdomen
        hu[gb] = u(0, 20)

    # ---- skeleton and great vessels (painted last) -----------------------------------------
    hu[paraspinal & body] = (u(40, 60) + 6 * tex)[paraspinal & body]
    cortex = spine_body & (((X - x_sp) ** 2 + (Y - y_sp) ** 2) > (vb_r - 2.5 * s) ** 2)
    hu[spine_body] = np.where(disc, np.float32(80.0), np.float32(u(180, 260)))[spine_body]
    hu[cortex & ~disc] = u(600, 900)
    r_canal = np.sqrt((X - x_sp) ** 2 + (Y - y_sp - vb_r - 10 * s) ** 2)
    arch = (
        (r_canal < 15 * s) | ((np.abs(X - x_sp) < 4 * s) & (y_sp < Y) & (y_sp + vb_r + 45 * s > Y))
    ) & ~disc
    hu[arch & body] = 500.0
    hu[bc(r_canal < 8 * s) & body] = 15.0
    aorta_hu = u(140, 220)
    hu[aorta] = aorta_hu
    hu[ivc] = u(100, 150)
    ribs = _ribs(
        rng, grid, cx, cy, A - t_fat - t_mus / 2, B - t_fat - t_mus / 2, 5 * s, z_top - 0.55 * h_liver
    )
    ribs &= body & ~lungs
    hu[ribs] = (u(350, 600) + 30 * tex)[ribs]
    liver &= ~ribs

    params = {
        "body_semi_axes_mm": [round(A, 1), round(B, 1)],
        "liver_hu": round(liver_hu, 1),
        "vessel_hu": round(vessel_hu, 1),
        "spleen_hu": round(spleen_hu, 1),
        "kidney_hu": round(kidney_hu, 1),
        "aorta_hu": round(aorta_hu, 1),
        "fat_hu": round(fat_hu, 1),
        "liver_height_mm": round(h_liver, 1),
        "gallbladder": gb is not None,
    }
    return Anatomy(hu=hu, liver=liver, vessels=vessels & liver, params=params)


def _ribs(
    rng: np.random.Generator,
    grid: Grid,
    cx: float,
    cy: float,
    a: float,
    b: float,
    half_width: float,
    z_low: float,
) -> np.ndarray:
    """Rib cross-sections: a band along the body wall, in oblique bands ~35 mm apart in z."""
    dx, dy = grid.X - cx, grid.Y - cy
    rho = np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
    band = np.abs(rho - 1.0) * min(a, b) < half_width
    theta = np.arctan2(dy, dx)
    lateral = ~((np.abs(dx) < 0.3 * a) & (dy < 0)) & ~((np.abs(dx) < 0.25 * a) & (dy > 0))
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin(2 * np.pi * (grid.Z + 60.0 * np.abs(theta)) / 35.0 + phase) > 0.6
    return band & lateral & stripes & (z_low < grid.Z)


def _liver_vessels(
    rng: np.random.Generator,
    grid: Grid,
    liver: np.ndarray,
    hu: np.ndarray,
    liver_hu: float,
    ivc_top: tuple[float, float, float],
) -> tuple[np.ndarray, float]:
    """Portal and hepatic vein trees as tapered tubes inside the liver; paints ``hu`` in place."""
    vessels = np.zeros(liver.shape, dtype=bool)
    vessel_hu = liver_hu + rng.uniform(40, 90)
    if liver.sum() < 50:
        return vessels, vessel_hu
    idx = np.argwhere(liver)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    sub = grid.sub(box)
    pts = np.stack([grid.Z.ravel()[idx[:, 0]], grid.Y.ravel()[idx[:, 1]], grid.X.ravel()[idx[:, 2]]], axis=1)
    center = pts.mean(axis=0)
    # hilum: medial, inferior part of the liver; hepatic veins drain to the IVC at the top
    hilum = np.array([np.percentile(pts[:, 0], 30), center[1] + 10.0, np.percentile(pts[:, 2], 70)])
    top = np.array([min(ivc_top[0] - 15.0, np.percentile(pts[:, 0], 90)), ivc_top[1], ivc_top[2]])
    trees = [(hilum, int(rng.integers(4, 7)), rng.uniform(6, 8)), (top, 3, rng.uniform(4.5, 6.5))]
    weight = np.zeros(sub.shape, dtype=np.float32)
    for root, n_branches, r0 in trees:
        for _ in range(n_branches):
            target = pts[rng.integers(len(pts))]
            segs = [(root, target, r0)]
            mid = root + 0.5 * (target - root)
            segs.append((mid, pts[rng.integers(len(pts))], 0.5 * r0))
            for a, b, r in segs:
                dist, t = segment_distance(sub, a, b)
                radius = np.maximum(r * (1.0 - 0.6 * t), 1.5)
                weight = np.maximum(weight, soft_step(radius - dist, 0.6))
    liver_box = liver[box]
    weight *= liver_box
    hu[box] = hu[box] * (1 - weight) + vessel_hu * weight
    vessels[box] = (weight >= 0.5) & liver_box
    return vessels, vessel_hu
