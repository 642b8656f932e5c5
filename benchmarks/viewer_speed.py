"""Viewer latency for a 512 x 512 x 200 study: the server's viewer endpoints over localhost HTTP,
then the browser viewer itself (NiiVue in Debian chromium, headless) when chromium is installed.

Starts ``python -m liverseg.cli.serve --workers 0`` on a free port over a temporary data dir
holding one finished synthetic study (a body, a liver with four tumors; the viewer cache and the
report written as the workers write them), logs in and measures:

* server: the viewer description, the CT and label NIfTI files, a lesion border;
* browser (Playwright, ``--use-angle=swiftshader``: software WebGL, so a worst case compared with
  any GPU): opening the study until the viewer is drawn, next image (arrow key), a window preset,
  the overlay on/off, fill/outline, a lesion jump (centre, zoom, outline, axes); each timed inside
  the page from the event to the second animation frame after the change.

Prints one table per part (p50 / p95 / max in ms).

    .venv/bin/python benchmarks/viewer_speed.py [--shape 200 512 512] [--requests 20] [--repeats 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
from liverseg.reporting import build_report, write_report_json
from liverseg.service.auth import add_user
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database, Study, utcnow
from liverseg.service.storage import Storage
from liverseg.service.volumes import build_viewer_cache

PASSWORD = "benchmark-password"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def make_study(data_dir: Path, shape: tuple[int, int, int]) -> str:
    """A finished study with a synthetic CT, labels, report and viewer cache; returns its id."""
    rng = np.random.default_rng(0)
    nz, ny, nx = shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    ct = (rng.normal(0, 20, shape) - 900).astype(np.float32)
    body = ((y - ny / 2) / (0.45 * ny)) ** 2 + ((x - nx / 2) / (0.48 * nx)) ** 2 < 1
    ct[np.broadcast_to(body, shape)] += 950
    liver = ((z - nz / 2) / (0.4 * nz)) ** 2 + ((y - ny / 2) / (0.25 * ny)) ** 2 + (
        (x - nx / 3) / (0.2 * nx)
    ) ** 2 < 1
    labels = liver.astype(np.uint8)
    ct[liver] += 20
    for k, (cz, cy, cx, r) in enumerate(
        ((0.5, 0.5, 0.33, 0.05), (0.4, 0.45, 0.28, 0.02), (0.6, 0.55, 0.38, 0.03), (0.45, 0.55, 0.3, 0.012))
    ):
        tumor = ((z - cz * nz) / (r * nx * 0.7)) ** 2 + ((y - cy * ny) / (r * ny)) ** 2 + (
            (x - cx * nx) / (r * nx)
        ) ** 2 < 1
        labels[tumor & liver] = 2
        ct[tumor & liver] -= 40 + 5 * k
    image = Volume(ct, (1.0, 0.7, 0.7))
    label_vol = image.with_array(labels)
    config = ServiceConfig(data_dir=data_dir)
    storage = Storage(data_dir)
    study_id = uuid.uuid4().hex
    out = storage.output_dir(study_id)
    report = build_report(image, label_vol, model={"name": "synthetic", "version": "0"}, timings_s={},
                          input_info={"name": "synthetic.nii.gz"}, warnings=[])  # fmt: skip
    write_report_json(report, out / "report.json")
    build_viewer_cache(image, label_vol, storage.viewer_dir(study_id))
    db = Database(config.database_url)
    with db.session() as s:
        user = add_user(s, "bench", PASSWORD, "clinician")
        s.add(Study(id=study_id, owner_id=user.id, label="benchmark", input_kind="nifti", input_name="input.nii.gz",
                    input_sha256="0" * 64, input_bytes=0, status="done", created_at=utcnow(), finished_at=utcnow(),
                    patient_id="BENCH-1"))  # fmt: skip
    db.dispose()
    return study_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _row(name: str, times_ms: list[float], extra: str = "") -> None:
    t = np.asarray(times_ms)
    print(f"{name:<34} {np.percentile(t, 50):9.1f} {np.percentile(t, 95):9.1f} {t.max():9.1f}  {extra}")


def server_latency(client: httpx.Client, study: str, requests: int) -> None:
    base = f"/api/studies/{study}"
    info = client.get(f"{base}/viewer").json()
    print(f"\nserver, localhost HTTP, one client ({'x'.join(map(str, info['shape_ijk']))} voxels)")
    print(f"{'request':<34} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}  size")
    for name, path, n in (
        ("viewer description (JSON)", f"{base}/viewer", requests),
        ("CT volume ct.nii", info["volumes"]["ct"], max(3, requests // 4)),
        ("label volume labels.nii", info["volumes"]["labels"], max(3, requests // 4)),
        ("lesion border", f"{base}/lesions/1/border", requests),
    ):
        times, size = [], 0
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.get(path)
            r.raise_for_status()
            times.append(1000 * (time.perf_counter() - t0))
            size = r.num_bytes_downloaded  # bytes on the wire (the volumes are gzip-encoded)
        _row(name, times, f"{size / 1024**2:.1f} MiB" if size > 1024**2 else f"{size / 1024:.0f} KiB")


def _timed(page, action: str, until: str) -> float:
    """ms from running ``action`` (JS) in the page until ``until`` (JS condition) holds and two
    animation frames have been drawn."""
    return page.evaluate(
        """async ([action, until]) => {
          const t0 = performance.now();
          (new Function(action))();
          const ok = new Function("return " + until);
          while (!ok()) await new Promise(r => requestAnimationFrame(r));
          await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
          return performance.now() - t0;
        }""",
        [action, until],
    )


def browser_latency(url: str, study: str, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    key = "window.dispatchEvent(new KeyboardEvent('keydown', {key: '%s', bubbles: true}))"
    gl = "document.getElementById('gl')"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/login")
        page.fill("#login-name", "bench")
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{url}/")
        opens = []
        for _ in range(3):
            t0 = time.perf_counter()
            page.goto(f"{url}/studies/{study}")
            try:
                page.wait_for_selector("#gl[data-ready='1']", timeout=600_000)
            except Exception:
                raise RuntimeError(f"the viewer did not open; page errors: {errors}") from None
            page.evaluate(FRAMES)
            opens.append(1000 * (time.perf_counter() - t0))
        renderer = page.evaluate(
            "(() => { const g = document.createElement('canvas').getContext('webgl2');"
            " const d = g.getExtension('WEBGL_debug_renderer_info'); return g.getParameter(d.UNMASKED_RENDERER_WEBGL); })()"
        )
        print(f"\nbrowser: chromium headless, WebGL2 on {renderer}; from the event to the 2nd frame after it")
        print(f"{'action':<34} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
        _row("open the study (page to drawn)", opens, "incl. downloading the volumes")
        page.evaluate(FRAMES)
        steps = [
            _timed(page, f"window.__prev = {gl}.dataset.number; " + key % ("ArrowDown" if i % 2 else "ArrowUp"),
                   f"{gl}.dataset.number != window.__prev")
            for i in range(repeats)
        ]  # fmt: skip
        _row("next/previous image (arrow key)", steps)
        presets = [
            _timed(page, key % ("2" if i % 2 else "1"), f"{gl}.dataset.width == '{350 if i % 2 else 400}'")
            for i in range(repeats)
        ]
        _row("window preset (1 / 2 keys)", presets)
        toggles = [_timed(page, key % "o", "true") for _ in range(2 * (repeats // 2))]
        _row("overlay on/off (O)", toggles)
        outline = [_timed(page, key % "f", "true") for _ in range(2 * (repeats // 2))]
        _row("fill/outline (F)", outline)
        info = json.loads(page.evaluate(f"fetch('/api/studies/{study}/viewer').then(r => r.text())"))
        jumps = []
        for i in range(repeats):
            lesion = info["lesions"][i % len(info["lesions"])]
            jumps.append(_timed(
                page,
                f"document.querySelector('#lesion-table tbody tr[data-lesion=\"{lesion['id']}\"]').click()",
                f"document.getElementById('lesion-caption').dataset.lesion == '{lesion['id']}' && "
                f"{gl}.dataset.number == '{lesion['largest_slice_number']}' && {gl}.dataset.zoom != ''",
            ))  # fmt: skip
        _row("lesion jump (centre, zoom, outline, axes)", jumps, f"{len(info['lesions'])} lesions")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--requests", type=int, default=20, help="server requests per endpoint")
    parser.add_argument("--repeats", type=int, default=20, help="browser repetitions per action")
    parser.add_argument("--no-browser", action="store_true", help="measure the server endpoints only")
    args = parser.parse_args()
    shape = tuple(args.shape)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        study = make_study(data, shape)  # type: ignore[arg-type]
        print(
            f"synthetic study {shape[2]}x{shape[1]}x{shape[0]}: report and viewer cache in {time.perf_counter() - t0:.1f} s"
        )
        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} (1, 5, 15 min) at the start")
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "liverseg.cli.serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--workers",
            "0",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                for _ in range(300):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get("/healthz").status_code == 200:
                            break
                    time.sleep(0.2)
                client.post("/api/login", json={"name": "bench", "password": PASSWORD}).raise_for_status()
                server_latency(client, study, args.requests)
            if args.no_browser:
                pass
            elif not CHROMIUM.exists():
                print(f"\nbrowser part skipped: no chromium at {CHROMIUM} (apt-get install chromium)")
            else:
                browser_latency(url, study, args.repeats)
        finally:
            proc.terminate()
            proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
