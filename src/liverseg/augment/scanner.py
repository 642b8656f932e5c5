"""Scanner, contrast-phase and export variation of a CT slab, in HU (numpy only).

Real CT from other hospitals differs from the training scans in ways a segmentation network must
not depend on. Each function below simulates one of them on a 2.5D slab ``(C, H, W)`` of adjacent
slices in HU (``C`` = 2k+1 slices); all return a new float32 array of the same shape.

* :func:`simulate_phase` - contrast phase / enhancement: soft tissue moves towards or away from an
  unenhanced reference (~40 HU) by a gain, plus a shift (non-contrast livers at ~55 HU, portal
  venous at 100-130 HU, arterial with weak parenchymal enhancement);
* :func:`simulate_thick_slices` - 1-5 mm reconstructions: adjacent slices averaged with a Gaussian
  profile across the slab's slices (partial-volume blur along z);
* :func:`sharpen` - sharp reconstruction kernels: unsharp masking in-plane (the opposite of the
  soft-kernel blur the training loop already applies);
* :func:`simulate_slice_export` - the windowed 8-bit JPEG pictures of public slice exports: clip to
  the export window, quantise to 8 bits, apply JPEG's lossy step (:func:`jpeg_like`) and map back
  to (clipped) HU. Full-quality training cases then look like the exports the network also learns
  from, and the exports stop being a separate domain.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.fft import dct

__all__ = ["sharpen", "simulate_phase", "simulate_slice_export", "simulate_thick_slices"]

#: HU of unenhanced soft tissue: the fixed point of the enhancement gain
UNENHANCED_HU = 40.0
#: soft-tissue range the phase simulation acts on (air, fat and bone are left alone)
_SOFT_TISSUE_HU = (-60.0, 400.0)


def simulate_phase(slab_hu: np.ndarray, gain: float, offset_hu: float) -> np.ndarray:
    """``HU' = 40 + gain * (HU - 40) + offset`` inside the soft-tissue range, blended smoothly out.

    Args:
        slab_hu: ``(C, H, W)`` HU.
        gain: enhancement gain (< 1 less contrast uptake, > 1 more).
        offset_hu: shift in HU.
    """
    x = np.asarray(slab_hu, dtype=np.float32)
    lo, hi = _SOFT_TISSUE_HU
    # weight 1 inside the soft-tissue range, falling to 0 over 40 HU beyond it (no steps)
    w = np.clip(np.minimum(x - (lo - 40.0), (hi + 40.0) - x) / 40.0, 0.0, 1.0)
    moved = UNENHANCED_HU + gain * (x - UNENHANCED_HU) + offset_hu
    return (x + w * (moved - x)).astype(np.float32)


def simulate_thick_slices(slab_hu: np.ndarray, sigma_slices: float) -> np.ndarray:
    """Average adjacent slices with a Gaussian of ``sigma_slices`` (edge slices replicated)."""
    x = np.asarray(slab_hu, dtype=np.float32)
    if sigma_slices <= 0 or x.shape[0] < 2:
        return x.copy()
    return ndimage.gaussian_filter1d(x, sigma_slices, axis=0, mode="nearest").astype(np.float32)


def sharpen(slab_hu: np.ndarray, amount: float, sigma_px: float = 1.0) -> np.ndarray:
    """Unsharp masking in-plane: ``x + amount * (x - blur(x))``."""
    x = np.asarray(slab_hu, dtype=np.float32)
    blurred = ndimage.gaussian_filter(x, (0.0, sigma_px, sigma_px), mode="nearest")
    return (x + amount * (x - blurred)).astype(np.float32)


#: the JPEG standard's luminance quantisation table (ITU-T T.81, Annex K.1), quality 50
_JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float32,
)


#: orthonormal 8-point DCT-II matrix (JPEG's transform): ``coef = D @ block @ D.T``
_DCT = dct(np.eye(8), axis=0, norm="ortho").astype(np.float32)


def jpeg_table(quality: int) -> np.ndarray:
    """The 8x8 luminance quantisation table libjpeg uses at ``quality`` (1-100)."""
    q = int(np.clip(quality, 1, 100))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((_JPEG_LUMA * scale + 50) / 100), 1, 255).astype(np.float32)


def jpeg_like(gray: np.ndarray, quality: int) -> np.ndarray:
    """JPEG's lossy step on 8-bit grey pictures ``(..., H, W)`` (values 0..255, float).

    Level shift, 8x8 block DCT (orthonormal, as JPEG's), quantisation with :func:`jpeg_table`,
    dequantisation, inverse DCT, rounding and clipping to 0..255. The lossless entropy coding
    of a real JPEG changes nothing; chroma subsampling is not simulated (the grey channel of an
    RGB export is mostly luminance). Pictures are padded to whole blocks by edge replication, as
    encoders do. Written as two 8x8 matrix products per block instead of an encoder round trip
    (no per-call encoder set-up, works on any leading shape); it matches libjpeg's output to
    within half a grey level on average.
    """
    x = np.asarray(gray, dtype=np.float32)
    h, w = x.shape[-2:]
    ph, pw = -h % 8, -w % 8
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    x = np.pad(x, pad, mode="edge") - 128.0
    lead = x.shape[:-2]
    blocks = x.reshape(*lead, (h + ph) // 8, 8, (w + pw) // 8, 8).swapaxes(-3, -2)
    table = jpeg_table(quality)
    coef = np.rint((_DCT @ blocks @ _DCT.T) / table) * table
    out = (_DCT.T @ coef @ _DCT).swapaxes(-3, -2).reshape(x.shape)
    return np.clip(np.rint(out + 128.0), 0.0, 255.0)[..., :h, :w].astype(np.float32)


def simulate_slice_export(slab_hu: np.ndarray, window_hu: tuple[float, float], quality: int) -> np.ndarray:
    """Clip ``(C, H, W)`` HU to the export window, quantise to 8 bits, apply :func:`jpeg_like` at
    ``quality``, and map back to (clipped, approximate) HU."""
    x = np.asarray(slab_hu, dtype=np.float32)
    lo, hi = window_hu
    grey = np.rint(np.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0)
    return (lo + jpeg_like(grey, quality) * ((hi - lo) / 255.0)).astype(np.float32)
