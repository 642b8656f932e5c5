"""Spatial and intensity augmentation: one sampler and one apply for the CPU and on-device paths.

(a) both paths draw their parameters with the same sampler (same generator state -> same
parameters) and (b) give the same output for the same parameters; the sampler draws what the
config says (per-axis scales, two blur sigmas, probabilities); the apply means what MONAI's
deterministic transforms mean; shapes, labels and determinism. The "GPU" path runs on CPU tensors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.transforms import (
    AdjustContrast,
    Affine,
    Flip,
    GaussianSmooth,
    ScaleIntensityFixedMean,
    ShiftIntensity,
)

from liverseg.training.augment_apply import apply_batch, augment_batch
from liverseg.training.augment_params import IDENTITY, AugmentParams, sample_params
from liverseg.training.augmentation import Augmenter
from liverseg.training.config import AugmentConfig
from liverseg.training.slabs import StageSpec, normalise_slab
from liverseg.training.trainer import _step_rng

OFF = dict(
    p_affine=0.0,
    p_elastic=0.0,
    p_brightness=0.0,
    p_contrast=0.0,
    p_gamma=0.0,
    p_noise=0.0,
    p_blur=0.0,
    p_lowres=0.0,
)
ALL = {k: 1.0 for k in OFF} | {"flip_left_right": True, "flip_anterior_posterior": True, "p_flip": 0.5}
SPEC = StageSpec("single", ("background", "liver", "tumor"), 1, (None, 1.0, 1.0), (50.0, 400.0), 10.0)


def _batch(n: int = 6, h: int = 40, w: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 5, h, w, generator=g)
    y = torch.zeros(n, h, w, dtype=torch.int64)
    y[:, 10:30, 15:40] = 1
    y[:, 15:22, 20:30] = 2
    return x, y


def _rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


def _smooth_image(h: int = 48, w: int = 64) -> torch.Tensor:
    """(1, 3, h, w) smooth blobs (bilinear interpolation is then accurate)."""
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    blobs = [((14, 20), 6.0), ((30, 44), 8.0), ((24, 30), 4.0)]
    chans = [torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)) for (cy, cx), s in blobs]
    return torch.stack(chans)[None]


def test_all_off_is_identity() -> None:
    x, y = _batch()
    xa, ya = augment_batch(x.clone(), y.clone(), AugmentConfig(**OFF), _rng())
    assert torch.equal(xa, x) and torch.equal(ya, y)
    xa, ya = augment_batch(x.clone(), y.clone(), AugmentConfig(enabled=False), _rng())
    assert torch.equal(xa, x) and torch.equal(ya, y)
    xa, ya = apply_batch(x, y, [IDENTITY] * len(x))
    assert torch.equal(xa, x) and torch.equal(ya, y)


def test_full_pipeline_keeps_shapes_labels_and_is_deterministic() -> None:
    x, y = _batch()
    cfg = AugmentConfig(**ALL)
    xa, ya = augment_batch(x.clone(), y.clone(), cfg, _rng(3))
    xb, yb = augment_batch(x.clone(), y.clone(), cfg, _rng(3))
    assert xa.shape == x.shape and ya.shape == y.shape and ya.dtype == y.dtype and xa.dtype == torch.float32
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert set(ya.unique().tolist()) <= {0, 1, 2}
    assert not torch.equal(xa, x)
    xc, _ = augment_batch(x.clone(), y.clone(), cfg, _rng(4))
    assert not torch.equal(xa, xc)


def test_cpu_and_device_paths_draw_the_same_parameters_and_give_the_same_output() -> None:
    """(a) + (b): the CPU Augmenter on one sample equals augment_batch on a batch of that sample
    for the same generator seed (same sampler, same apply); a batch of N equals N single calls."""
    cfg = AugmentConfig(**ALL, elastic_spacing=(12.0, 12.0))
    rng = np.random.default_rng(0)
    slab_hu = rng.normal(40, 60, size=(3, 40, 56)).astype(np.float32)
    label = np.zeros((40, 56), np.uint8)
    label[8:30, 10:44], label[14:20, 18:30] = 1, 2
    cpu = Augmenter(cfg, SPEC)
    x = torch.from_numpy(normalise_slab(slab_hu, SPEC))[None]
    y = torch.from_numpy(label)[None]
    for seed in range(6):
        image_cpu, label_cpu = cpu(slab_hu, label, (2.0, 1.0, 1.0), _rng(seed))
        x_dev, y_dev = augment_batch(x.clone(), y.clone(), cfg, _rng(seed))
        np.testing.assert_allclose(image_cpu, x_dev[0].numpy(), atol=1e-6)
        np.testing.assert_array_equal(label_cpu, y_dev[0].numpy())
        assert label_cpu.dtype == np.uint8

    # batched: each sample of a batch gets its own parameters, exactly as if applied alone
    xb, yb = _batch(n=5)
    draw = _rng(7)
    params = [sample_params(cfg, draw) for _ in range(5)]
    assert len({p.scale_yx for p in params}) == 5 and len({p.blur_sigma_yx for p in params}) == 5
    xa, ya = augment_batch(xb, yb, cfg, _rng(7))
    for i, p in enumerate(params):
        xi, yi = apply_batch(xb[i : i + 1], yb[i : i + 1], [p], elastic_spacing=cfg.elastic_spacing)
        torch.testing.assert_close(xa[i : i + 1], xi, atol=1e-5, rtol=0)
        assert torch.equal(ya[i : i + 1], yi)


def test_sampler_draws_what_the_config_says() -> None:
    cfg = AugmentConfig(
        p_affine=0.6,
        rotate_deg=15.0,
        scale_range=(0.8, 1.25),
        p_blur=0.5,
        blur_sigma=(0.5, 1.0),
        p_noise=0.3,
        noise_std=0.05,
        p_elastic=0.2,
        p_lowres=0.15,
        flip_left_right=True,
        p_flip=0.5,
    )
    rng = _rng(11)
    draws = [sample_params(cfg, rng) for _ in range(4000)]
    n = len(draws)

    def rate(pred) -> float:
        return sum(map(pred, draws)) / n

    tol = 4 * math.sqrt(0.25 / n)  # 4 binomial standard deviations at worst
    assert abs(rate(lambda p: p.scale_yx != (1.0, 1.0)) - 0.6) < tol
    assert abs(rate(lambda p: p.blur_sigma_yx != (0.0, 0.0)) - 0.5) < tol
    assert abs(rate(lambda p: p.noise_std > 0) - 0.3) < tol
    assert abs(rate(lambda p: p.elastic_magnitude_px > 0) - 0.2) < tol
    assert abs(rate(lambda p: p.lowres_zoom < 1) - 0.15) < tol
    assert abs(rate(lambda p: p.flip_x) - 0.5) < tol and rate(lambda p: p.flip_y) == 0.0  # AP flips off
    assert rate(lambda p: p.brightness != 0) == pytest.approx(0.15, abs=tol)  # the default p_brightness

    scales = np.array([p.scale_yx for p in draws if p.scale_yx != (1.0, 1.0)])
    sigmas = np.array([p.blur_sigma_yx for p in draws if p.blur_sigma_yx != (0.0, 0.0)])
    rot = np.degrees([p.rotate_rad for p in draws if p.scale_yx != (1.0, 1.0)])
    # one factor per axis and one sigma per axis, drawn independently (not one for both)
    assert abs(np.corrcoef(scales.T)[0, 1]) < 0.1 and abs(np.corrcoef(sigmas.T)[0, 1]) < 0.1
    assert scales.min() >= 0.8 and scales.max() <= 1.25 and sigmas.min() >= 0.5 and sigmas.max() <= 1.0
    assert np.abs(rot).max() <= 15.0 and np.abs(rot).mean() == pytest.approx(7.5, abs=0.6)
    noise = np.array([p.noise_std for p in draws if p.noise_std > 0])
    assert noise.max() <= 0.05 and noise.mean() == pytest.approx(0.025, abs=0.003)
    assert sample_params(AugmentConfig(enabled=False), rng) is IDENTITY


def test_fixed_number_of_draws_keeps_other_steps_stable() -> None:
    """Switching one step off does not shift the random numbers of the others."""
    a = sample_params(AugmentConfig(p_noise=1.0, p_blur=1.0), _rng(5))
    b = sample_params(AugmentConfig(p_noise=1.0, p_blur=0.0), _rng(5))
    assert a.noise_std == b.noise_std and a.noise_seed == b.noise_seed and b.blur_sigma_yx == (0.0, 0.0)


def test_apply_means_what_monai_means() -> None:
    img = _smooth_image()
    lab = torch.zeros(1, 48, 64, dtype=torch.int64)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))

    def ours(**kw) -> torch.Tensor:
        return apply_batch(img, lab, [AugmentParams(**kw)])[0]

    theta, sy, sx = math.radians(20.0), 1.2, 0.85
    monai_affine = Affine(
        rotate_params=(theta,), scale_params=(sy, sx), mode="bilinear", padding_mode="zeros"
    )
    expected = torch.as_tensor(monai_affine(img[0])[0])[None]
    # MONAI's convention (output at p samples the input at R S p, per-axis scale) on the whole grid
    torch.testing.assert_close(ours(rotate_rad=theta, scale_yx=(sy, sx)), expected, atol=1e-5, rtol=0)
    for axis, kw in ((0, {"flip_y": True}), (1, {"flip_x": True})):
        torch.testing.assert_close(
            ours(**kw)[0], torch.as_tensor(Flip(spatial_axis=axis)(img[0])), atol=1e-5, rtol=0
        )
    torch.testing.assert_close(
        ours(gamma=1.4)[0], torch.as_tensor(AdjustContrast(1.4)(img[0])), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        ours(contrast=1.3)[0], torch.as_tensor(ScaleIntensityFixedMean(factor=0.3)(img[0])), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        ours(brightness=-0.07)[0], torch.as_tensor(ShiftIntensity(-0.07)(img[0])), atol=1e-6, rtol=0
    )
    # MONAI's kernel; the padding differs (replicate here, zeros in GaussianSmooth): compare inside
    blurred = torch.as_tensor(GaussianSmooth(sigma=(0.9, 0.6))(img[0]))[None]
    torch.testing.assert_close(ours(blur_sigma_yx=(0.9, 0.6))[inner], blurred[inner], atol=1e-5, rtol=0)


def test_flip_moves_image_and_label_together() -> None:
    x, y = _batch(n=2)
    x = y[:, None].float().repeat(1, 5, 1, 1)  # image == label: they must stay equal after warping
    cfg = AugmentConfig(**OFF).replace(flip_left_right=True, p_flip=1.0)
    xa, ya = augment_batch(x.clone(), y.clone(), cfg, _rng())
    assert torch.equal(ya, torch.flip(y, dims=[-1]))
    assert torch.allclose(xa[:, 0], ya.float(), atol=1e-4)


def test_rotation_and_elastic_keep_image_label_alignment() -> None:
    x, y = _batch(n=4, h=64, w=64)
    x = (y[:, None] == 2).float().repeat(1, 3, 1, 1)
    cfg = AugmentConfig(**OFF).replace(p_affine=1.0, rotate_deg=30, scale_range=(0.9, 1.1), p_elastic=1.0)
    xa, ya = augment_batch(x, y, cfg, _rng(5))
    tumor = ya == 2
    # bilinear image agrees with the nearest-neighbour label away from the edges
    assert (xa[:, 0][tumor] > 0.4).float().mean() > 0.95
    assert (xa[:, 0][ya == 0] < 0.6).float().mean() > 0.99


def test_on_device_parameters_are_a_pure_function_of_seed_rank_and_step() -> None:
    """What makes --resume replay the on-device augmentation of every step."""
    cfg = AugmentConfig(**ALL)
    draw = lambda seed, rank, step: [sample_params(cfg, _step_rng(seed, rank, step)) for _ in range(3)]  # noqa: E731
    assert draw(0, 0, 17) == draw(0, 0, 17)
    assert (
        draw(0, 0, 17) != draw(0, 0, 18)
        and draw(0, 0, 17) != draw(0, 1, 17)
        and draw(0, 0, 17) != draw(1, 0, 17)
    )
