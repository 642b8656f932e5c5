"""The deterministic part of the spatial and intensity augmentation, for one sample or a batch.

:func:`apply_batch` applies given :class:`~liverseg.training.augment_params.AugmentParams` (one per
sample) to a batch ``(N, C, H, W)``; it is **the** implementation of both paths: the CPU data
workers call it on a batch of one CPU tensor (:class:`liverseg.training.augmentation.Augmenter`),
the trainer on the whole batch on the training device (:func:`augment_batch`, ``augment.on_device``).
One implementation for both is the only way they cannot drift apart (they did: the on-device path
had one scale factor for both axes and one blur sigma where the CPU path had two of each).

Why torch functional ops rather than MONAI's transforms for the apply: MONAI's random transforms own
their random state (parameters cannot be drawn elsewhere and handed in), its deterministic ones
work on one sample at a time, and it has no deterministic elastic transform taking a given field.
What MONAI does well is kept where it fits: the Gaussian blur uses MONAI's kernel
(``gaussian_1d``, erf approximation, 4 sigma) and ``separable_filtering``. The meaning of every
parameter follows MONAI's ``Affine``, ``RandAffine``, ``AdjustContrast``,
``ScaleIntensityFixedMean``, ``ShiftIntensity`` and ``GaussianSmooth``; the tests compare against
them on the same inputs.

Steps, in order (the CPU pipeline's order):

1. spatial, one resampling per moved sample (image bilinear, label nearest, zero padding): affine
   ``R(rotate) @ diag(scale_yx)`` about the slab centre in pixel units, then flips, plus an elastic
   displacement (control points every ``elastic_spacing`` pixels, displacements
   ``N(0, magnitude^2)`` pixels from ``numpy`` seeded by ``elastic_seed``, bicubic up-sampling);
2. simulated low resolution (nearest down-sampling by ``lowres_zoom``, bilinear back; image only);
3. brightness shift; 4. contrast about the sample mean; 5. gamma on the min-max rescaled sample
   (MONAI's ``AdjustContrast``); 6. Gaussian noise (a ``torch`` generator seeded by ``noise_seed``
   on the batch's device: the same field for the same seed on a given device type);
7. Gaussian blur (sigmas per axis, replicate padding).

Determinism: parameters come from the caller's ``numpy`` generator (a pure function of
``(seed, epoch, index)`` in the data workers, of ``(seed, rank, step)`` in the trainer), so
``--resume`` replays the same augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from liverseg.extras import require
from liverseg.training.augment_params import AugmentParams, sample_params
from liverseg.training.config import AugmentConfig

require("train", "training augmentation (liverseg.training.augment_apply)")  # before importing MONAI

from monai.networks.layers import gaussian_1d, separable_filtering  # noqa: E402

__all__ = ["apply_batch", "augment_batch", "elastic_field"]


def _theta(p: AugmentParams, h: int, w: int) -> torch.Tensor:
    """``(2, 3)`` ``affine_grid`` matrix (normalised ``(x, y)`` coordinates, ``align_corners=False``)."""
    cos, sin = math.cos(p.rotate_rad), math.sin(p.rotate_rad)
    sy, sx = p.scale_yx
    # pixel offsets (row, col): input = R @ S @ output; in (col, row) order R is [[cos, sin], [-sin, cos]]
    a = np.array([[cos * sx, sin * sy], [-sin * sx, cos * sy]])
    d = np.diag([w / 2.0, h / 2.0])  # normalised -> pixel offsets from the centre
    f = np.diag([-1.0 if p.flip_x else 1.0, -1.0 if p.flip_y else 1.0])  # flips act on the output
    lin = np.linalg.inv(d) @ a @ d @ f
    return torch.tensor(np.concatenate([lin, np.zeros((2, 1))], axis=1), dtype=torch.float32)


def elastic_field(p: AugmentParams, h: int, w: int, spacing: tuple[float, float]) -> np.ndarray:
    """Coarse control-point displacements ``(2, gh, gw)`` in pixels (rows, columns), from ``elastic_seed``."""
    gh = max(2, round(h / spacing[0]) + 1)
    gw = max(2, round(w / spacing[1]) + 1)
    rng = np.random.default_rng(p.elastic_seed)
    return (rng.standard_normal((2, gh, gw)) * p.elastic_magnitude_px).astype(np.float32)


def _spatial(
    x: torch.Tensor, y: torch.Tensor, params: Sequence[AugmentParams], spacing: tuple[float, float]
) -> torch.Tensor:
    """Resample the moved samples of ``x`` (owned, modified in place); returns the new labels."""
    moved = [i for i, p in enumerate(params) if p.spatial]
    if not moved:
        return y
    h, w = x.shape[-2:]
    dev = x.device
    theta = torch.stack([_theta(params[i], h, w) for i in moved]).to(dev)
    grid = F.affine_grid(theta, [len(moved), x.shape[1], h, w], align_corners=False)
    for j, i in enumerate(moved):
        if params[i].elastic_magnitude_px > 0:
            coarse = torch.from_numpy(elastic_field(params[i], h, w, spacing)).to(dev)
            disp = F.interpolate(coarse[None], size=(h, w), mode="bicubic", align_corners=True)[0]
            # pixels -> normalised grid units: x (columns) by width, y (rows) by height
            grid[j, ..., 0] += disp[1] * (2.0 / w)
            grid[j, ..., 1] += disp[0] * (2.0 / h)
    idx = torch.tensor(moved, device=dev)
    xs = F.grid_sample(x[idx], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ys = F.grid_sample(
        y[idx][:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    x.index_copy_(0, idx, xs)
    return y.index_copy(0, idx, ys[:, 0].round().to(y.dtype))


def _intensity(x: torch.Tensor, params: Sequence[AugmentParams]) -> None:
    """Steps 2-7 on ``x`` (owned, modified in place), one sample (a view) at a time."""
    h, w = x.shape[-2:]
    for i, p in enumerate(params):
        xi = x[i]  # (C, H, W) view
        if p.lowres_zoom < 1.0:
            size = (max(2, int(h * p.lowres_zoom)), max(2, int(w * p.lowres_zoom)))
            small = F.interpolate(xi[None], size=size, mode="nearest")
            xi.copy_(F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0])
        if p.brightness != 0.0:
            xi.add_(p.brightness)
        if p.contrast != 1.0:
            mean = xi.mean()
            xi.sub_(mean).mul_(p.contrast).add_(mean)
        if p.gamma != 1.0:
            lo, span = xi.min(), xi.max() - xi.min()
            xi.sub_(lo).div_(span + 1e-7).pow_(p.gamma).mul_(span).add_(lo)
        if p.noise_std > 0.0:
            gen = torch.Generator(device=x.device).manual_seed(p.noise_seed)
            noise = torch.randn(xi.shape, generator=gen, device=x.device, dtype=x.dtype)
            xi.add_(noise.mul_(p.noise_std))
        if max(p.blur_sigma_yx) > 0.0:
            kernels = [
                gaussian_1d(torch.tensor(s, device=x.device), truncated=4.0, approx="erf").to(x.dtype)
                if s > 0.0
                else torch.ones(1, dtype=x.dtype, device=x.device)
                for s in p.blur_sigma_yx
            ]
            xi.copy_(separable_filtering(xi[None], kernels, mode="replicate")[0])


def apply_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    params: Sequence[AugmentParams],
    *,
    elastic_spacing: tuple[float, float] = (24.0, 24.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one :class:`AugmentParams` per sample (module docstring); inputs are not modified.

    Args:
        x: float ``(N, C, H, W)`` windowed images in ``[0, 1]``, on any device.
        y: integer ``(N, H, W)`` labels on the same device.
        params: ``N`` parameter sets (``sample_params``).
        elastic_spacing: control-point spacing in pixels ``(rows, columns)`` (``augment.elastic_spacing``).
    Returns:
        ``(x, y)``: float32 images and labels of ``y``'s dtype, same shapes.
    """
    if len(params) != x.shape[0] or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"apply_batch: {x.shape[0]} images, {y.shape[0]} labels, {len(params)} parameter sets"
        )
    out = x.to(torch.float32, copy=True)
    y = _spatial(out, y, params, elastic_spacing)
    _intensity(out, params)
    return out, y


def augment_batch(
    x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch on its device (``augment.on_device``): draw ``N`` parameter sets from ``rng``
    with :func:`~liverseg.training.augment_params.sample_params`, then :func:`apply_batch`.

    Args:
        x: float ``(N, C, H, W)`` windowed images in ``[0, 1]``.
        y: integer ``(N, H, W)`` labels.
        cfg: the augmentation section (probabilities and ranges).
        rng: seeded by the caller for reproducibility (the trainer: per ``(seed, rank, step)``).
    Returns:
        ``(x, y)`` of the same shapes (``x`` float32, ``y`` of its dtype).
    """
    if not cfg.enabled:
        return x, y
    params = [sample_params(cfg, rng) for _ in range(x.shape[0])]
    return apply_batch(x, y, params, elastic_spacing=cfg.elastic_spacing)
