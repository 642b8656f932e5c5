"""CPU inference speed of every registered network: torch vs ONNX Runtime (not a test).

Prints a table of milliseconds per 256x256 slice at batch 8 (eval mode, ``torch.inference_mode``)
for torch and for the same network exported to ONNX (opset 17) and run by ONNX Runtime on the CPU
execution provider. Weights are random: speed does not depend on them.

    .venv/bin/python benchmarks/models_speed.py                       # all models
    .venv/bin/python benchmarks/models_speed.py --models mobileunet unet --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from liverseg.models import MODELS, build_model, export_onnx, model_info

log = logging.getLogger("benchmarks.models_speed")


def _time_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_model(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, float | str]:
    """Torch and ONNX Runtime milliseconds per slice for the default configuration of ``name``."""
    torch.manual_seed(0)
    model = build_model(name, args.in_channels, args.out_channels).eval()
    x = torch.rand(args.batch, args.in_channels, args.size, args.size)

    def run_torch() -> object:
        with torch.inference_mode():
            return model(x)

    row: dict[str, float | str] = {"name": name}
    info = model_info(name, args.in_channels, args.size, out_channels=args.out_channels)
    row["params_m"] = info["params"] / 1e6
    row["gflops"] = info["gflops"]
    row["torch_ms"] = _time_ms(run_torch, args.repeats) / args.batch
    if args.onnx:
        import onnxruntime as ort

        path = export_onnx(model, workdir / f"{name}.onnx", example_size=(args.size, args.size))
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        reference = run_torch().numpy()
        got = session.run(None, feed)[0]
        # relative to the logits' range: fresh batch-norm statistics can give large eval logits
        row["max_rel_diff"] = float(
            np.abs(got - reference).max() / max(1e-12, float(np.abs(reference).max()))
        )
        row["ort_ms"] = _time_ms(lambda: session.run(None, feed), args.repeats) / args.batch
    return row


def format_table(rows: list[dict[str, float | str]], args: argparse.Namespace) -> str:
    """Plain-text table, one line per model."""
    header = f"{'model':<14} {'params M':>8} {'GFLOPs':>7} {'torch ms':>9} {'ORT ms':>8} {'speedup':>7} {'rel diff':>9}"
    lines = [
        f"CPU ms per {args.size}x{args.size} slice, batch {args.batch}, {args.in_channels} input slices, "
        f"{args.threads} thread(s), median of {args.repeats}",
        header,
        "-" * len(header),
    ]
    for r in rows:
        ort_ms = r.get("ort_ms")
        onnx_cols = (
            f"{ort_ms:>8.1f} {float(r['torch_ms']) / float(ort_ms):>6.2f}x {r['max_rel_diff']:>9.1e}"
            if isinstance(ort_ms, float)
            else f"{'-':>8} {'-':>7} {'-':>9}"
        )
        lines.append(
            f"{r['name']:<14} {r['params_m']:>8.2f} {r['gflops']:>7.2f} {r['torch_ms']:>9.1f} {onnx_cols}"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), metavar="NAME")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--in-channels", type=int, default=5)
    parser.add_argument("--out-channels", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch and ORT intra-op threads"
    )
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="time torch only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            log.info("timing %s ...", name)
            rows.append(bench_model(name, args, Path(tmp)))
    sys.stdout.write(format_table(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
