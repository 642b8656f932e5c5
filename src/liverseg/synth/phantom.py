"""Synthetic abdominal CT phantoms with liver and tumor labels, for tests and the fallback demo.

:func:`make_phantom` draws one case: a body with subcutaneous fat, muscle wall, spine and ribs,
lung bases at the top, a lobulated liver with brighter vessels on the patient's right, spleen,
stomach, kidneys, aorta/IVC, bowel, a table below the patient, and hypo-/hyperdense liver
lesions of several sizes with soft edges; then partial-volume blur and correlated CT noise.
Everything is random per case (shape, position, size, HU values, noise) and deterministic per
seed (``np.random.default_rng``).

The volumes are on the canonical grid (identity direction, LPS: array x runs to the patient's
left, y to posterior, z to superior), centred on the physical origin. Both volumes carry
``metadata["synthetic"] = True``: phantoms are never real data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from liverseg.errors import ConfigError
from liverseg.io.labels import LabelMap
from liverseg.io.volume import Volume
from liverseg.synth.anatomy import build_anatomy
from liverseg.synth.fields import Grid
from liverseg.synth.tumors import add_lesions

__all__ = ["DEFAULT_SHAPE", "DEFAULT_SPACING", "GENERATOR", "make_phantom"]

log = logging.getLogger(__name__)

#: Default grid ``(z, y, x)``: 240 x 384 x 384 mm, a typical abdominal field of view.
DEFAULT_SHAPE: tuple[int, int, int] = (48, 128, 128)
#: Default spacing (mm, z, y, x): 5 mm slices, 3 mm pixels.
DEFAULT_SPACING: tuple[float, float, float] = (5.0, 3.0, 3.0)
#: Name and version of the generator, recorded in metadata (bump when the output changes).
GENERATOR = "liverseg.synth.phantom/1"
_MIN_SIZE = 8


def _generator(rng: np.random.Generator | int | None) -> tuple[np.random.Generator, int | None]:
    if isinstance(rng, np.random.Generator):
        return rng, None
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(None if rng is None else int(rng)), (None if rng is None else int(rng))
    raise ConfigError(f"rng must be a numpy Generator, an integer seed or None, got {type(rng).__name__}")


def _check_grid(
    shape: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    sh = tuple(int(s) for s in shape)
    sp = tuple(float(s) for s in spacing)
    if len(sh) != 3 or min(sh) < _MIN_SIZE:
        raise ConfigError(
            f"phantom shape must be 3 sizes (z, y, x) of at least {_MIN_SIZE}, got {tuple(shape)}"
        )
    if len(sp) != 3 or not all(np.isfinite(sp)) or min(sp) <= 0:
        raise ConfigError(f"phantom spacing must be 3 positive numbers (mm, z, y, x), got {tuple(spacing)}")
    return sh, sp  # type: ignore[return-value]


def make_phantom(
    rng: np.random.Generator | int | None = 0,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    *,
    tumors: bool = True,
    n_lesions: int | None = None,
    noise_sigma_hu: float | None = None,
) -> tuple[Volume, Volume, dict[str, Any]]:
    """Draw one synthetic CT with its label map.

    Args:
        rng: a ``np.random.Generator`` (consumed) or an integer seed; the same seed gives
            bit-identical volumes.
        shape: grid ``(z, y, x)``; anatomy is defined in mm, so another spacing gives the same
            patient at another resolution (the body is shrunk only if it does not fit).
        spacing: voxel size in mm ``(z, y, x)``.
        tumors: insert liver lesions (1-5, at least one >= 10 mm and, with two or more, one
            < 10 mm); ``False`` gives a tumor-free liver.
        n_lesions: force the number of lesions (when ``tumors``).
        noise_sigma_hu: standard deviation of the CT noise (default: random 10-20 HU).

    Returns:
        ``(image, label, info)``: image float32 HU (integral values, as real CT),
        label uint8 (0 background, 1 liver, 2 tumor) on the same grid, and ``info`` with the
        random parameters, ``liver_volume_ml``, ``tumor_volume_ml`` and one record per lesion
        (centre voxel and LPS mm, diameter mm, kind, contrast HU, ...).
    """
    t0 = time.perf_counter()
    gen, seed = _generator(rng)
    shape_t, spacing_t = _check_grid(shape, spacing)
    grid = Grid.make(shape_t, spacing_t)
    anatomy = build_anatomy(gen, grid)
    hu = anatomy.hu
    label = np.zeros(shape_t, dtype=np.uint8)
    label[anatomy.liver] = 1

    lesions: list[dict[str, Any]] = []
    if tumors:
        n = (
            int(n_lesions)
            if n_lesions is not None
            else int(gen.choice([1, 2, 3, 4, 5], p=[0.2, 0.3, 0.25, 0.15, 0.1]))
        )
        tumor, lesions = add_lesions(gen, grid, hu, anatomy.liver, anatomy.params["liver_hu"], n)
        label[tumor] = 2

    # partial-volume blur (~1 mm in-plane PSF or 0.4 voxel, whichever is larger), then noise that
    # is correlated in-plane like reconstructed CT noise
    sigma_vox = [max(1.0, 0.4 * s) / s for s in spacing_t]
    image = ndimage.gaussian_filter(hu, sigma_vox, mode="nearest")
    noise_sigma = float(noise_sigma_hu) if noise_sigma_hu is not None else float(gen.uniform(10, 20))
    noise = ndimage.gaussian_filter(gen.standard_normal(shape_t, dtype=np.float32), (0.0, 0.6, 0.6))
    noise *= np.float32(noise_sigma / max(float(noise.std()), 1e-6))
    image += noise
    image = np.clip(np.round(image), -1024, 3071).astype(np.float32)

    nz, ny, nx = shape_t
    sz, sy, sx = spacing_t
    origin = (-(nx - 1) / 2.0 * sx, -(ny - 1) / 2.0 * sy, -(nz - 1) / 2.0 * sz)
    meta = {"synthetic": True, "source": "synthetic phantom", "generator": GENERATOR, "seed": seed}
    image_vol = Volume(image, spacing_t, origin, np.eye(3), meta)
    label_vol = LabelMap(label, spacing_t, origin, np.eye(3), meta)

    voxel_ml = image_vol.voxel_volume_ml
    for i, rec in enumerate(lesions, start=1):
        rec["id"] = i
        rec["center_lps_mm"] = [
            round(float(v), 2) for v in image_vol.index_to_physical(rec["center_voxel_zyx"])
        ]
        rec["volume_ml"] = round(rec["voxels"] * voxel_ml, 4)
    info: dict[str, Any] = {
        "synthetic": True,
        "generator": GENERATOR,
        "seed": seed,
        "shape_zyx": list(shape_t),
        "spacing_zyx_mm": list(spacing_t),
        **anatomy.params,
        "noise_sigma_hu": round(noise_sigma, 2),
        "liver_volume_ml": round(float(np.count_nonzero(label)) * voxel_ml, 3),
        "tumor_volume_ml": round(float(np.count_nonzero(label == 2)) * voxel_ml, 3),
        "lesions": lesions,
    }
    log.debug(
        "phantom seed=%s shape=%s: %d lesion(s) in %.2f s",
        seed,
        shape_t,
        len(lesions),
        time.perf_counter() - t0,
    )
    return image_vol, label_vol, info
