"""On-the-fly augmentation of 2.5D training samples, identical for image and label.

Order (fixed): synthetic lesions in HU (``liverseg.augment.lesions``, optional) -> scanner, phase
and export variation in HU (``liverseg.augment.scanner``: contrast phase, thick slices, sharp
kernel, and for full-quality cases only the slice-export round trip) -> window to ``[0, 1]`` with
the stage spec -> spatial (affine rotation/scaling, elastic, flips; labels nearest)
-> simulated low resolution (down- then up-sampling) -> intensity (brightness, contrast, gamma,
noise, blur). Spatial and intensity steps are MONAI dictionary transforms; their random state is
re-seeded from the sample's own generator, so a sample is a pure function of ``(seed, epoch, i)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from liverseg.augment.scanner import sharpen, simulate_phase, simulate_slice_export, simulate_thick_slices
from liverseg.errors import ConfigError
from liverseg.training.config import AugmentConfig
from liverseg.training.slabs import StageSpec, normalise_slab

__all__ = ["Augmenter", "build_augmenter", "lesion_transform"]

log = logging.getLogger(__name__)

LesionFn = Callable[
    [np.ndarray, np.ndarray, tuple[float, float, float], np.random.Generator], tuple[np.ndarray, np.ndarray]
]


def lesion_transform(params: dict[str, Any]) -> LesionFn:
    """The synthetic-lesion transform of ``liverseg.augment.lesions`` built with ``params``.

    The module provides ``make_transform(**params)`` returning ``(image_hu, label, spacing_zyx,
    rng) -> (image_hu, label)`` on ``(C, H, W)`` slabs or 3D volumes.

    Raises:
        ConfigError: the module is not installed or rejects ``params``.
    """
    try:
        from liverseg.augment import lesions
    except ImportError as exc:
        raise ConfigError(
            f"augment.synthetic_lesions: p > 0 needs liverseg.augment.lesions, which is not available ({exc})"
        ) from exc
    factory = getattr(lesions, "make_transform", None)
    if factory is None:
        raise ConfigError(
            "augment.synthetic_lesions: liverseg.augment.lesions has no make_transform(**params)"
        )
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"augment.synthetic_lesions.params: {exc}") from exc


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
        from monai.transforms import Compose

        self.cfg, self.spec = cfg, spec
        self.lesions: LesionFn | None = None
        if cfg.synthetic_lesions.p > 0:
            self.lesions = lesion_transform(dict(cfg.synthetic_lesions.params))
        # with on_device the spatial/intensity steps run on the batch in the trainer (gpu_augment)
        on_cpu = cfg.enabled and not cfg.on_device
        self.transforms = Compose(_spatial(cfg) + _intensity(cfg)) if on_cpu else None
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
        if self.transforms is None:
            return image, np.asarray(label)
        from monai.utils import convert_to_numpy

        self.transforms.set_random_state(seed=int(rng.integers(0, 2**32 - 1)))
        out = self.transforms({"image": image, "label": np.asarray(label)[None].astype(np.float32)})
        image = convert_to_numpy(out["image"], dtype=np.float32)
        label = np.rint(convert_to_numpy(out["label"])[0]).astype(np.uint8)
        return image, label


def _spatial(cfg: AugmentConfig) -> list[Any]:
    from monai.transforms import Rand2DElasticd, RandAffined, RandFlipd, RandSimulateLowResolutiond

    keys = ["image", "label"]
    modes = ("bilinear", "nearest")
    scale = tuple((cfg.scale_range[0] - 1.0, cfg.scale_range[1] - 1.0) for _ in range(2))
    out: list[Any] = []
    if cfg.p_affine > 0:
        out.append(
            RandAffined(
                keys,
                prob=cfg.p_affine,
                rotate_range=(math.radians(cfg.rotate_deg),),
                scale_range=scale,
                mode=modes,
                padding_mode="zeros",
            )
        )
    if cfg.p_elastic > 0:
        out.append(
            Rand2DElasticd(
                keys,
                spacing=cfg.elastic_spacing,
                magnitude_range=cfg.elastic_magnitude,
                prob=cfg.p_elastic,
                mode=modes,
                padding_mode="zeros",
            )
        )
    # canonical slab axes are (C, y, x): spatial axis 0 runs anterior->posterior, 1 right->left
    if cfg.flip_anterior_posterior:
        out.append(RandFlipd(keys, prob=cfg.p_flip, spatial_axis=0))
    if cfg.flip_left_right:
        out.append(RandFlipd(keys, prob=cfg.p_flip, spatial_axis=1))
    if cfg.p_lowres > 0:
        out.append(
            RandSimulateLowResolutiond(
                ["image"],
                prob=cfg.p_lowres,
                zoom_range=cfg.lowres_zoom,
                downsample_mode="nearest",
                upsample_mode="bilinear",
            )
        )
    return out


def _intensity(cfg: AugmentConfig) -> list[Any]:
    from monai.transforms import (
        RandAdjustContrastd,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityFixedMeand,
        RandShiftIntensityd,
    )

    out: list[Any] = []
    if cfg.p_brightness > 0:
        out.append(RandShiftIntensityd(["image"], offsets=cfg.brightness, prob=cfg.p_brightness))
    if cfg.p_contrast > 0:
        lo, hi = cfg.contrast
        out.append(RandScaleIntensityFixedMeand(["image"], factors=(lo - 1.0, hi - 1.0), prob=cfg.p_contrast))
    if cfg.p_gamma > 0:
        out.append(RandAdjustContrastd(["image"], gamma=cfg.gamma, prob=cfg.p_gamma))
    if cfg.p_noise > 0:
        out.append(RandGaussianNoised(["image"], std=cfg.noise_std, prob=cfg.p_noise))
    if cfg.p_blur > 0:
        out.append(
            RandGaussianSmoothd(["image"], sigma_x=cfg.blur_sigma, sigma_y=cfg.blur_sigma, prob=cfg.p_blur)
        )
    return out


def build_augmenter(cfg: AugmentConfig, spec: StageSpec) -> Augmenter:
    """The training augmentation pipeline of a config (windowing always included)."""
    return Augmenter(cfg, spec)
