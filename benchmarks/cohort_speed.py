"""Cohort throughput: the same cases with ``--engine local`` and ``--engine ray`` (a local Ray).

The cohort is ``--copies`` copies of real CTs: the 3D-IRCADb patients 1, 7 and 17 (DICOM zips,
512 x 512, 119-151 slices) and CHAOS case 3 (DICOM folder, 78 slices) from ../shared/data when
present, else the bundled sample. Copies are rows of one manifest (same file, another case id),
so nothing is copied. Each configuration runs in its own subprocess (its own start-up: Ray,
worker processes, model loads are part of its wall time) into a fresh output folder.

Printed per configuration: wall time (start-up included), cases per minute, mean seconds per
case on its worker, CPU seconds per case (all workers' CPU time / cases, model loads included),
CPU utilisation of the workers (their CPU seconds / (wall x their CPUs)),
the whole machine's busy CPU share during the run (/proc/stat; other work on a shared machine
counts too), and the peak RSS of each worker process (VmHWM).

Then a projection for N nodes with GPUs, from the per-case times measured here and the
assumptions given on the command line (printed with the result).

Configurations: ``local``, ``ray:WxC`` (W workers of C CPUs), ``ray:WxC:gG`` (G GPUs per worker).

Usage: python benchmarks/cohort_speed.py [--copies 2] [--configs local ray:1x2 ray:2x1]
       [--device cpu|cuda] [--cases CT ...] [--gpu-speedup 20 --node-cpus 8 --node-gpus 1 --nodes 1 4 16]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REAL_CASES = [
    SHARED / "ircadb" / "3Dircadb1.1" / "PATIENT_DICOM.zip",
    SHARED / "ircadb" / "3Dircadb1.7" / "PATIENT_DICOM.zip",
    SHARED / "ircadb" / "3Dircadb1.17" / "PATIENT_DICOM.zip",
    SHARED / "chaos-ct-3" / "DICOM_anon",
]
SAMPLE = REPO / "src" / "liverseg" / "sample" / "chaos_ct3_image.nii.gz"
NETWORK_STAGES = ("stage1_liver", "stage2_liver_tumor")


def _parse_config(text: str) -> dict:
    if text == "local":
        return {"engine": "local", "n_workers": 1, "cpus": os.cpu_count() or 1, "gpus": 0.0}
    parts = text.split(":")
    if parts[0] != "ray" or len(parts) not in (2, 3) or "x" not in parts[1]:
        raise SystemExit(f"bad configuration {text!r}: expected local, ray:WxC or ray:WxC:gG")
    workers, cpus = parts[1].split("x")
    gpus = float(parts[2].lstrip("g")) if len(parts) == 3 else 0.0
    return {"engine": "ray", "n_workers": int(workers), "cpus": float(cpus), "gpus": gpus}


def _name(src: Path) -> str:
    """A short case id: the patient folder of an IRCADb zip, the case folder of a DICOM folder."""
    return src.parent.name if src.suffix == ".zip" or src.name == "DICOM_anon" else src.name.split(".")[0]


def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _worker(config_text: str, manifest: Path, out: Path, device: str) -> dict:
    """Run one configuration in this process; the numbers as a dict."""
    from liverseg.cohort import CohortConfig, make_engine, read_manifest, run_cohort
    from liverseg.inference import SegmentOptions

    cfg = _parse_config(config_text)
    if cfg["engine"] == "local":
        engine = make_engine("local")
    else:
        engine = make_engine(
            "ray",
            num_workers=cfg["n_workers"],
            cpus_per_worker=cfg["cpus"],
            gpus_per_worker=cfg["gpus"],
            memory_per_worker=6.0,
        )
    t0 = time.perf_counter()
    summary = run_cohort(
        read_manifest(manifest),
        CohortConfig(out, SegmentOptions(device=device)),
        engine,
        show_progress=False,
    )
    wall = time.perf_counter() - t0
    reports = [
        json.loads((out / f"{r['case']}.report.json").read_text())
        for r in summary.rows
        if r["status"] == "ok"
    ]
    return {
        "config": config_text,
        **cfg,
        "wall_s": wall,
        "ok": summary.count("ok"),
        "failed": summary.count("failed"),
        "case_s": [r["seconds"] for r in summary.rows if r["status"] == "ok"],
        "errors": sorted({r["error"] for r in summary.rows if r["status"] == "failed"}),
        "network_s": [sum(rep["timings_s"].get(k, 0.0) for k in NETWORK_STAGES) for rep in reports],
        "workers": summary.workers,
        "out_mb_per_case": sum(f.stat().st_size for f in out.glob("*.*") if not f.name.startswith("cohort."))
        / 1e6
        / max(1, summary.count("ok")),
    }


def _run_config(config: str, manifest: Path, device: str) -> dict | None:
    out = Path(tempfile.mkdtemp(prefix="cohort_speed_"))
    busy0, total0 = _cpu_busy()
    res = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            config,
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--device",
            device,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    busy1, total1 = _cpu_busy()
    if res.returncode != 0:
        print(f"{config}: FAILED\n{res.stderr[-3000:]}", file=sys.stderr)
        return None
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["machine_busy"] = (busy1 - busy0) / max(1, total1 - total0)
    return row


def _print_table(rows: list[dict]) -> None:
    print(
        "| config | workers x CPU (GPU) | cases ok/failed | wall s | cases/min | mean s/case on worker "
        "| CPU s per case | worker CPU use | machine CPU busy | peak RSS per worker GB | MB written per case |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        cpu_s = sum(w["cpu_s"] for w in r["workers"])
        use = cpu_s / (r["wall_s"] * r["workers_n"] * r["cpus"]) if r["wall_s"] > 0 else 0.0
        rss = ", ".join(f"{w['peak_rss_gb']:.2f}" for w in r["workers"] if w.get("peak_rss_gb") is not None)
        gpu = f" ({r['gpus']:g} GPU)" if r["gpus"] else ""
        print(
            f"| {r['config']} | {r['workers_n']} x {r['cpus']:g}{gpu} | {r['ok']}/{r['failed']} | {r['wall_s']:.1f} "
            f"| {60 * r['ok'] / r['wall_s']:.2f} | {statistics.mean(r['case_s']):.1f} "
            f"| {_cpu_s_per_case(r):.1f} | {use:.0%} "
            f"| {r['machine_busy']:.0%} | {rss} | {r['out_mb_per_case']:.2f} |"
        )


def _cpu_s_per_case(r: dict) -> float:
    """CPU seconds the workers spent per finished case (their model loads included)."""
    return sum(w["cpu_s"] for w in r["workers"]) / max(1, r["ok"])


def _projection(rows: list[dict], args: argparse.Namespace) -> None:
    """Cases/min of N GPU nodes from the CPU seconds per case measured with 1-CPU workers.

    CPU seconds, not wall seconds: on a machine shared with other work the wall time of a case
    grows with the contention, its CPU time hardly.
    """
    one_cpu = [r for r in rows if r["engine"] == "ray" and r["cpus"] == 1 and not r["gpus"]]
    if not one_cpu:
        print("\n(no ray:Wx1 configuration: no per-core numbers to project from)")
        return
    r = one_cpu[0]
    cpu_s = _cpu_s_per_case(r)
    share = statistics.mean(n / c for n, c in zip(r["network_s"], r["case_s"], strict=True) if c > 0)
    net_s, other_s = cpu_s * share, cpu_s * (1 - share)
    gpu_cases_min = 60 * args.node_gpus * args.gpu_speedup / net_s
    cpu_cases_min = 60 * args.node_cpus / other_s
    per_node = min(gpu_cases_min, cpu_cases_min)
    print(
        f"\nProjection from {r['config']}: {cpu_s:.1f} CPU-s per case; {share:.0%} of a case's time is in the "
        f"two network stages (network + its resampling): {net_s:.1f} CPU-s, and {other_s:.1f} CPU-s elsewhere "
        "(read, reorient, post-process, measure, write)."
    )
    print(
        f"Assumptions: each node has {args.node_gpus} GPU(s) and {args.node_cpus} CPU cores; the network stages "
        f"run {args.gpu_speedup:g}x faster on a GPU than on one core (an assumption: not measured here); "
        "everything else stays on the CPU cores, one core per case; nodes scale linearly (Ray schedules "
        f"independent cases; the driver writes {r['out_mb_per_case']:.2f} MB per case)."
    )
    print(
        f"Per node: GPU bound {gpu_cases_min:.0f} cases/min, CPU bound {cpu_cases_min:.0f} cases/min -> "
        f"{per_node:.0f} cases/min ({'CPU' if cpu_cases_min < gpu_cases_min else 'GPU'}-bound)"
    )
    print("| nodes | cases/min | 10,000 CTs take |")
    print("|---:|---:|---:|")
    for n in args.nodes:
        rate = n * per_node
        print(f"| {n} | {rate:.0f} | {10000 / rate / 60:.1f} h |")
    core_hours = 10000 * cpu_s / 3600
    print(
        f"CPU only: 10,000 CTs = {core_hours:.0f} core-hours ({core_hours / args.node_cpus:.1f} h on one "
        f"{args.node_cpus}-core node); outputs {10000 * r['out_mb_per_case'] / 1000:.1f} GB."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", type=Path, help="CTs to copy (default: the real shared cases)")
    p.add_argument("--copies", type=int, default=2, help="copies of each case (default 2: 8 cases)")
    p.add_argument("--configs", nargs="+", default=["local", "ray:1x2", "ray:2x1"])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--gpu-speedup", type=float, default=20.0, help="assumed network speed-up of a GPU vs 1 core"
    )
    p.add_argument("--node-cpus", type=int, default=8)
    p.add_argument("--node-gpus", type=int, default=1)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.manifest, args.out, args.device)))
        return
    sources = [c.resolve() for c in args.cases or [c for c in REAL_CASES if c.exists()] or [SAMPLE]]
    manifest = Path(tempfile.mkdtemp(prefix="cohort_manifest_")) / "cohort.csv"
    lines = ["path,case"] + [f"{src},{_name(src)}_{k}" for k in range(args.copies) for src in sources]
    manifest.write_text("\n".join(lines) + "\n")
    print(
        f"{len(lines) - 1} cases: {args.copies} x {', '.join(str(s) for s in sources)}; {os.cpu_count()} CPUs, "
        f"device {args.device}"
    )
    rows = []
    for config in args.configs:
        row = _run_config(config, manifest, args.device)
        if row is not None and row["failed"]:
            print(f"{config}: {row['failed']} case(s) failed: {row['errors']}", file=sys.stderr)
        if row is not None and row["ok"]:
            row["workers_n"] = len(row["workers"]) or row["n_workers"]
            rows.append(row)
    _print_table(rows)
    _projection(rows, args)


if __name__ == "__main__":
    main()
