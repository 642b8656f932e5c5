"""Lesion appearance measured against the scan itself: parenchyma HU, noise level and grain, vessels.

Everything here works on a box around the liver (``(z, y, x)`` arrays, spacing in mm).

Noise model. CT noise in a homogeneous region is close to Gaussian and spatially correlated within a
slice by the reconstruction kernel. It is modelled as white noise smoothed in-plane by a Gaussian of
``corr_sigma_vox`` voxels, scaled to ``sigma_hu``, independent across slices. Both numbers are
estimated from the in-plane residual ``r = x - box7x7(x)`` in homogeneous parenchyma (liver without
vessels, tumors and its border): the residual's robust standard deviation (1.4826 x MAD) and its
lag-1 autocorrelation are matched to those the model predicts for the same residual filter, which
the discrete filter kernels give exactly (no white-noise assumption).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

__all__ = [
    "NoiseModel",
    "ScanStats",
    "correlated_noise",
    "estimate_noise",
    "robust_stats",
    "scan_statistics",
    "smooth_noise",
    "vessel_mask",
]

MAD_TO_SIGMA = 1.4826
_RESIDUAL_BOX = 7
_MIN_VOXELS = 200


@dataclass(frozen=True)
class NoiseModel:
    """Scan noise: ``sigma_hu`` standard deviation, in-plane Gaussian correlation of ``corr_sigma_vox``."""

    sigma_hu: float
    corr_sigma_vox: float


@dataclass(frozen=True)
class ScanStats:
    """Parenchyma statistics of one scan (HU) used to place and shade lesions.

    Attributes:
        median_hu: median HU of the liver parenchyma (label 1).
        mad_hu: 1.4826 x median absolute deviation of the smoothed parenchyma HU (a robust sigma).
        noise: the scan's noise model (see the module docstring).
    """

    median_hu: float
    mad_hu: float
    noise: NoiseModel


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """Median and 1.4826 x MAD (a robust standard deviation) of a 1D array."""
    med = float(np.median(values))
    return med, MAD_TO_SIGMA * float(np.median(np.abs(values - med)))


def _residual_kernel(corr_sigma_vox: float, size: int = 25) -> np.ndarray:
    """2D kernel mapping white noise to the box-residual of the modelled correlated noise."""
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    g = ndimage.gaussian_filter(delta, corr_sigma_vox, mode="constant") if corr_sigma_vox > 0 else delta
    g = g / np.sqrt((g**2).sum())  # unit-variance correlated noise
    return g - ndimage.uniform_filter(g, _RESIDUAL_BOX, mode="constant")


def _residual_response(corr_sigma_vox: float) -> tuple[float, float]:
    """(std of the residual, lag-1 autocorrelation of the residual) for unit-variance model noise."""
    k = _residual_kernel(corr_sigma_vox)
    var = float((k**2).sum())
    lag = 0.5 * float((k[:, 1:] * k[:, :-1]).sum() + (k[1:, :] * k[:-1, :]).sum())
    return np.sqrt(var), lag / var


_CORR_GRID = np.linspace(0.0, 2.5, 51)
_RESPONSES = np.array([_residual_response(s) for s in _CORR_GRID])  # (n, 2): std factor, lag-1 corr


def estimate_noise(image_hu: np.ndarray, homogeneous: np.ndarray) -> NoiseModel | None:
    """Estimate the noise model from in-plane residuals at voxels where ``homogeneous`` is True.

    Args:
        image_hu: ``(z, y, x)`` HU.
        homogeneous: ``(z, y, x)`` bool, voxels of homogeneous tissue (their 7x7 in-plane
            neighbourhood should be homogeneous too: erode the tissue mask before).

    Returns:
        The :class:`NoiseModel`, or None when fewer than 200 voxels are available.
    """
    if int(homogeneous.sum()) < _MIN_VOXELS:
        return None
    x = image_hu.astype(np.float32)
    resid = x - ndimage.uniform_filter(x, size=(1, _RESIDUAL_BOX, _RESIDUAL_BOX), mode="nearest")
    vals = resid[homogeneous]
    med, sigma_res = robust_stats(vals)
    if sigma_res <= 0:
        return NoiseModel(0.0, 0.0)
    # lag-1 autocorrelation from robustly clipped residual pairs inside the mask
    clipped = np.clip(resid - med, -4 * sigma_res, 4 * sigma_res)
    num, den = 0.0, 0.0
    for axis in (1, 2):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        both = homogeneous[tuple(a)] & homogeneous[tuple(b)]
        num += float((clipped[tuple(a)][both] * clipped[tuple(b)][both]).sum())
        den += float(0.5 * ((clipped[tuple(a)][both] ** 2).sum() + (clipped[tuple(b)][both] ** 2).sum()))
    rho = num / den if den > 0 else 0.0
    idx = int(np.argmin(np.abs(_RESPONSES[:, 1] - rho)))
    corr = float(_CORR_GRID[idx])
    return NoiseModel(float(sigma_res / _RESPONSES[idx, 0]), corr)


def smooth_noise(
    shape: tuple[int, ...], sigma_vox: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Unit-variance Gaussian noise of ``shape`` smoothed by ``sigma_vox`` (per axis, voxels)."""
    white = rng.standard_normal(shape).astype(np.float32)
    if not any(s > 0 for s in sigma_vox):
        return white
    smooth = ndimage.gaussian_filter(white, sigma_vox, mode="reflect")
    std = float(smooth.std())
    return smooth / std if std > 0 else smooth


def correlated_noise(shape: tuple[int, int, int], noise: NoiseModel, rng: np.random.Generator) -> np.ndarray:
    """Noise of ``shape`` ``(z, y, x)`` following ``noise`` (HU), float32."""
    if noise.sigma_hu <= 0:
        return np.zeros(shape, np.float32)
    white = rng.standard_normal(shape).astype(np.float32)
    if noise.corr_sigma_vox <= 0:
        return white * np.float32(noise.sigma_hu)
    # normalise with the kernel's exact gain so small boxes keep the right level
    sm = ndimage.gaussian_filter(white, (0, noise.corr_sigma_vox, noise.corr_sigma_vox), mode="reflect")
    size = 4 * int(np.ceil(noise.corr_sigma_vox)) * 2 + 1
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    gain = float(np.sqrt((ndimage.gaussian_filter(delta, noise.corr_sigma_vox, mode="constant") ** 2).sum()))
    return sm * np.float32(noise.sigma_hu / gain)


def _smoothed(image_hu: np.ndarray, spacing_zyx: tuple[float, float, float], sigma_mm: float) -> np.ndarray:
    sigma = tuple(sigma_mm / s for s in spacing_zyx)
    return ndimage.gaussian_filter(image_hu.astype(np.float32), sigma, mode="nearest")


def vessel_mask(
    image_hu: np.ndarray,
    liver: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    median_hu: float,
    mad_hu: float,
    *,
    k_mad: float,
    min_diameter_mm: float,
    min_volume_mm3: float,
    smoothed: np.ndarray | None = None,
) -> np.ndarray:
    """Large enhanced vessels in the liver, told from parenchyma by HU.

    1. ``bright``: liver voxels whose 1 mm-smoothed HU exceeds ``median_hu + k_mad * mad_hu``.
    2. Thickness: a morphological opening of ``bright`` by a cube of side ``D / sqrt(3)``
       (``D = min_diameter_mm``, per-axis odd voxel counts; a cube fits in a cylinder of diameter
       ``D`` in any orientation when its diagonal ``side * sqrt(3) <= D``) keeps the vessels at
       least about ``D`` thick. The opening is separable (1D min/max filters), so it costs a few
       passes over the box instead of distance transforms.
    3. Connected components (26-connectivity) smaller than ``min_volume_mm3`` are dropped.

    Thinner vessels are deliberately not avoided: a lesion replaces the parenchyma and the small
    branches it covers, as real tumors do. Returns a bool ``(z, y, x)`` mask.
    """
    sm = _smoothed(image_hu, spacing_zyx, 1.0) if smoothed is None else smoothed
    vessels = liver & (sm > median_hu + k_mad * mad_hu)
    if not vessels.any():
        return vessels
    if min_diameter_mm > 0:
        side = min_diameter_mm / np.sqrt(3.0)
        size = tuple(2 * round((side / s - 1.0) / 2.0) + 1 if side > s else 1 for s in spacing_zyx)
        if max(size) > 1:
            vessels = ndimage.maximum_filter(ndimage.minimum_filter(vessels, size=size), size=size) & vessels
        if not vessels.any():
            return vessels
    labels = cc3d.connected_components(vessels.astype(np.uint8), connectivity=26)
    counts = np.bincount(labels.ravel())
    keep = counts * float(np.prod(spacing_zyx)) >= min_volume_mm3
    keep[0] = False
    return keep[labels]


def scan_statistics(
    image_hu: np.ndarray,
    parenchyma: np.ndarray,
    spacing_zyx: tuple[float, float, float],
) -> tuple[ScanStats, np.ndarray] | None:
    """Parenchyma median/MAD and noise model of a liver box; also returns the 1 mm-smoothed image.

    Args:
        image_hu: ``(z, y, x)`` HU (a box around the liver).
        parenchyma: ``(z, y, x)`` bool, liver without tumors.
        spacing_zyx: voxel size in mm.

    Returns:
        ``(ScanStats, smoothed_image)``, or None when the parenchyma has fewer than 20 voxels.
    """
    if int(parenchyma.sum()) < 20:
        return None
    sm = _smoothed(image_hu, spacing_zyx, 1.0)
    median, _ = robust_stats(image_hu[parenchyma].astype(np.float64))
    _, mad = robust_stats(sm[parenchyma].astype(np.float64))
    # homogeneous parenchyma: 3 voxels in-plane from the liver border, no bright/dark structures
    inner = ndimage.binary_erosion(parenchyma, structure=np.ones((1, 7, 7), bool), border_value=0)
    homogeneous = inner & (np.abs(sm - median) < 2.5 * max(mad, 1.0))
    noise = estimate_noise(image_hu, homogeneous)
    if noise is None:  # tiny liver box: a cruder estimate from all parenchyma voxels
        noise = estimate_noise(image_hu, parenchyma) or NoiseModel(0.0, 0.0)
    return ScanStats(median, max(mad, 1e-3), noise), sm
