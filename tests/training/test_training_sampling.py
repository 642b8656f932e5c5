"""Sampling: oversampling rates, patch/box crops, determinism, sharding; slabs; augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.training.augmentation import Augmenter
from liverseg.training.cache import CachedCase
from liverseg.training.config import AugmentConfig, SamplingConfig, SyntheticLesionsConfig
from liverseg.training.sampling import AIR_HU, EpochSampler, SlabDataset, _liver_box_region, draw_sample
from liverseg.training.slabs import StageSpec, gather_slab, make_slab, normalise_slab, slab_indices

SPEC = StageSpec("single", ("background", "liver", "tumor"), 1, (None, 1.0, 1.0), (50.0, 400.0), 10.0)


def _case(nz: int = 100, liver: tuple[int, int] = (40, 60), tumor: tuple[int, int] = (50, 52)) -> CachedCase:
    image = np.full((nz, 64, 64), -100, dtype=np.int16)
    label = np.zeros((nz, 64, 64), dtype=np.uint8)
    label[liver[0] : liver[1], 20:44, 10:40] = 1
    label[tumor[0] : tumor[1], 30:33, 20:23] = 2
    image[label == 1] = 60
    image[label == 2] = 10
    return CachedCase("c0", "p0", image, label, (2.0, 1.0, 1.0))


def test_cached_case_indices() -> None:
    case = _case()
    assert case.liver_slices.tolist() == list(range(40, 60))
    assert case.tumor_slices.tolist() == [50, 51]
    assert case.liver_box == (slice(40, 60), slice(20, 44), slice(10, 40))


def test_oversampling_rates() -> None:
    case = _case()
    cfg = SamplingConfig(mode="slice", size=64, liver_fraction=0.4, tumor_fraction=0.2)
    ds = SlabDataset([case], SPEC, cfg, length=4000, seed=1)
    zs = np.array([ds.raw(i)[0].z for i in range(4000)])
    tumor_rate = np.isin(zs, case.tumor_slices).mean()
    liver_rate = np.isin(zs, case.liver_slices).mean()
    # tumor: 0.2 + 0.4 * 2/20 (liver draws) + 0.4 * 2/100 (random draws) = 0.248
    assert tumor_rate == pytest.approx(0.248, abs=0.025)
    # liver: 0.2 + 0.4 + 0.4 * 20/100 = 0.68
    assert liver_rate == pytest.approx(0.68, abs=0.025)
    plain = SlabDataset(
        [case], SPEC, SamplingConfig(liver_fraction=0.0, tumor_fraction=0.0), length=2000, seed=1
    )
    natural = np.isin([plain.raw(i)[0].z for i in range(2000)], case.tumor_slices).mean()
    assert natural < 0.05  # 2 of 100 slices without oversampling


def test_no_tumor_anywhere_falls_back_to_liver() -> None:
    case = _case(tumor=(0, 0))
    cfg = SamplingConfig(liver_fraction=0.0, tumor_fraction=1.0)
    assert draw_sample([case], SPEC, cfg, np.random.default_rng(0)).category == "liver"
    empty = _case(liver=(0, 0), tumor=(0, 0))
    assert draw_sample([empty], SPEC, cfg, np.random.default_rng(0)).category == "random"


def test_patch_mode_centres_on_foreground() -> None:
    case = _case()
    cfg = SamplingConfig(
        mode="patch", size=16, liver_fraction=0.0, tumor_fraction=1.0, positive_patch_fraction=1.0
    )
    for i in range(50):
        s = draw_sample([case], SPEC, cfg, np.random.default_rng(i))
        assert s.image_hu.shape == (3, 16, 16) and s.label.shape == (16, 16)
        assert (s.label == 2).any()


def test_small_slices_are_padded_with_air() -> None:
    case = _case()
    s = draw_sample([case], SPEC, SamplingConfig(size=80), np.random.default_rng(0))
    assert s.image_hu.shape == (3, 80, 80)
    assert (s.image_hu == AIR_HU).sum(axis=(1, 2)).min() == 80 * 80 - 64 * 64
    assert s.label.sum() == case.label[s.z].sum()


def test_liver_box_margin_jitter() -> None:
    case = _case()
    spec = StageSpec("tumor", ("background", "liver", "tumor"), 1, (None, 1.0, 1.0), (50, 400), 5.0)
    cfg = SamplingConfig(mode="liver_box", size=64, margin_jitter_mm=3.0)
    for i in range(40):
        ry, rx = _liver_box_region(case, spec, cfg, np.random.default_rng(i))
        assert 20 - 8 <= ry.start <= 20 - 2 and 44 + 2 <= ry.stop <= 44 + 8
        assert 10 - 8 <= rx.start <= 10 - 2 and 40 + 2 <= rx.stop <= 40 + 8


def test_samples_are_deterministic_and_epoch_dependent() -> None:
    case = _case()
    aug = Augmenter(AugmentConfig(p_affine=1.0, p_noise=1.0), SPEC)
    ds = SlabDataset([case], SPEC, SamplingConfig(size=48), length=10, seed=3, augment=aug)
    a, b, other = ds[7], ds[7], ds[17]  # index 17 = sample 7 of epoch 1
    assert np.array_equal(a["image"].numpy(), b["image"].numpy())
    assert not np.array_equal(a["image"].numpy(), other["image"].numpy())
    assert a["image"].shape == (3, 48, 48) and a["label"].dtype.is_floating_point is False


def test_liver_stage_merges_tumor() -> None:
    case = _case()
    spec = StageSpec("liver", ("background", "liver"), 0, (None, 1.0, 1.0), (50, 400), 0.0)
    ds = SlabDataset([case], spec, SamplingConfig(liver_fraction=0.0, tumor_fraction=1.0), length=4, seed=0)
    item = ds[0]
    assert set(np.unique(item["label"].numpy())) <= {0, 1} and item["label"].sum() > 0
    assert item["image"].shape[0] == 1


def test_epoch_sampler_shards() -> None:
    shards = [EpochSampler(10, rank=r, world_size=3) for r in range(3)]
    for s in shards:
        s.set_epoch(2)
    got = [list(s) for s in shards]
    assert sorted(i for g in got for i in g) == list(range(20, 30))
    assert [len(s) for s in shards] == [4, 3, 3]


def test_slab_edges_replicated_and_shared_with_inference() -> None:
    arr = (np.arange(6, dtype=np.float32)[:, None, None] * 10.0) * np.ones((6, 4, 5), np.float32)
    spec = StageSpec(
        "liver", ("background", "liver"), 2, (None, 1, 1), (50.0, 100.0), 0.0
    )  # [0, 100] HU -> [0, 1]
    slab = make_slab(arr, spec)
    assert slab.shape == (6, 5, 4, 5) and slab.dtype == np.float32
    assert slab[0, :, 0, 0].tolist() == pytest.approx([0, 0, 0, 0.1, 0.2])
    assert slab[5, :, 0, 0].tolist() == pytest.approx([0.3, 0.4, 0.5, 0.5, 0.5])
    for z in range(6):
        np.testing.assert_array_equal(slab[z], normalise_slab(gather_slab(arr, z, 2), spec))
    assert slab_indices(3, 1).tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 2]]


def test_augmentation_keeps_labels_and_is_seeded() -> None:
    case = _case()
    slab = gather_slab(case.image, 50, 1).astype(np.float32)
    label = case.label[50]
    aug = Augmenter(
        AugmentConfig(
            p_affine=1.0,
            p_elastic=1.0,
            p_lowres=1.0,
            p_brightness=1.0,
            p_contrast=1.0,
            p_gamma=1.0,
            p_noise=1.0,
            p_blur=1.0,
        ),
        SPEC,
    )
    img1, lab1 = aug(slab, label, case.spacing_zyx, np.random.default_rng(5))
    img2, lab2 = aug(slab, label, case.spacing_zyx, np.random.default_rng(5))
    img3, _ = aug(slab, label, case.spacing_zyx, np.random.default_rng(6))
    assert np.array_equal(img1, img2) and np.array_equal(lab1, lab2) and not np.array_equal(img1, img3)
    assert img1.shape == slab.shape and lab1.shape == label.shape and lab1.dtype == np.uint8
    assert set(np.unique(lab1)) <= {0, 1, 2} and (lab1 >= 1).sum() > 0.5 * (label >= 1).sum()
    off = Augmenter(AugmentConfig(enabled=False), SPEC)(
        slab, label, case.spacing_zyx, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(off[0], normalise_slab(slab, SPEC))


def test_synthetic_lesion_hook_inserts_tumor() -> None:
    case = _case(tumor=(0, 0))
    case.image[:] = np.where(case.label >= 1, 60, -100).astype(np.int16)
    slab = gather_slab(case.image, 50, 1).astype(np.float32)
    cfg = AugmentConfig(
        enabled=False,
        synthetic_lesions=SyntheticLesionsConfig(
            p=1.0,
            params={"count": [1, 1], "diameter_mm": [8.0, 10.0], "margin_mm": 0.0, "avoid_vessels": False},
        ),
    )
    image, label = Augmenter(cfg, SPEC)(slab, case.label[50], case.spacing_zyx, np.random.default_rng(0))
    assert (label == 2).sum() > 0 and image.shape == slab.shape
