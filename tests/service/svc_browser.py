"""Browser journeys' shared parts: a real server in a subprocess, Debian chromium (headless,
WebGL2 through SwiftShader) driven by Playwright, screenshots, pixel checks of the WebGL canvas.

Used by ``test_svc_e2e_clinician.py`` and ``test_svc_e2e_admin.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from svc_fakes import PASSWORDS, running_server

from liverseg.service import auth as auth_mod
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src" / "liverseg" / "sample" / "chaos_ct3_image.nii.gz"
SHIPPED = REPO / "src" / "liverseg" / "catalog" / "liver-cascade" / "0.1.0"
# WebGL2 in headless chromium without a GPU: ANGLE on SwiftShader (software Vulkan)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1360, "height": 960}

# In CI (.ci/run installs chromium) a missing browser is a failure, not a silent skip.
NO_BROWSER = not CHROMIUM.exists() and os.environ.get("CI") != "true"
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(NO_BROWSER, reason="Debian chromium not installed at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(tmp_path: Path, segmenter: str | None):
    data = tmp_path / "data"
    db = Database(ServiceConfig(data_dir=data).database_url)
    with db.session() as s:
        auth_mod.add_user(s, "alice", PASSWORDS["alice"], "clinician")
        auth_mod.add_user(s, "admin", PASSWORDS["admin"], "admin")
    db.dispose()
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "liverseg.cli.serve",
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--workers",
        "1",
    ]
    if segmenter:
        cmd += ["--segmenter", segmenter]
    with running_server(cmd, port, tmp_path / "server.log", 60) as url:
        yield url


class Browser:
    """One chromium page with console errors collected and numbered screenshots."""

    def __init__(self, pw, folder: Path) -> None:
        self.browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        self.page = self.browser.new_page(viewport=VIEWPORT)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def shot(self, name: str, **kw) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}_{name}.png"
        self.page.screenshot(path=str(path), **kw)
        return path

    def login(self, url: str, name: str) -> None:
        p = self.page
        p.goto(f"{url}/login")
        p.fill("#login-name", name)
        p.fill("#login-password", PASSWORDS[name])
        p.click("#login-submit")
        p.wait_for_url(f"{url}/")

    def close(self) -> None:
        self.browser.close()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def orange(a: np.ndarray) -> int:
    """Pixels of the ruler/axis colour (NiiVue measurement lines, RGB 1, 0.55, 0)."""
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return int(((r > 230) & (g > 110) & (g < 170) & (b < 60)).sum())


def yellowish_gain(after: np.ndarray, before: np.ndarray) -> int:
    """Pixels that turned towards the highlight yellow (red and green up, blue down)."""
    d = after - before
    return int(((d[..., 1] > 25) & (d[..., 2] <= 5) & (after[..., 0] > 150)).sum())


def upload_in_page(
    b: Browser, url: str, path: Path, label: str, *, patient: str = "", date: str = ""
) -> None:
    from playwright.sync_api import expect

    p = b.page
    p.goto(f"{url}/")
    p.set_input_files("#upload-file", str(path))
    p.fill("#upload-label", label)
    if patient:
        p.fill("#upload-patient", patient)
    if date:
        p.fill("#upload-date", date)
    p.click("#upload-button")
    expect(p.locator("#upload-status")).to_contain_text(f"\u201c{label}\u201d", timeout=60_000)  # sent


def open_when_done(b: Browser, label: str, timeout_ms: int) -> None:
    from playwright.sync_api import expect

    row = b.page.locator("#studies-table tbody tr", has_text=label).first
    expect(row).to_have_attribute("data-status", "done", timeout=timeout_ms)
    row.locator("a").first.click()
    expect(b.page.locator("#gl")).to_have_attribute("data-ready", "1", timeout=60_000)
    first_frames(b.page)


def first_frames(page) -> None:
    """Wait until the browser has composited frames with the viewer: the software renderer
    (SwiftShader) compiles NiiVue's shaders first, which takes many seconds on a busy CPU."""
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
