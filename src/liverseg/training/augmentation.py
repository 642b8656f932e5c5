"""On-the-fly augmentation of 2.5D training samples, identical for image and label.

Order (fixed): synthetic lesions in HU (``liverseg.augment.lesions``, optional) -> scanner, phase
and export variation in HU (``liverseg.augment.scanner``: contrast phase, thick slices, sharp
kernel, and for full-quality cases only the slice-export round trip) -> window to ``[0, 1]`` with
the stage spec -> spatial (affine rotation/scaling, flips, elastic; labels nearest) -> simulated
low resolution -> intensity (brightness, contrast, gamma, noise, blur).

The spatial and intensity steps are drawn by :func:`liverseg.training.augment_params.sample_params`
and applied by :func:`liverseg.training.augment_apply.apply_batch` (on a batch of one): the very
sampler and apply the on-device path (``augment.on_device``, :func:`~liverseg.training.augment_apply.augment_batch`)
uses on whole batches. Every random number comes from the sample's own generator, so a sample is a
pure function of ``(seed, epoch, i)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from liverseg.augment.scanner import sharpen, simulate_phase, simulate_slice_export, simulate_thick_slices
from liverseg.augment.transforms import make_transform
from liverseg.training.augment_apply import apply_batch
from liverseg.training.augment_params import sample_params
from liverseg.training.config import AugmentConfig
from liverseg.training.slabs import StageSpec, normalise_slab

__all__ = ["Augmenter", "build_augmenter", "lesion_transform", "scanner_variation"]

log = logging.getLogger(__name__)

LesionFn = Callable[
    [np.ndarray, np.ndarray, tuple[float, float, float], np.random.Generator], tuple[np.ndarray, np.ndarray]
]


def lesion_transform(params: dict[str, Any]) -> LesionFn:
    """The synthetic-lesion transform (:func:`liverseg.augment.transforms.make_transform`) built
    with ``params``: ``(image_hu, label, spacing_zyx, rng) -> (image_hu, label)`` on ``(C, H, W)``
    slabs or 3D volumes.

    Raises:
        ConfigError: ``params`` has an unknown key or a bad value (named).
    """
    return make_transform(**params)  # names the section in its ConfigError


def scanner_variation(
    slab_hu: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, *, full_quality: bool
) -> np.ndarray:
    """The HU-domain steps of :mod:`liverseg.augment.scanner`, each with its ``p_*`` (fixed draws)."""
    u = rng.random(4)
    gain, offset = rng.uniform(*cfg.phase_gain), rng.uniform(*cfg.phase_offset_hu)
    sigma, amount = rng.uniform(*cfg.thick_sigma), rng.uniform(*cfg.sharpen_amount)
    quality = int(rng.integers(cfg.export_quality[0], cfg.export_quality[1] + 1))
    x = np.asarray(slab_hu, dtype=np.float32)
    if u[0] < cfg.p_phase:
        x = simulate_phase(x, float(gain), float(offset))
    if u[1] < cfg.p_thick:
        x = simulate_thick_slices(x, float(sigma))
    if u[2] < cfg.p_sharpen:
        x = sharpen(x, float(amount))
    if full_quality and u[3] < cfg.p_export:
        x = simulate_slice_export(x, cfg.export_window_hu, quality)
    return x


class Augmenter:
    """Callable ``(slab_hu (C,H,W), label (H,W), spacing_zyx, rng, *, full_quality) -> (image [0,1], label)``."""

    def __init__(self, cfg: AugmentConfig, spec: StageSpec) -> None:
        self.cfg, self.spec = cfg, spec
        self.lesions: LesionFn | None = None
        if cfg.synthetic_lesions.p > 0:
            self.lesions = lesion_transform(dict(cfg.synthetic_lesions.params))
        # with on_device the spatial/intensity steps run on the batch in the trainer (augment_batch)
        self.spatial_intensity = cfg.enabled and not cfg.on_device
        self.scanner = cfg.enabled and max(cfg.p_phase, cfg.p_thick, cfg.p_sharpen, cfg.p_export) > 0

    def __call__(
        self,
        slab_hu: np.ndarray,
        label: np.ndarray,
        spacing_zyx: tuple[float, float, float],
        rng: np.random.Generator,
        *,
        full_quality: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one sample; ``full_quality`` False marks a clipped slice export (no export
        round trip is applied to it: it has been through one already)."""
        if self.lesions is not None and rng.random() < self.cfg.synthetic_lesions.p:
            slab_hu, label = self.lesions(slab_hu, label, spacing_zyx, rng)
        if self.scanner:
            slab_hu = scanner_variation(slab_hu, self.cfg, rng, full_quality=full_quality)
        image = normalise_slab(slab_hu, self.spec)
        label = np.asarray(label)
        if not self.spatial_intensity:
            return image, label
        x, y = apply_batch(
            torch.from_numpy(np.array(image, dtype=np.float32))[None],
            torch.from_numpy(np.array(label))[None],
            [sample_params(self.cfg, rng)],
            elastic_spacing=self.cfg.elastic_spacing,
        )
        return x[0].numpy(), y[0].numpy()


def build_augmenter(cfg: AugmentConfig, spec: StageSpec) -> Augmenter:
    """The training augmentation pipeline of a config (windowing always included)."""
    return Augmenter(cfg, spec)
