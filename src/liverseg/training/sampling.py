"""Training samples: 2.5D slabs with liver/tumor oversampling, patches and liver-box crops.

Every sample is a pure function of ``(seed, epoch, index)``: a map-style dataset draws it with its
own ``numpy.random.Generator``, so results do not depend on the number of DataLoader workers, the
process rank or a resume in the middle of training. :class:`EpochSampler` yields global indices
``epoch * length + i`` (sharded across DDP ranks like ``DistributedSampler``), which also carries
the epoch into persistent workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from liverseg.synth.negatives import water_phantom_slab
from liverseg.training.cache import CachedCase
from liverseg.training.config import SamplingConfig
from liverseg.training.slabs import StageSpec, gather_slab, normalise_slab

__all__ = ["AIR_HU", "EpochSampler", "RawSample", "SlabDataset", "draw_sample", "map_labels"]

AIR_HU = -1024
CATEGORIES = ("tumor", "liver", "random", "negative")
Augment = Callable[..., tuple[np.ndarray, np.ndarray]]  # see liverseg.training.augmentation.Augmenter


@dataclass
class RawSample:
    """A drawn, not yet augmented sample: HU slab ``(2k+1, S, S)`` float32, label ``(S, S)`` uint8."""

    image_hu: np.ndarray
    label: np.ndarray
    case_id: str
    z: int
    category: str
    spacing_zyx: tuple[float, float, float]
    full_quality: bool = True


def _choose_category(rng: np.random.Generator, cfg: SamplingConfig, cases: Sequence[CachedCase]) -> str:
    u = rng.random()
    if cfg.negative_fraction > 0 and rng.random() < cfg.negative_fraction:
        return "negative"
    if u < cfg.tumor_fraction and any(c.tumor_slices.size for c in cases):
        return "tumor"
    if u < cfg.tumor_fraction + cfg.liver_fraction and any(c.liver_slices.size for c in cases):
        return "liver"
    return "random"


def _fit(
    slab: np.ndarray, label: np.ndarray, size: int, center: tuple[int, int] | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (around ``center`` or at random) and/or pad with air to ``size x size``."""
    out_img = np.full((slab.shape[0], size, size), AIR_HU, dtype=np.float32)
    out_lab = np.zeros((size, size), dtype=np.uint8)
    src, dst = [], []
    for axis, n in enumerate(label.shape):
        if n > size:
            if center is not None:
                start = int(
                    np.clip(center[axis] - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, n - size)
                )
            else:
                start = int(rng.integers(0, n - size + 1))
            src.append(slice(start, start + size))
            dst.append(slice(0, size))
        else:
            off = int(rng.integers(0, size - n + 1))
            src.append(slice(0, n))
            dst.append(slice(off, off + n))
    out_img[:, dst[0], dst[1]] = slab[:, src[0], src[1]]
    out_lab[dst[0], dst[1]] = label[src[0], src[1]]
    return out_img, out_lab


def _liver_box_region(
    case: CachedCase, spec: StageSpec, cfg: SamplingConfig, rng: np.random.Generator
) -> tuple[slice, slice]:
    """In-plane liver box with the spec margin jittered per side by +-``margin_jitter_mm``."""
    assert case.liver_box is not None
    region = []
    for axis in (1, 2):
        box = case.liver_box[axis]
        n = case.label.shape[axis]
        sp = case.spacing_zyx[axis]
        lo_mm, hi_mm = spec.crop_margin_mm + rng.uniform(-cfg.margin_jitter_mm, cfg.margin_jitter_mm, size=2)
        lo = max(0, box.start - round(max(lo_mm, 0.0) / sp))
        hi = min(n, box.stop + round(max(hi_mm, 0.0) / sp))
        region.append(slice(lo, hi))
    return region[0], region[1]


def draw_sample(
    cases: Sequence[CachedCase], spec: StageSpec, cfg: SamplingConfig, rng: np.random.Generator
) -> RawSample:
    """Draw one sample (see the module docstring); labels stay 0/1/2 (see :func:`map_labels`)."""
    category = _choose_category(rng, cfg, cases)
    if category == "negative":  # a water phantom, not a case (liverseg.synth.negatives)
        sp = cases[int(rng.integers(len(cases)))].spacing_zyx
        slab, label = water_phantom_slab(2 * spec.context_slices + 1, cfg.size, (sp[1], sp[2]), rng)
        return RawSample(slab, label, "water_phantom", 0, category, sp, True)
    if category == "tumor":
        pool = [c for c in cases if c.tumor_slices.size]
    elif category == "liver":
        pool = [c for c in cases if c.liver_slices.size]
    else:
        pool = list(cases)
    case = pool[int(rng.integers(len(pool)))]
    if category == "tumor":
        z = int(rng.choice(case.tumor_slices))
    elif category == "liver":
        z = int(rng.choice(case.liver_slices))
    else:
        z = int(rng.integers(case.label.shape[0]))
    slab = gather_slab(case.image, z, spec.context_slices).astype(np.float32)
    label = case.label[z]
    if cfg.mode == "liver_box" and case.liver_box is not None:
        ry, rx = _liver_box_region(case, spec, cfg, rng)
        slab, label = slab[:, ry, rx], label[ry, rx]
    center = None
    if cfg.mode == "patch" and rng.random() < cfg.positive_patch_fraction:
        fg = np.argwhere(label == 2) if category == "tumor" else np.empty((0, 2))
        if fg.size == 0:
            fg = np.argwhere(label >= 1)
        if fg.size:
            center = tuple(int(v) for v in fg[int(rng.integers(len(fg)))])
    image, lab = _fit(slab, label, cfg.size, center, rng)  # type: ignore[arg-type]
    return RawSample(image, lab, case.id, z, category, case.spacing_zyx, case.full_quality)


def map_labels(label: np.ndarray, spec: StageSpec) -> np.ndarray:
    """Labels 0/1/2 -> the stage's classes (the liver stage merges tumor into liver)."""
    return (label >= 1).astype(np.uint8) if spec.stage == "liver" else label


class SlabDataset(Dataset):
    """Map-style dataset of random training samples; item ``g`` is sample ``g % length`` of epoch
    ``g // length`` (see :class:`EpochSampler`).

    Returns dicts ``{"image": float32 (2k+1, S, S) in [0, 1] after augmentation, "label": int64 (S, S)}``.
    """

    def __init__(
        self,
        cases: Sequence[CachedCase],
        spec: StageSpec,
        cfg: SamplingConfig,
        *,
        length: int,
        seed: int,
        augment: Augment | None = None,
    ) -> None:
        if not cases:
            raise ValueError("SlabDataset needs at least one case")
        self.cases = list(cases)
        self.spec, self.cfg, self.length, self.seed, self.augment = spec, cfg, int(length), int(seed), augment

    def __len__(self) -> int:
        return self.length

    def raw(self, global_index: int) -> tuple[RawSample, np.random.Generator]:
        epoch, i = divmod(int(global_index), self.length)
        rng = np.random.default_rng([self.seed, epoch, i])
        return draw_sample(self.cases, self.spec, self.cfg, rng), rng

    def __getitem__(self, global_index: int) -> dict[str, torch.Tensor]:
        sample, rng = self.raw(global_index)
        if self.augment is not None:
            image, label = self.augment(
                sample.image_hu, sample.label, sample.spacing_zyx, rng, full_quality=sample.full_quality
            )
        else:
            image, label = normalise_slab(sample.image_hu, self.spec), sample.label
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "label": torch.from_numpy(map_labels(np.asarray(label), self.spec).astype(np.int64)),
        }


class EpochSampler(Sampler[int]):
    """Global indices ``epoch * length + i`` for this rank's share ``i = rank, rank + world, ...``."""

    def __init__(self, length: int, *, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.rank, self.world = int(length), int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        base = self.epoch * self.length
        return iter(range(base + self.rank, base + self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))
