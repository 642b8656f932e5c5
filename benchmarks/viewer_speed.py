"""Viewer slice latency on localhost for a 512 x 512 x 200 study (target: well under 100 ms).

Starts ``python -m liverseg.cli.serve --workers 0`` on a free port over a temporary data dir
holding one finished synthetic study (viewer cache written as the workers do), logs in, and
fetches CT slices and overlays in every plane through HTTP. Prints p50/p95 per plane and kind.

    .venv/bin/python benchmarks/viewer_speed.py [--requests 60] [--shape 200 512 512]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from liverseg.io import Volume
from liverseg.service.auth import add_user
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database, Study, utcnow
from liverseg.service.storage import Storage
from liverseg.service.volumes import build_viewer_cache

PASSWORD = "benchmark-password"


def make_study(data_dir: Path, shape: tuple[int, int, int]) -> str:
    """A finished study with a synthetic CT/label viewer cache; returns its id."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    ct = (rng.normal(0, 20, shape) - 900).astype(np.float32)
    body = ((y - shape[1] / 2) / (0.45 * shape[1])) ** 2 + ((x - shape[2] / 2) / (0.48 * shape[2])) ** 2 < 1
    ct[np.broadcast_to(body, shape)] += 950
    liver = ((z - shape[0] / 2) / (0.4 * shape[0])) ** 2 + ((y - shape[1] / 2) / (0.25 * shape[1])) ** 2 + (
        (x - shape[2] / 3) / (0.2 * shape[2])
    ) ** 2 < 1
    labels = liver.astype(np.uint8)
    image = Volume(ct, (1.0, 0.7, 0.7))
    config = ServiceConfig(data_dir=data_dir)
    db = Database(config.database_url)
    study_id = uuid.uuid4().hex
    build_viewer_cache(image, image.with_array(labels), Storage(data_dir).viewer_dir(study_id))
    with db.session() as s:
        user = add_user(s, "bench", PASSWORD, "clinician")
        s.add(
            Study(
                id=study_id,
                owner_id=user.id,
                label="benchmark",
                input_kind="nifti",
                input_name="input.nii.gz",
                input_sha256="0" * 64,
                input_bytes=0,
                status="done",
                created_at=utcnow(),
                finished_at=utcnow(),
            )
        )
    db.dispose()
    return study_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=60, help="requests per plane and kind")
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), metavar=("Z", "Y", "X"))
    args = parser.parse_args()
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        study = make_study(data, shape)  # type: ignore[arg-type]
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "liverseg.cli.serve",
                "--port",
                str(port),
                "--data-dir",
                str(data),
                "--workers",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(300):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get("/healthz").status_code == 200:
                            break
                    time.sleep(0.2)
                client.post("/api/login", json={"name": "bench", "password": PASSWORD}).raise_for_status()
                client.get(f"/api/studies/{study}/viewer").raise_for_status()  # opens the memory maps
                rng = np.random.default_rng(1)
                print(
                    f"slice latency, {shape[2]}x{shape[1]}x{shape[0]} study, {args.requests} requests each, "
                    "localhost HTTP, one client"
                )
                print(f"{'plane':<10} {'kind':<8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KiB':>6}")
                for plane, n in (("axial", shape[0]), ("coronal", shape[1]), ("sagittal", shape[2])):
                    for kind in ("slice", "overlay"):
                        times, size = [], 0
                        for index in rng.integers(0, n, args.requests):
                            t0 = time.perf_counter()
                            r = client.get(
                                f"/api/studies/{study}/{kind}", params={"plane": plane, "index": int(index)}
                            )
                            r.raise_for_status()
                            times.append(1000 * (time.perf_counter() - t0))
                            size = len(r.content)
                        t = np.asarray(times)
                        print(
                            f"{plane:<10} {kind:<8} {np.percentile(t, 50):8.1f} {np.percentile(t, 95):8.1f} "
                            f"{t.max():8.1f} {size / 1024:6.0f}"
                        )
        finally:
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
