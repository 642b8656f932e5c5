"""Batch augmentation on the training device (``augment.on_device: true``).

The CPU augmentation pipeline (:mod:`liverseg.training.augmentation`) costs ~10-15 ms per 2.5D
sample, which starves a GPU: on a 16-core GPU host the data loader, not the network, limits
training. With ``on_device`` the CPU workers only gather slabs, insert synthetic lesions (HU) and
window; the spatial and intensity transforms below run on the whole batch on the device, with
the same meaning and probabilities as the CPU pipeline:

* affine (rotation ``rotate_deg``, isotropic scale ``scale_range``) and elastic deformation
  (smooth random displacement, ``elastic_spacing`` px control grid, ``elastic_magnitude`` px),
  image bilinear, label nearest, zero padding — one ``grid_sample`` per batch;
* flips (only the axes the config enables), simulated low resolution (nearest down, bilinear up);
* brightness shift, contrast scaling about the mean, gamma, Gaussian noise, Gaussian blur.

Randomness comes from a ``torch.Generator`` seeded per step by the trainer, so a run is
reproducible and ``--resume`` replays the same augmentations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from liverseg.training.config import AugmentConfig

__all__ = ["augment_batch"]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _chosen(n: int, p: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with one ``sigma`` (pixels)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )


def _spatial(
    x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, h, w = x.shape
    dev = x.device
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    moved = torch.zeros(n, dtype=torch.bool, device=dev)
    if cfg.p_affine > 0:
        sel = _chosen(n, cfg.p_affine, gen, dev)
        ang = torch.deg2rad(_uniform(n, -cfg.rotate_deg, cfg.rotate_deg, gen, dev)) * sel
        # scale > 1 zooms in: sample coordinates shrink by 1/scale
        inv_s = 1.0 / torch.where(sel, _uniform(n, *cfg.scale_range, gen, dev), torch.ones(n, device=dev))
        cos, sin = torch.cos(ang) * inv_s, torch.sin(ang) * inv_s
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin * h / w, sin * w / h, cos
        moved |= sel
    if cfg.flip_left_right:
        sel = _chosen(n, cfg.p_flip, gen, dev)
        theta[:, 0, :] *= torch.where(sel, -1.0, 1.0)[:, None]
        moved |= sel
    if cfg.flip_anterior_posterior:
        sel = _chosen(n, cfg.p_flip, gen, dev)
        theta[:, 1, :] *= torch.where(sel, -1.0, 1.0)[:, None]
        moved |= sel
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if cfg.p_elastic > 0:
        sel = _chosen(n, cfg.p_elastic, gen, dev)
        if bool(sel.any()):
            gh = max(2, round(h / cfg.elastic_spacing[0]) + 1)
            gw = max(2, round(w / cfg.elastic_spacing[1]) + 1)
            mag = _uniform(n, *cfg.elastic_magnitude, gen, dev) * sel  # pixels
            coarse = torch.randn(n, 2, gh, gw, generator=gen, device=dev) * mag[:, None, None, None]
            disp = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
            # pixels -> normalised grid units (x uses width, y uses height)
            disp = torch.stack([disp[:, 0] * 2.0 / w, disp[:, 1] * 2.0 / h], dim=-1)
            grid = grid + disp
            moved |= sel
    if not bool(moved.any()):
        return x, y
    xs = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ys = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    keep = ~moved
    xs[keep], ys[keep] = x[keep], y[keep][:, None].float()
    return xs, ys[:, 0].round().to(y.dtype)


def _intensity(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    view = (n, 1, 1, 1)
    if cfg.p_lowres > 0:
        sel = torch.nonzero(_chosen(n, cfg.p_lowres, gen, dev)).flatten().tolist()
        for i in sel:
            z = float(_uniform(1, *cfg.lowres_zoom, gen, dev))
            h, w = x.shape[-2:]
            small = F.interpolate(x[i : i + 1], size=(max(2, int(h * z)), max(2, int(w * z))), mode="nearest")
            x[i : i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    if cfg.p_brightness > 0:
        sel = _chosen(n, cfg.p_brightness, gen, dev)
        x = x + (_uniform(n, -cfg.brightness, cfg.brightness, gen, dev) * sel).view(view)
    if cfg.p_contrast > 0:
        sel = _chosen(n, cfg.p_contrast, gen, dev)
        f = torch.where(sel, _uniform(n, *cfg.contrast, gen, dev), torch.ones(n, device=dev)).view(view)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * f + mean
    if cfg.p_gamma > 0:
        sel = _chosen(n, cfg.p_gamma, gen, dev)
        g = torch.where(sel, _uniform(n, *cfg.gamma, gen, dev), torch.ones(n, device=dev)).view(view)
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        span = (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-6)
        x = ((x - lo) / span).clamp(0, 1) ** g * span + lo
    if cfg.p_noise > 0:
        sel = _chosen(n, cfg.p_noise, gen, dev)
        std = (_uniform(n, 0.0, cfg.noise_std, gen, dev) * sel).view(view)
        x = x + torch.randn(x.shape, generator=gen, device=dev) * std
    if cfg.p_blur > 0:
        sel = torch.nonzero(_chosen(n, cfg.p_blur, gen, dev)).flatten().tolist()
        for i in sel:
            sigma = float(_uniform(1, *cfg.blur_sigma, gen, dev))
            x[i : i + 1] = _gaussian_blur(x[i : i + 1], sigma)
    return x


def augment_batch(
    x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch on its device.

    Args:
        x: float ``(N, C, H, W)`` windowed images in ``[0, 1]``.
        y: integer ``(N, H, W)`` labels.
        cfg: the augmentation section (probabilities and ranges).
        gen: a generator on ``x``'s device (seeded by the caller for reproducibility).
    Returns:
        ``(x, y)`` of the same shapes and dtypes.
    """
    if not cfg.enabled:
        return x, y
    x, y = _spatial(x.float(), y, cfg, gen)
    return _intensity(x, cfg, gen), y
