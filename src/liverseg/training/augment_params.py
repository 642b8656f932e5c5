"""The random part of the spatial and intensity augmentation: one sampler for both paths.

As in TorchIO, a random transform is split in two: :func:`sample_params` draws every random
number of one sample into a small frozen :class:`AugmentParams`, and
:func:`liverseg.training.augment_apply.apply_batch` applies given parameters deterministically.
The CPU data workers (:class:`liverseg.training.augmentation.Augmenter`, one sample, the sample's
own ``numpy`` generator) and the on-device path (:func:`~liverseg.training.augment_apply.augment_batch`,
a batch, a generator seeded per step) call the same sampler, so both draw the same distribution
of parameters, and the same parameters for the same generator state.

The meaning of each range follows the MONAI transforms the CPU path used before (and that
``tests/training/test_training_augment.py`` checks the apply against): rotation uniform in
``[-rotate_deg, rotate_deg]``; one scale factor **per axis**, each uniform in ``scale_range`` (MONAI
``RandAffine``: the output at ``p`` samples the input at ``R S p``, so a factor > 1 shows more field
of view); elastic magnitude uniform in ``elastic_magnitude`` (pixels); low-resolution zoom uniform in
``lowres_zoom``; brightness shift uniform in ``[-brightness, brightness]``; contrast factor uniform in
``contrast`` (about the mean); gamma uniform in ``gamma``; noise standard deviation uniform in
``[0, noise_std]``; blur sigmas drawn **independently** for rows and columns, uniform in ``blur_sigma``.

The number of draws is fixed (every value is drawn whether or not its step is applied), so
turning one step on or off never shifts the random numbers of the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liverseg.training.config import AugmentConfig

__all__ = ["IDENTITY", "AugmentParams", "sample_params"]

_SEED_LIMIT = 2**62


@dataclass(frozen=True)
class AugmentParams:
    """Every random value of one sample's spatial and intensity augmentation.

    The identity value of a field means that step is not applied (``rotate_rad = 0``,
    ``scale_yx = (1, 1)``, ``elastic_magnitude_px = 0``, ``lowres_zoom = 1``, ``brightness = 0``,
    ``contrast = 1``, ``gamma = 1``, ``noise_std = 0``, ``blur_sigma_yx = (0, 0)``).

    Attributes:
        rotate_rad: in-plane rotation (radians) about the slab centre.
        scale_yx: affine scale per axis (rows, columns): the output at pixel offset ``p`` from the
            centre samples the input at ``R(rotate_rad) @ diag(scale_yx) @ p`` (MONAI's convention).
        flip_y, flip_x: mirror rows (anterior-posterior) / columns (left-right), after the affine.
        elastic_magnitude_px: standard deviation (pixels) of the control-point displacements.
        elastic_seed: seeds the control-point displacements (``numpy``, device independent).
        lowres_zoom: down-sampling factor of the simulated low resolution (nearest down, bilinear up).
        brightness: additive shift of the windowed ``[0, 1]`` image.
        contrast: multiplicative factor about the sample's mean.
        gamma: exponent applied to the sample min-max rescaled to ``[0, 1]``.
        noise_std: standard deviation of additive Gaussian noise.
        noise_seed: seeds the noise field (a ``torch`` generator on the batch's device).
        blur_sigma_yx: Gaussian blur sigmas (pixels) along rows and columns.
    """

    rotate_rad: float = 0.0
    scale_yx: tuple[float, float] = (1.0, 1.0)
    flip_y: bool = False
    flip_x: bool = False
    elastic_magnitude_px: float = 0.0
    elastic_seed: int = 0
    lowres_zoom: float = 1.0
    brightness: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    noise_std: float = 0.0
    noise_seed: int = 0
    blur_sigma_yx: tuple[float, float] = (0.0, 0.0)

    @property
    def affine(self) -> bool:
        """True when the affine part (rotation, scale or a flip) is not the identity."""
        return self.rotate_rad != 0.0 or self.scale_yx != (1.0, 1.0) or self.flip_y or self.flip_x

    @property
    def spatial(self) -> bool:
        """True when the sample is resampled (affine or elastic)."""
        return self.affine or self.elastic_magnitude_px > 0.0


IDENTITY = AugmentParams()


def sample_params(cfg: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    """Draw one sample's parameters from ``cfg``'s probabilities and ranges (module docstring).

    Args:
        cfg: the ``augment`` config section (``enabled`` False gives :data:`IDENTITY`, no draw).
        rng: the generator to draw from; exactly 23 values are drawn whatever ``cfg`` says.
    """
    if not cfg.enabled:
        return IDENTITY
    u = rng.random(10)
    rotate = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
    scale = rng.uniform(cfg.scale_range[0], cfg.scale_range[1], size=2)
    magnitude = rng.uniform(*cfg.elastic_magnitude)
    elastic_seed = int(rng.integers(_SEED_LIMIT))
    zoom = rng.uniform(*cfg.lowres_zoom)
    brightness = rng.uniform(-cfg.brightness, cfg.brightness)
    contrast = rng.uniform(*cfg.contrast)
    gamma = rng.uniform(*cfg.gamma)
    noise = rng.uniform(0.0, cfg.noise_std)
    noise_seed = int(rng.integers(_SEED_LIMIT))
    sigma = rng.uniform(cfg.blur_sigma[0], cfg.blur_sigma[1], size=2)
    affine = u[0] < cfg.p_affine
    return AugmentParams(
        rotate_rad=math.radians(float(rotate)) if affine else 0.0,
        scale_yx=(float(scale[0]), float(scale[1])) if affine else (1.0, 1.0),
        flip_y=bool(cfg.flip_anterior_posterior and u[2] < cfg.p_flip),
        flip_x=bool(cfg.flip_left_right and u[3] < cfg.p_flip),
        elastic_magnitude_px=float(magnitude) if u[1] < cfg.p_elastic else 0.0,
        elastic_seed=elastic_seed,
        lowres_zoom=float(zoom) if u[4] < cfg.p_lowres else 1.0,
        brightness=float(brightness) if u[5] < cfg.p_brightness else 0.0,
        contrast=float(contrast) if u[6] < cfg.p_contrast else 1.0,
        gamma=float(gamma) if u[7] < cfg.p_gamma else 1.0,
        noise_std=float(noise) if u[8] < cfg.p_noise else 0.0,
        noise_seed=noise_seed,
        blur_sigma_yx=(float(sigma[0]), float(sigma[1])) if u[9] < cfg.p_blur else (0.0, 0.0),
    )
