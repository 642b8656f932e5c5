"""Load test of ``liverseg serve``: N clinicians uploading, viewing and downloading at once.

Starts ``python -m liverseg.cli.serve`` on loopback over a temporary data dir (SQLite by default,
PostgreSQL with ``--db postgresql+psycopg://...``; the database must be empty), with ``--workers``
segmentation workers running the test suite's fast threshold segmenter
(``tests/service/svc_fakes.py``; ``--segmenter real`` runs the shipped model instead). One
finished study is prepared, then ``--clients`` threads run for ``--duration`` seconds, each with
its own session:

* every ``--uploader-every``-th client uploads the CT again and again, polling each new study
  once (``--ct``; default a 80 x 256 x 256 float32 phantom from ``svc_fakes.write_ct`` as an
  uncompressed 20 MiB ``.nii``, which the fake segmenter handles in a fraction of a second);
* the others open the finished study as the viewer does (study, viewer info, report, the CT and
  label volumes, gzip-encoded), step through up to ``--scroll`` lesions (each lesion's border, as a
  click on a lesion row fetches it; ``--think-ms`` between two; scrolling through slices happens
  in the browser and costs the server nothing), list the studies and download the label map and
  the report now and then.

Prints requests per second, the web process's CPU time (per request: independent of what else
runs on the machine), p50/p95/p99 latency per route, errors (non-2xx answers and exceptions),
the latency of the viewer's small requests (viewer info, lesion border) made while an upload
was in flight, and after the
jobs finish (at most ``--drain-s``): studies lost (answered 202 but without a database row or
folder), orphan folders (a folder without a row, or a leftover in ``incoming/``), failed jobs.

    .venv/bin/python benchmarks/service_load.py [--clients 16] [--duration 60] [--db URL]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
from sqlalchemy import func, select

from liverseg.service.auth import add_user
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database, Job, Study

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark-password-1"
FAKE = "svc_fakes:fake_segmenter"


class Stats:
    """Latencies (ms) per route and errors, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_examples: list[str] = []
        self.small_during_upload: list[float] = []
        self.uploads_in_flight = 0
        self.accepted: list[str] = []

    def call(self, route: str, fn, *args, **kwargs) -> httpx.Response | None:
        during_upload = self.uploads_in_flight > 0
        t0 = time.perf_counter()
        try:
            r = fn(*args, **kwargs)
        except httpx.HTTPError as exc:
            self._error(route, f"{route}: {type(exc).__name__}")
            return None
        ms = 1000 * (time.perf_counter() - t0)
        with self.lock:
            self.ms[route].append(ms)
            if route in ("viewer", "border") and during_upload:
                self.small_during_upload.append(ms)
        if not 200 <= r.status_code < 300:
            self._error(route, f"{route}: {r.status_code} {r.text[:120]}")
        return r

    def _error(self, route: str, example: str) -> None:
        with self.lock:
            self.errors[route] += 1
            if len(self.error_examples) < 10:
                self.error_examples.append(example)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _login(url: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=120)
    r = c.post("/api/login", json={"name": "bench", "password": PASSWORD})
    r.raise_for_status()
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def _upload(c: httpx.Client, data: bytes, label: str) -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream", "X-Study-Label": quote(label)}
    return c.post("/api/studies", content=data, headers=headers)


def uploader(url: str, stats: Stats, ct: bytes, stop: threading.Event, k: int) -> None:
    c = _login(url)
    n = 0
    while not stop.is_set():
        with stats.lock:
            stats.uploads_in_flight += 1
        try:
            r = stats.call("upload", _upload, c, ct, f"load {k}-{n}")
        finally:
            with stats.lock:
                stats.uploads_in_flight -= 1
        if r is not None and r.status_code == 202:
            sid = r.json()["id"]
            with stats.lock:
                stats.accepted.append(sid)
            stats.call("study", c.get, f"/api/studies/{sid}")
        n += 1
    c.close()


def viewer(
    url: str, stats: Stats, study: str, n_lesions: int, args: argparse.Namespace, stop: threading.Event
) -> None:
    c = _login(url)
    rounds = 0
    while not stop.is_set():
        stats.call("study", c.get, f"/api/studies/{study}")
        stats.call("viewer", c.get, f"/api/studies/{study}/viewer")
        stats.call("report", c.get, f"/api/studies/{study}/report")
        stats.call("ct_volume", c.get, f"/api/studies/{study}/volumes/ct.nii")
        stats.call("labels_vol", c.get, f"/api/studies/{study}/volumes/labels.nii")
        for lesion in range(1, min(n_lesions, args.scroll) + 1):
            if stop.is_set():
                break
            stats.call("border", c.get, f"/api/studies/{study}/lesions/{lesion}/border")
            time.sleep(args.think_ms / 1000)
        time.sleep(args.think_ms / 1000)
        rounds += 1
        if rounds % 3 == 0:
            stats.call("list", c.get, "/api/studies", params={"limit": 50})
            stats.call("download", c.get, f"/api/studies/{study}/files/labels.nii.gz")
            stats.call("download", c.get, f"/api/studies/{study}/files/report.json")
    c.close()


def health(url: str, stats: Stats, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=120) as c:
        while not stop.is_set():
            stats.call("healthz", c.get, "/healthz")
            time.sleep(0.5)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _wait_jobs(db: Database, timeout: float) -> tuple[int, int, int]:
    """(done, failed, pending) once no job is pending or the timeout passed."""
    end = time.monotonic() + timeout
    while True:
        with db.session() as s:
            counts = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        pending = counts.get("queued", 0) + counts.get("running", 0)
        if pending == 0 or time.monotonic() > end:
            return counts.get("done", 0), counts.get("failed", 0), pending
        time.sleep(1.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--db", default=None, help="SQLAlchemy URL of an empty database (default SQLite)")
    p.add_argument("--workers", type=int, default=1, help="segmentation worker processes")
    p.add_argument("--segmenter", choices=("fake", "real"), default="fake")
    p.add_argument("--ct", type=Path, default=None, help="the CT uploaded (NIfTI; default a phantom)")
    p.add_argument("--drain-s", type=float, default=120.0, help="longest wait for queued jobs at the end")
    p.add_argument("--uploader-every", type=int, default=4, help="every k-th client uploads")
    p.add_argument("--scroll", type=int, default=20, help="most lesions stepped through per view")
    p.add_argument("--think-ms", type=float, default=100.0, help="pause between two lesions")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.ct is None:
            sys.path.insert(0, str(REPO / "tests" / "service"))
            from svc_fakes import write_ct

            args.ct = write_ct(Path(tmp) / "phantom.nii", shape=(80, 256, 256))
        ct = args.ct.read_bytes()
        data = Path(tmp) / "data"
        db_url = args.db or ServiceConfig(data_dir=data).database_url
        db = Database(db_url)
        with db.session() as s:
            add_user(s, "bench", PASSWORD, "clinician")
        port = _free_port()
        cmd = [sys.executable, "-m", "liverseg.cli.serve", "--port", str(port), "--data-dir", str(data)]
        cmd += ["--workers", str(args.workers)] + (["--db", db_url] if args.db else [])
        if args.segmenter == "fake":
            cmd += ["--segmenter", FAKE]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "tests" / "service"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                time.sleep(0.2)
            setup = _login(url)
            study = _upload(setup, ct, "baseline").json()["id"]
            for _ in range(1200):
                info = setup.get(f"/api/studies/{study}").json()
                if info["status"] in ("done", "failed"):
                    break
                time.sleep(0.5)
            if info["status"] != "done":
                raise SystemExit(f"the baseline study did not finish: {info}")
            n_lesions = len(setup.get(f"/api/studies/{study}/viewer").json()["lesions"])
            setup.close()

            stats, stop = Stats(), threading.Event()
            threads = [threading.Thread(target=health, args=(url, stats, stop))]
            for k in range(args.clients):
                if k % args.uploader_every == 0:
                    threads.append(threading.Thread(target=uploader, args=(url, stats, ct, stop, k)))
                else:
                    threads.append(
                        threading.Thread(target=viewer, args=(url, stats, study, n_lesions, args, stop))
                    )
            load0 = os.getloadavg()[0]
            cpu0 = _cpu_s(proc.pid)
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(args.duration)
            stop.set()
            for t in threads:
                t.join(300)
            elapsed = time.perf_counter() - t0
            web_cpu = _cpu_s(proc.pid) - cpu0
            load1 = os.getloadavg()[0]
            done, failed, pending = _wait_jobs(db, args.drain_s)
            with db.session() as s:
                rows = set(s.scalars(select(Study.id)))
            folders = {q.name for q in (data / "studies").iterdir()}
            leftovers = list((data / "incoming").iterdir())
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
            db.dispose()

    total = sum(len(v) for v in stats.ms.values())
    lost = [sid for sid in stats.accepted if sid not in rows or sid not in folders]
    orphans = len(folders - rows) + len(leftovers)
    print(
        f"liverseg serve under load: {args.clients} clients for {args.duration:.0f} s, "
        f"{'SQLite' if not args.db else args.db.split('://')[0]}, {args.workers} worker(s) ({args.segmenter} "
        f"segmenter), {os.cpu_count()} CPUs, load average {load0:.1f} -> {load1:.1f}; upload "
        f"{len(ct) / 2**20:.1f} MiB"
    )
    print(
        f"requests: {total} in {elapsed:.1f} s = {total / elapsed:.1f}/s; errors: {sum(stats.errors.values())}"
    )
    print(
        f"web process CPU: {web_cpu:.1f} s = {100 * web_cpu / elapsed:.0f}% of one core, "
        f"{1000 * web_cpu / max(total, 1):.1f} ms per request (uploads included)"
    )
    print(f"{'route':<10} {'n':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for route in sorted(stats.ms):
        v = stats.ms[route]
        print(
            f"{route:<10} {len(v):>6} {stats.errors.get(route, 0):>6} {_pct(v, 50):8.1f} {_pct(v, 95):8.1f} "
            f"{_pct(v, 99):8.1f} {max(v):8.1f}"
        )
    d = stats.small_during_upload
    print(
        f"viewer info and lesion borders while an upload was in flight: n={len(d)}, p50 {_pct(d, 50):.1f} ms, p95 {_pct(d, 95):.1f} ms"
    )
    print(
        f"uploads accepted: {len(stats.accepted)}; studies lost: {len(lost)}; orphan folders: {orphans}; "
        f"jobs done {done}, failed {failed}, still pending {pending}"
    )
    for example in stats.error_examples:
        print("  error:", example)
    return 0 if not stats.errors and not lost and not orphans and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
