"""Shading of one synthetic lesion on its local voxel grid (HU).

Given the lesion's signed distance ``d`` (mm, < 0 inside) the new intensity is

    new = (1 - w) * original + w * body + sqrt(w * (2 - w)) * noise

* ``w`` is the soft-edge weight, a logistic of ``-d / edge_width`` rescaled to reach exactly 0 at
  ``d = 3 * edge_width`` (so the change is continuous and confined to a known footprint) and
  clipped to 1 inside;
* ``body`` = parenchyma HU + contrast (negative for hypodense) + rim (a band just inside the
  boundary) - necrosis (the core deeper than ``(1 - fraction) * radius``) + smooth texture; for
  the phenotypes with a fixed density (a water cyst, a lipiodol deposit) ``body`` starts from that
  absolute HU instead; calcified foci (punctate, the brightest part of a smooth random field
  inside the lesion) are set to their absolute HU;
* ``noise`` follows the scan's own noise model (level and in-plane grain), with the ``sqrt`` factor
  making the total noise variance ``(1 - w)^2 s^2 + w (2 - w) s^2 = s^2`` everywhere: the lesion is
  exactly as noisy as the scan, the transition band too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from liverseg.augment.appearance import NoiseModel, correlated_noise, smooth_noise
from liverseg.augment.params import LesionParams

__all__ = ["EDGE_CUTOFF", "Appearance", "render_lesion", "sample_appearance", "soft_weight"]

# The soft edge reaches zero at this many edge widths outside the boundary.
EDGE_CUTOFF = 3.0
_W_CUT = 1.0 / (1.0 + np.exp(EDGE_CUTOFF))


@dataclass(frozen=True)
class Appearance:
    """How one lesion looks (HU relative to the parenchyma, lengths in mm)."""

    kind: Literal["hypodense", "hyperdense", "cyst", "lipiodol"]
    contrast_hu: float
    edge_width_mm: float
    rim_hu: float
    rim_width_mm: float
    necrosis_hu: float
    necrosis_fraction: float
    texture_hu: float
    texture_scale_mm: float
    absolute_hu: float | None = None
    calcification_hu: float = 0.0
    calcification_fraction: float = 0.0

    @property
    def is_tumor(self) -> bool:
        """Whether the lesion is labelled tumor (2); a cyst is labelled liver (1)."""
        return self.kind != "cyst"

    @property
    def footprint_mm(self) -> float:
        """Distance outside the boundary (mm) up to which the image changes."""
        return EDGE_CUTOFF * self.edge_width_mm

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _phenotype(
    params: LesionParams, rng: np.random.Generator
) -> tuple[str | None, float | None, float, float]:
    """``(special kind or None, absolute HU, calcification HU, calcification fraction)``.

    Draws nothing when every phenotype probability is 0, so the random stream (and every result
    for a given seed) of the basic generator is unchanged.
    """
    if not (params.cyst_probability or params.lipiodol_probability or params.calcification_probability):
        return None, None, 0.0, 0.0
    u = rng.random(2)
    calc_hu, calc_f = (
        float(rng.uniform(*params.calcification_hu)),
        float(rng.uniform(*params.calcification_fraction)),
    )
    absolute = float(rng.uniform(*params.cyst_hu)), float(rng.uniform(*params.lipiodol_hu))
    if u[0] < params.cyst_probability:
        return "cyst", absolute[0], 0.0, 0.0
    if u[0] < params.cyst_probability + params.lipiodol_probability:
        return "lipiodol", absolute[1], 0.0, 0.0
    if u[1] < params.calcification_probability:
        return None, None, calc_hu, calc_f
    return None, None, 0.0, 0.0


def sample_appearance(params: LesionParams, diameter_mm: float, rng: np.random.Generator) -> Appearance:
    """Draw one lesion's appearance from ``params`` (a fixed number of draws, for determinism)."""
    u = rng.random(3)
    hyper = u[0] < params.hyperdense_probability
    contrast = float(rng.uniform(*(params.hyperdense_contrast_hu if hyper else params.hypodense_contrast_hu)))
    rim = u[1] < params.rim_probability
    necrotic = u[2] < params.necrosis_probability and diameter_mm >= params.necrosis_min_diameter_mm
    rim_hu, rim_w = float(rng.uniform(*params.rim_contrast_hu)), float(rng.uniform(*params.rim_width_mm))
    nec_hu, nec_f = (
        float(rng.uniform(*params.necrosis_contrast_hu)),
        float(rng.uniform(*params.necrosis_fraction)),
    )
    edge = float(rng.uniform(*params.edge_width_mm))
    texture, texture_scale = (
        float(rng.uniform(*params.texture_hu)),
        float(rng.uniform(*params.texture_scale_mm)),
    )
    special, absolute, calc_hu, calc_f = _phenotype(params, rng)
    if special == "cyst":  # water, homogeneous, thin sharp wall: no rim, core or texture
        return Appearance("cyst", 0.0, min(edge, 0.5), 0.0, rim_w, 0.0, nec_f, 0.0, texture_scale, absolute)
    if special == "lipiodol":  # dense and markedly heterogeneous
        return Appearance(
            "lipiodol", 0.0, edge, 0.0, rim_w, 0.0, nec_f, 4.0 * texture, texture_scale, absolute
        )
    return Appearance(
        kind="hyperdense" if hyper else "hypodense",
        contrast_hu=contrast if hyper else -contrast,
        edge_width_mm=edge,
        rim_hu=rim_hu if rim else 0.0,
        rim_width_mm=rim_w,
        necrosis_hu=nec_hu if necrotic else 0.0,
        necrosis_fraction=nec_f,
        texture_hu=texture,
        texture_scale_mm=texture_scale,
        calcification_hu=calc_hu,
        calcification_fraction=calc_f,
    )


def soft_weight(sdf_mm: np.ndarray, edge_width_mm: float) -> np.ndarray:
    """Blend weight in [0, 1]: ~0.5 on the boundary, 1 deep inside, exactly 0 from 3 widths outside."""
    z = np.clip(-sdf_mm / edge_width_mm, -50.0, 50.0)
    w = (1.0 / (1.0 + np.exp(-z)) - _W_CUT) / (1.0 - _W_CUT)
    return np.clip(w, 0.0, 1.0).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50.0, 50.0)))


def render_lesion(
    original: np.ndarray,
    sdf_mm: np.ndarray,
    appearance: Appearance,
    *,
    background_hu: float,
    radius_mm: float,
    noise: NoiseModel | None,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Shade one lesion (see the module docstring).

    Args:
        original: ``(z, y, x)`` local HU around the lesion (same shape as ``sdf_mm``).
        sdf_mm: signed distance to the lesion boundary in mm (< 0 inside).
        appearance: the lesion's appearance.
        background_hu: parenchyma HU around the lesion (the contrast reference).
        radius_mm: equivalent radius of the main blob (sizes the necrotic core).
        noise: the scan's noise model, or None for no added noise (the lesion is then smoother).
        spacing: voxel size in mm ``(z, y, x)``.
        rng: random generator (texture and noise).

    Returns:
        ``(new, weight)``: the new local HU (float32) and the blend weight (0 where unchanged).
    """
    a = appearance
    w = soft_weight(sdf_mm, a.edge_width_mm)
    base = background_hu + a.contrast_hu if a.absolute_hu is None else a.absolute_hu
    body = np.full(sdf_mm.shape, base, np.float32)
    if a.rim_hu:
        half = a.rim_width_mm / 2.0
        body += np.float32(a.rim_hu) * np.exp(-0.5 * ((sdf_mm + half) / half) ** 2).astype(np.float32)
    if a.necrosis_hu:
        depth = (1.0 - a.necrosis_fraction) * radius_mm
        soft = max(a.edge_width_mm, 1.0)
        body -= np.float32(a.necrosis_hu) * _sigmoid((-sdf_mm - depth) / soft).astype(np.float32)
    if a.texture_hu > 0:
        sigma = tuple(a.texture_scale_mm / s for s in spacing)
        body += np.float32(a.texture_hu) * smooth_noise(sdf_mm.shape, sigma, rng)
    if a.calcification_hu and a.calcification_fraction > 0:
        field_ = smooth_noise(sdf_mm.shape, tuple(1.0 / s for s in spacing), rng)
        inside = sdf_mm < -a.edge_width_mm
        if inside.any():
            cut = np.quantile(field_[inside], 1.0 - a.calcification_fraction)
            body = np.where(inside & (field_ >= cut), np.float32(a.calcification_hu), body)
    new = (1.0 - w) * original.astype(np.float32) + w * body
    if noise is not None and noise.sigma_hu > 0:
        new += np.sqrt(w * (2.0 - w)) * correlated_noise(sdf_mm.shape, noise, rng)  # type: ignore[arg-type]
    new = np.where(w > 0, new, original).astype(np.float32)
    return new, w
