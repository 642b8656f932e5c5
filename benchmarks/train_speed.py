"""Training and inference speed per network, in slices per second (prints a Markdown table).

    python benchmarks/train_speed.py                       # every network, 256 px, CPU or CUDA
    python benchmarks/train_speed.py --networks unet mobileunet --size 512 --batch 16 --steps 20

Training = forward + backward + AdamW step on random 2.5D slabs (channels_last and autocast on
CUDA, as ``liverseg train`` does); inference = forward under ``no_grad`` in eval mode. The
``data`` row measures the sampler + augmentation pipeline (samples/s, one process) on a synthetic
cached case, i.e. what each DataLoader worker can deliver.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], None], steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return time.perf_counter() - t0


def bench_network(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float | str]:
    from liverseg.models import build_model
    from liverseg.models.info import count_parameters

    in_ch = 2 * args.context + 1
    model = build_model(name, in_ch, args.classes).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    amp = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else (torch.float16 if cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.batch, in_ch, args.size, args.size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch, args.size, args.size), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step() -> None:
        with torch.autocast("cuda", dtype=amp) if amp else torch.autocast("cpu", enabled=False):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    t_train = _timed(train_step, args.steps, args.warmup, device)
    model.eval()

    @torch.no_grad()
    def infer_step() -> None:
        with torch.autocast("cuda", dtype=amp) if amp else torch.autocast("cpu", enabled=False):
            model(x)

    t_inf = _timed(infer_step, args.steps, args.warmup, device)
    n = args.batch * args.steps
    row: dict[str, float | str] = {
        "network": name,
        "params_M": count_parameters(model) / 1e6,
        "train_slices_s": n / t_train,
        "infer_slices_s": n / t_inf,
    }
    if cuda:
        row["peak_mem_GB"] = torch.cuda.max_memory_allocated(device) / 1e9
        torch.cuda.reset_peak_memory_stats(device)
    return row


def bench_data(args: argparse.Namespace) -> float:
    """Samples per second of SlabDataset + augmentation on a synthetic case (one process)."""
    from liverseg.training.augmentation import Augmenter
    from liverseg.training.cache import CachedCase
    from liverseg.training.config import AugmentConfig, SamplingConfig
    from liverseg.training.sampling import SlabDataset
    from liverseg.training.slabs import StageSpec

    rng = np.random.default_rng(0)
    image = rng.normal(40, 30, (64, args.size + 64, args.size + 64)).astype(np.int16)
    label = np.zeros(image.shape, np.uint8)
    label[16:48, 40:140, 40:160] = 1
    label[30:34, 80:90, 80:90] = 2
    case = CachedCase("bench", "bench", image, label, (1.0, 1.0, 1.0))
    spec = StageSpec(
        "single", ("background", "liver", "tumor"), args.context, (None, 1.0, 1.0), (50, 400), 10.0
    )
    ds = SlabDataset(
        [case],
        spec,
        SamplingConfig(size=args.size),
        length=10_000,
        seed=0,
        augment=Augmenter(AugmentConfig(), spec),
    )
    ds[0]
    t0 = time.perf_counter()
    n = 50
    for i in range(1, n + 1):
        ds[i]
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    from liverseg.models import MODELS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--context", type=int, default=2, help="k: 2k+1 input slices")
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-data", action="store_true", help="skip the data-pipeline row")
    args = p.parse_args(argv)
    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(
        f"# Training / inference speed: {where}, {args.size}x{args.size}, batch {args.batch}, "
        f"{2 * args.context + 1} input slices, {args.steps} timed steps\n"
    )
    cols = ["network", "params_M", "train_slices_s", "infer_slices_s"] + (
        ["peak_mem_GB"] if device.type == "cuda" else []
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for name in args.networks:
        row = bench_network(name, args, device)
        print(
            "| "
            + " | ".join(f"{row[c]:.1f}" if isinstance(row[c], float) else str(row[c]) for c in cols)
            + " |",
            flush=True,
        )
    if not args.no_data:
        print(
            f"\ndata pipeline (sampling + default augmentation, one process): {bench_data(args):.1f} samples/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
