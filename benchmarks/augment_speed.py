"""Spatial and intensity augmentation speed: the CPU per-sample path and the batched path.

    python benchmarks/augment_speed.py                     # 5 x 256 x 256 slabs, batch 16
    python benchmarks/augment_speed.py --size 160 --channels 5 --batch 32 --repeats 50

Rows: ``cpu sample`` is :class:`liverseg.training.augmentation.Augmenter` on one slab (what one
DataLoader worker spends per sample), ``batch <device>`` is
:func:`liverseg.training.augment_apply.augment_batch` on a whole batch (``augment.on_device``),
per sample. One torch thread on the CPU, as in a DataLoader worker; each number is the best of
three timings. Configs: ``default`` (the ``augment`` section's defaults) and ``all`` (every step with
probability 1, elastic included). Prints a Markdown table of milliseconds per sample.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from liverseg.training.augment_apply import augment_batch
from liverseg.training.augmentation import Augmenter
from liverseg.training.config import AugmentConfig
from liverseg.training.slabs import StageSpec

CONFIGS = {
    "default": AugmentConfig(),
    "all": AugmentConfig(
        p_affine=1.0,
        p_elastic=1.0,
        p_brightness=1.0,
        p_contrast=1.0,
        p_gamma=1.0,
        p_noise=1.0,
        p_blur=1.0,
        p_lowres=1.0,
    ),
}


def _cpu_sample_ms(cfg: AugmentConfig, slab: np.ndarray, label: np.ndarray, repeats: int) -> float:
    k = (slab.shape[0] - 1) // 2
    spec = StageSpec("single", ("background", "liver", "tumor"), k, (None, 1.0, 1.0), (50.0, 400.0), 10.0)
    aug = Augmenter(cfg, spec)
    for i in range(3):
        aug(slab, label, (2.0, 1.0, 1.0), np.random.default_rng(i))
    best = float("inf")
    for _ in range(3):  # best of three: the machine may be shared
        t0 = time.perf_counter()
        for i in range(repeats):
            aug(slab, label, (2.0, 1.0, 1.0), np.random.default_rng(1000 + i))
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 1000 * best


def _batch_ms(cfg: AugmentConfig, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    def sync() -> None:
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    for i in range(2):
        augment_batch(x, y, cfg, np.random.default_rng(i))
    best = float("inf")
    for _ in range(3):  # best of three: the machine may be shared
        sync()
        t0 = time.perf_counter()
        for i in range(repeats):
            augment_batch(x, y, cfg, np.random.default_rng(1000 + i))
        sync()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 1000 * best / x.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    s, c = args.size, args.channels
    slab = rng.normal(40, 80, size=(c, s, s)).astype(np.float32)
    label = np.zeros((s, s), np.uint8)
    label[s // 4 : 3 * s // 4, s // 5 : 4 * s // 5] = 1
    label[s // 3 : s // 2, s // 3 : s // 2] = 2
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"| config | path | ms per sample ({c} x {s} x {s}) |")
    print("|---|---|---|")
    torch.set_num_threads(1)  # as in a DataLoader worker; a shared CPU makes more threads noisy
    for name, cfg in CONFIGS.items():
        print(f"| {name} | cpu sample | {_cpu_sample_ms(cfg, slab, label, args.repeats):.2f} |")
        for dev in devices:
            x = torch.rand(args.batch, c, s, s, device=dev)
            y = torch.from_numpy(np.repeat(label[None], args.batch, 0)).to(dev)
            ms = _batch_ms(cfg, x, y, max(3, args.repeats // 4))
            print(f"| {name} | batch {args.batch} on {dev.type} | {ms:.2f} |")


if __name__ == "__main__":
    main()
