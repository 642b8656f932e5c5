"""The Ray engine on a local Ray (2 CPUs, started once per session): a cohort with a failing case in
the middle, the real shipped model on (a slab of) the bundled sample, a resumed rerun, a driver interrupted
with Ctrl-C and resumed, a worker killed twice in the middle of a case, and the memory cap.

`make test` distributes whole files over its pytest workers (``--dist loadfile``), so one worker
runs all of these on one Ray instance (a split run would start one Ray per worker, and work too).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from liverseg.cohort import CohortConfig, discover_cases, read_manifest, run_cohort
from liverseg.cohort.ray_engine import RayEngine
from liverseg.cohort.run import LOCK_FILE
from liverseg.inference import SegmentOptions
from liverseg.io import Volume, read_volume, write_volume
from liverseg.metrics import dice

OPTIONS = SegmentOptions(device="cpu")


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "cohort.csv", newline="") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="session")  # (session: xdist may interleave other modules' tests)
def ray_run(ray_address: str, tmp_path_factory: pytest.TempPathFactory, slab_file: Path) -> dict:
    """A manifest of three cases, the middle one broken, run on two Ray workers."""
    root = tmp_path_factory.mktemp("ray_cohort")
    (root / "cases").mkdir()
    shutil.copy(slab_file, root / "cases" / "a.nii.gz")
    (root / "cases" / "bad.nii.gz").write_bytes(b"not a CT")
    manifest = root / "cohort.csv"
    lines = [
        "path,case",
        "cases/a.nii.gz,a",
        "cases/bad.nii.gz,bad",
        f"{slab_file},sample",
    ]
    manifest.write_text("\n".join(lines) + "\n")
    out = root / "out"
    engine = RayEngine(num_workers=2, memory_per_worker=3.0)
    summary = run_cohort(read_manifest(manifest), CohortConfig(out, OPTIONS), engine, show_progress=False)
    return {"root": root, "manifest": manifest, "out": out, "summary": summary}


def test_failing_case_in_the_middle(ray_run: dict) -> None:
    out, summary = ray_run["out"], ray_run["summary"]
    rows = _rows(out)
    assert summary.exit_code == 1 and summary.segmented == 3
    assert [rows[n]["status"] for n in ("a", "bad", "sample")] == ["ok", "failed", "ok"]
    assert rows["bad"]["error"].startswith(
        f"{ray_run['root'] / 'cases' / 'bad.nii.gz'}: "
    )  # the reader's reason
    assert not (out / "bad.nii.gz").exists()
    for name in ("a", "sample"):
        report = json.loads((out / f"{name}.report.json").read_text())
        assert float(rows[name]["liver_ml"]) == report["liver_volume_ml"]
        assert float(rows[name]["burden_percent"]) == report["tumor_burden_percent"]
        assert rows[name]["worker"] and rows[name]["model_version"] == report["model"]["version"]
    assert (out / "cohort.parquet").exists()


def test_real_model_on_the_sample_through_ray(ray_run: dict, slab_file: Path, slab_label: Path) -> None:
    pred = read_volume(ray_run["out"] / "sample.nii.gz", kind="label")
    assert pred.same_grid(read_volume(slab_file))
    ref = read_volume(slab_label, kind="label")
    assert dice(pred.array >= 1, ref.array >= 1) > 0.85  # as tests/inference: the pipeline, not accuracy


def test_model_loaded_once_per_worker(ray_run: dict) -> None:
    workers = ray_run["summary"].workers
    assert len(workers) == 2 and len({w["worker"] for w in workers}) == 2
    assert [w["model_loads"] for w in workers] == [1, 1]
    assert sum(w["cases"] for w in workers) == 3
    assert all(w["peak_rss_gb"] > 0.1 and w["cpu_s"] > 0 for w in workers)


def test_rerun_keeps_finished_cases(ray_run: dict) -> None:
    out, root = ray_run["out"], ray_run["root"]
    mtimes = {n: (out / f"{n}.nii.gz").stat().st_mtime_ns for n in ("a", "sample")}
    manifest = root / "without_bad.csv"  # (the broken case would be tried again, as it should)
    manifest.write_text(
        "\n".join(ln for ln in ray_run["manifest"].read_text().splitlines() if "bad" not in ln)
    )
    engine = RayEngine(num_workers=2, memory_per_worker=3.0)
    summary = run_cohort(read_manifest(manifest), CohortConfig(out, OPTIONS), engine, show_progress=False)
    assert summary.exit_code == 0 and summary.segmented == 0 and summary.resumed == 2
    assert summary.workers == []  # nothing to do: no worker was started
    assert {n: (out / f"{n}.nii.gz").stat().st_mtime_ns for n in mtimes} == mtimes


def test_interrupted_driver_resumes(ray_address: str, tmp_path: Path, make_cases) -> None:
    cases = make_cases("c1", "c2", "c3", "c4")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "liverseg", "segment", str(cases), "-o", str(out), "--engine", "ray"]
    cmd += ["--address", ray_address, "--num-workers", "1", "--memory-per-worker", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "cohort.csv").exists() and any(r["status"] == "ok" for r in _rows(out).values()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    rows = _rows(out)
    done = {n for n, r in rows.items() if r["status"] == "ok"}
    assert 1 <= len(done) < 4 and all(r["status"] in ("ok", "pending") for r in rows.values())
    assert {p.stem for p in (out / "ledger").glob("*.json")} == done
    assert [p.name for p in out.rglob(".*")] == [LOCK_FILE]  # no temporary file left behind
    mtimes = {n: (out / f"{n}.nii.gz").stat().st_mtime_ns for n in done}

    engine = RayEngine(num_workers=1, memory_per_worker=3.0)
    summary = run_cohort(discover_cases(cases), CohortConfig(out, OPTIONS), engine, show_progress=False)
    assert summary.exit_code == 0 and summary.resumed == len(done) and summary.segmented == 4 - len(done)
    assert {n: (out / f"{n}.nii.gz").stat().st_mtime_ns for n in done} == mtimes


def _reader_pid(fifo: Path, exclude: set[int]) -> int | None:
    """A process (not this one, not in ``exclude``) that has ``fifo`` open."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or int(proc.name) in exclude:
            continue
        try:
            if any(os.readlink(fd) == str(fifo) for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:  # gone, or not ours to look at
            continue
    return None


def _crash_readers(fifo: Path, times: int, killed: list[int], stop: threading.Event) -> None:
    """Kill the process reading ``fifo`` (a worker crashing mid-case), ``times`` times.

    After that (or after 5 minutes) a reader gets an empty file instead, so that an unexpected
    extra attempt makes the test fail rather than hang. Runs until ``stop`` is set.
    """
    deadline = time.monotonic() + 300
    while not stop.is_set():
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds once a reader is there
        except OSError:
            time.sleep(0.05)
            continue
        try:
            while len(killed) < times and time.monotonic() < deadline and not stop.is_set():
                pid = _reader_pid(fifo, set(killed))  # (a killed reader may linger a moment)
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
                time.sleep(0.02)
        finally:
            os.close(fd)
        time.sleep(0.05)


@pytest.mark.slow
def test_worker_crash_and_memory_cap_fail_only_their_case(
    ray_address: str, tmp_path: Path, make_cases
) -> None:
    cases = make_cases("z")  # after the crash, on the restarted worker
    fifo = cases / "crash.nii.gz"
    os.mkfifo(fifo)  # its reader blocks until this test writes: the test kills it there
    big = np.full((1000, 512, 512), -1000, np.int16)  # 0.5 GB on disk, 1 GB more as float32
    big[:, 200:300, 200:300] = 60
    write_volume(Volume(big, (1.0, 0.8, 0.8)), cases / "big.nii")
    del big
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_crash_readers, args=(fifo, 2, killed, stop), daemon=True)
    killer.start()
    out = tmp_path / "out"
    try:
        engine = RayEngine(num_workers=1, memory_per_worker=1.6)
        summary = run_cohort(discover_cases(cases), CohortConfig(out, OPTIONS), engine, show_progress=False)
    finally:
        stop.set()
        killer.join(timeout=10)
    rows = _rows(out)
    assert len(set(killed)) == 2  # the first attempt and Ray's retry on a restarted worker
    assert rows["crash"]["status"] == "failed" and "worker died" in rows["crash"]["error"]
    assert rows["big"]["status"] == "failed" and "capped at 1.6 GB" in rows["big"]["error"]
    assert rows["z"]["status"] == "ok" and summary.exit_code == 1
