"""End-to-end speed and memory of ``liverseg segment`` versus a naive baseline.

For a 512x512x~200-slice CT (a shared case when present, else a synthetic phantom of that size)
this prints, per configuration: time per stage, end-to-end wall time including reading and
writing, and peak RSS. Each configuration runs in its own subprocess so peak RSS is its own.

Configurations:
  cascade-torch   the shipped cascade with PyTorch on CPU
  cascade-onnx    the same with ONNX Runtime on CPU
  naive           one network (the stage-2 network) on every full-resolution slice, the baseline

Usage: python benchmarks/segment_speed.py [--input CT] [--slices 200] [--configs ...] [--device cpu|cuda]
       [--min-slices 1000]   (repeat the input along z until it has this many slices: a long scan,
                              to check that memory stays bounded)
Targets on a 2-core CPU: end-to-end <= 15 s, peak RSS <= 3 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("cascade-torch", "cascade-onnx", "naive")


def _make_input(slices: int, folder: Path) -> Path:
    from liverseg.io import write_volume
    from liverseg.synth import make_phantom

    image, _, _ = make_phantom(0, shape=(slices, 512, 512), spacing=(1.0, 0.75, 0.75))
    path = folder / f"phantom_{slices}x512x512.nii.gz"
    write_volume(image.with_array(image.array.astype("int16")), path)
    return path


def _tile_z(path: Path, min_slices: int, folder: Path) -> Path:
    """Repeat a CT along z (alternately mirrored, so the anatomy stays continuous)."""
    import numpy as np

    from liverseg.io import Volume, read_volume, write_volume

    image = read_volume(path)
    blocks, n = [], 0
    while n < min_slices:
        blocks.append(image.array if len(blocks) % 2 == 0 else image.array[::-1])
        n += image.shape[0]
    tiled = Volume(np.concatenate(blocks).astype("int16"), image.spacing, image.origin, image.direction)
    out = folder / f"tiled_{tiled.shape[0]}.nii.gz"
    write_volume(tiled, out)
    return out


def _peak_rss_gb() -> float:
    """This process's peak RSS since its exec (GB).

    VmHWM of /proc/self/status belongs to the process's own address space; getrusage's ru_maxrss
    would also count the parent's RSS at fork time (Linux carries it across exec), which made every
    configuration report the benchmark parent's 4 GB when it had just built the phantom.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2  # kB -> GB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # not Linux: an upper bound


def _worker(config: str, input_path: Path, device: str) -> dict:
    from liverseg.inference import SegmentOptions, run_segment

    out = Path(tempfile.mkdtemp()) / "labels.nii.gz"
    backend = "onnx" if config.endswith("onnx") else "torch"
    if config != "naive" and backend == "onnx":
        # the ONNX export is done once per installation (user cache): outside the measurement
        from liverseg.catalog import resolve_model
        from liverseg.inference.loading import load_cascade

        load_cascade(resolve_model("default"), "cpu", "onnx")
    t0 = time.perf_counter()
    if config == "naive":
        timings = _naive(input_path, out, device)
    else:
        report = run_segment(input_path, out, options=SegmentOptions(device=device, backend=backend))
        timings = report["timings_s"]
    wall = time.perf_counter() - t0
    rss_gb = _peak_rss_gb()
    return {"config": config, "wall_s": wall, "peak_rss_gb": rss_gb, "timings_s": timings}


def _naive(input_path: Path, out: Path, device: str) -> dict:
    """One network on every full-resolution slice (no localisation, no crop, no resampling)."""
    import dataclasses

    from liverseg.catalog import resolve_model
    from liverseg.inference.backends import resolve_device
    from liverseg.inference.loading import load_cascade
    from liverseg.inference.predictor import StageRunner
    from liverseg.io import read_volume, to_canonical, write_volume

    timings: dict[str, float] = {}
    t = time.perf_counter()
    image = read_volume(input_path)
    timings["read"] = time.perf_counter() - t
    dev = resolve_device(device)
    cascade = load_cascade(resolve_model("default"), dev, "torch")
    canon, reo = to_canonical(image)
    assert cascade.tumor is not None
    spec = dataclasses.replace(cascade.tumor.spec, spacing_zyx=(None, *canon.spacing[1:]))
    runner = StageRunner(cascade.tumor.backend, spec, batch_size=cascade.tumor.batch_size)
    t = time.perf_counter()
    probs = runner.predict_array(canon.array)
    timings["network_all_slices"] = time.perf_counter() - t
    labels = reo.to_original_array(probs.argmax(0).astype("uint8"))
    t = time.perf_counter()
    write_volume(image.with_array(labels), out)
    timings["write"] = time.perf_counter() - t
    return timings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, help="CT to segment (default: a synthetic 512x512xN phantom)")
    p.add_argument("--slices", type=int, default=200)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--min-slices", type=int, default=0, help="tile the input along z up to this many slices")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.input, args.device)))
        return
    tmp = Path(tempfile.mkdtemp())
    input_path = args.input or _make_input(args.slices, tmp)
    if args.min_slices:
        input_path = _tile_z(input_path, args.min_slices, tmp)
    rows = []
    for config in args.configs:
        res = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                config,
                "--input",
                str(input_path),
                "--device",
                args.device,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            print(f"{config}: FAILED\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"input: {input_path}  device: {args.device}")
    print(f"| config | end-to-end s | peak RSS GB | {'stages (s)':<60} |")
    print("|---|---:|---:|---|")
    for r in rows:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["timings_s"].items() if k != "total")
        print(f"| {r['config']} | {r['wall_s']:.2f} | {r['peak_rss_gb']:.2f} | {stages} |")


if __name__ == "__main__":
    main()
