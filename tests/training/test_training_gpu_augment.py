"""On-device batch augmentation: shapes, label values, determinism, identity when disabled."""

from __future__ import annotations


import torch

from liverseg.training.config import AugmentConfig
from liverseg.training.gpu_augment import augment_batch

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


def _batch(n: int = 6, h: int = 40, w: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 5, h, w, generator=g)
    y = torch.zeros(n, h, w, dtype=torch.int64)
    y[:, 10:30, 15:40] = 1
    y[:, 15:22, 20:30] = 2
    return x, y


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_all_off_is_identity() -> None:
    x, y = _batch()
    cfg = AugmentConfig(**OFF)
    xa, ya = augment_batch(x.clone(), y.clone(), cfg, _gen())
    assert torch.equal(xa, x) and torch.equal(ya, y)
    xa, ya = augment_batch(x.clone(), y.clone(), AugmentConfig(enabled=False), _gen())
    assert torch.equal(xa, x) and torch.equal(ya, y)


def test_full_pipeline_keeps_shapes_labels_and_is_deterministic() -> None:
    x, y = _batch()
    cfg = AugmentConfig(
        p_affine=1.0,
        p_elastic=1.0,
        p_brightness=1.0,
        p_contrast=1.0,
        p_gamma=1.0,
        p_noise=1.0,
        p_blur=1.0,
        p_lowres=1.0,
    )
    xa, ya = augment_batch(x.clone(), y.clone(), cfg, _gen(3))
    xb, yb = augment_batch(x.clone(), y.clone(), cfg, _gen(3))
    assert xa.shape == x.shape and ya.shape == y.shape and ya.dtype == y.dtype
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert set(ya.unique().tolist()) <= {0, 1, 2}
    assert not torch.equal(xa, x)
    xc, _ = augment_batch(x.clone(), y.clone(), cfg, _gen(4))
    assert not torch.equal(xa, xc)


def test_flip_moves_image_and_label_together() -> None:
    x, y = _batch(n=2)
    x = y[:, None].float().repeat(1, 5, 1, 1)  # image == label: they must stay equal after warping
    cfg = AugmentConfig(**OFF).replace(flip_left_right=True, p_flip=1.0)
    xa, ya = augment_batch(x.clone(), y.clone(), cfg, _gen())
    assert torch.equal(ya, torch.flip(y, dims=[-1]))
    assert torch.allclose(xa[:, 0], ya.float(), atol=1e-4)


def test_rotation_keeps_image_label_alignment() -> None:
    x, y = _batch(n=4, h=64, w=64)
    x = (y[:, None] == 2).float().repeat(1, 3, 1, 1)
    cfg = AugmentConfig(**OFF).replace(p_affine=1.0, rotate_deg=30, scale_range=(0.9, 1.1))
    xa, ya = augment_batch(x, y, cfg, _gen(5))
    tumor = ya == 2
    # bilinear image agrees with the nearest-neighbour label away from the edges
    assert (xa[:, 0][tumor] > 0.4).float().mean() > 0.95
    assert (xa[:, 0][ya == 0] < 0.6).float().mean() > 0.99
