"""Intensity preprocessing of CT in Hounsfield units: windows, clipping, normalisation.

Every function takes an array of any shape (a volume ``(z, y, x)``, a slab ``(C, y, x)``, a
batch...) and returns a new ``float32`` array of the same shape; inputs are never modified.

Windows are given as ``(level, width)`` in HU, the radiologist's convention: a window maps
``[level - width / 2, level + width / 2]`` linearly onto ``[0, 1]`` and clips outside it.
The named presets in :data:`WINDOWS` include the clinical liver and abdomen windows and the
variants used by the reports this project grew from (``seed_*``), so their preprocessing can be
reproduced by name in an experiment config.
"""

from __future__ import annotations

import logging

import numpy as np

from liverseg.errors import ConfigError, InputError

__all__ = [
    "WINDOWS",
    "clip_hu",
    "get_window",
    "normalize_minmax",
    "normalize_zscore",
    "window",
    "window_bounds",
]

log = logging.getLogger(__name__)


def _from_bounds(lo: float, hi: float) -> tuple[float, float]:
    """``(level, width)`` of the window whose clip range is ``[lo, hi]`` HU."""
    return ((lo + hi) / 2.0, hi - lo)


#: Named HU windows: name -> ``(level, width)`` in HU.
WINDOWS: dict[str, tuple[float, float]] = {
    # clinical presets
    "liver": (50.0, 400.0),  # W400/L50: [-150, 250] HU
    "abdomen": (40.0, 350.0),  # W350/L40: [-135, 215] HU
    "soft_tissue": (40.0, 400.0),  # [-160, 240] HU
    "bone": (400.0, 1800.0),  # [-500, 1300] HU
    "lung": (-600.0, 1500.0),  # [-1350, 150] HU
    # variants of the seed reports (reproducible baselines)
    "seed_clip_100_400": _from_bounds(-100.0, 400.0),  # clip to [-100, 400] HU
    "seed_clip_200_250": _from_bounds(-200.0, 250.0),  # clip to [-200, 250] HU
    "seed_w150_l30": (30.0, 150.0),  # ``windowed(w=150, l=30)``: [-45, 105] HU
}


def get_window(name: str) -> tuple[float, float]:
    """The ``(level, width)`` preset called ``name``; :class:`ConfigError` listing the names otherwise."""
    try:
        return WINDOWS[name]
    except KeyError:
        raise ConfigError(
            f"unknown HU window {name!r}; expected one of {', '.join(sorted(WINDOWS))}"
        ) from None


def window_bounds(level: float, width: float) -> tuple[float, float]:
    """The HU range ``(lo, hi) = (level - width / 2, level + width / 2)`` of a window."""
    level, width = float(level), float(width)
    if not np.isfinite(level) or not np.isfinite(width) or width <= 0:
        raise ConfigError(
            f"a HU window needs a finite level and a positive width, got level={level}, width={width}"
        )
    return (level - width / 2.0, level + width / 2.0)


def clip_hu(array_hu: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip HU values to ``[lo, hi]``; returns ``float32`` of the input's shape."""
    if not hi > lo:
        raise ConfigError(f"HU clip range must have lo < hi, got [{lo}, {hi}]")
    return np.clip(np.asarray(array_hu, dtype=np.float32), np.float32(lo), np.float32(hi))


def window(array_hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """Apply the HU window ``(level, width)``: ``float32`` in ``[0, 1]``, same shape as the input.

    ``level - width / 2`` maps to 0 and ``level + width / 2`` to 1; values outside are clipped.
    """
    lo, hi = window_bounds(level, width)
    out = np.asarray(array_hu, dtype=np.float32) - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _masked_values(array: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return array
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != array.shape:
        raise InputError(f"normalisation mask must have the array's shape {array.shape}, got {mask.shape}")
    values = array[mask]
    if values.size == 0:
        raise InputError("normalisation mask is empty: no voxel to compute statistics from")
    return values


def normalize_zscore(array: np.ndarray, mask: np.ndarray | None = None, *, eps: float = 1e-6) -> np.ndarray:
    """Zero mean, unit variance: ``(array - mean) / std`` as ``float32``.

    Args:
        array: intensities of any shape.
        mask: optional boolean array of the same shape; mean and std are computed inside it
            (e.g. the body or the liver) and the transform is applied to every voxel.
        eps: when ``std < eps`` (constant input) only the mean is subtracted, as MONAI's
            ``NormalizeIntensity`` does, instead of dividing by ~0.
    """
    arr = np.asarray(array, dtype=np.float32)
    values = _masked_values(arr, mask)
    mean = float(np.mean(values, dtype=np.float64))
    std = float(np.std(values, dtype=np.float64))
    out = arr - np.float32(mean)
    if std >= eps:
        out *= np.float32(1.0 / std)
    else:
        log.debug("z-score normalisation of a constant input: only the mean is subtracted")
    return out


def normalize_minmax(
    array: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    percentiles: tuple[float, float] | None = None,
    clip: bool = True,
) -> np.ndarray:
    """Scale to ``[0, 1]``: ``(array - lo) / (hi - lo)`` as ``float32``.

    Args:
        array: intensities of any shape.
        mask: optional boolean array of the same shape; ``lo``/``hi`` are taken inside it.
        percentiles: ``(p_lo, p_hi)`` in percent to use robust bounds (e.g. ``(0.5, 99.5)``)
            instead of the minimum and maximum.
        clip: clip the result to ``[0, 1]`` (only matters with a mask or percentiles).

    A constant input (``hi == lo``) gives zeros.
    """
    arr = np.asarray(array, dtype=np.float32)
    values = _masked_values(arr, mask)
    if percentiles is None:
        lo, hi = float(values.min()), float(values.max())
    else:
        p_lo, p_hi = percentiles
        if not 0.0 <= p_lo < p_hi <= 100.0:
            raise ConfigError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
        lo, hi = (float(v) for v in np.percentile(values, [p_lo, p_hi]))
    if hi <= lo:
        return np.zeros_like(arr)
    out = arr - np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out
