"""Real-browser end-to-end test: Debian's chromium driven by Playwright against a real server.

The server is ``python -m liverseg.cli.serve`` (the code of ``liverseg serve``) in a subprocess
on a free port with one worker process. ``segmenter`` picks the pipeline: ``fake`` (fast, always)
and ``real`` (the shipped model through ``liverseg.inference.run_segment``; skipped until the
pipeline, the shipped model and the bundled sample are all installed).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from svc_fakes import PASSWORDS, subprocess_env, write_ct

from liverseg.service import auth as auth_mod
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = Path(__file__).resolve().parents[2] / "src" / "liverseg" / "sample" / "chaos_ct3_image.nii.gz"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# In CI (.ci/run installs chromium) a missing browser is a failure, not a silent skip.
_NO_BROWSER = not CHROMIUM.exists() and os.environ.get("CI") != "true"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(_NO_BROWSER, reason="Debian chromium not installed at /usr/bin/chromium"),
]


def _real_pipeline_ready() -> str | None:
    """None when the real pipeline can run, else why not."""
    try:
        from liverseg.inference import run_segment  # noqa: F401
        from liverseg.training.checkpoint import save_checkpoint  # noqa: F401
    except ImportError as exc:
        return f"real pipeline not installed ({exc})"
    if not SAMPLE.exists():
        return f"bundled sample missing: {SAMPLE}"
    return None


def _shipped_default() -> bool:
    # not list_shipped_models(): the service tests' autouse fixture patches it to [] in this process
    # (the server subprocess sees the real catalog)
    from liverseg.catalog import resolve_model
    from liverseg.errors import InputError

    try:
        resolve_model("default")
    except InputError:
        return False
    return True


def _activate_tiny_checkpoint(db: Database, folder: Path) -> None:
    """Register and activate an untrained one-stage checkpoint (used until a model is shipped)."""
    from liverseg.models import build_model
    from liverseg.service.registry import activate, register_checkpoint
    from liverseg.training.checkpoint import save_checkpoint
    from liverseg.training.slabs import StageSpec
    from liverseg.utils import sha256_file

    spec = StageSpec(
        stage="single",
        classes=("background", "liver", "tumor"),
        context_slices=1,
        spacing_zyx=(None, 3.0, 3.0),
        window=(50.0, 400.0),
    )
    path = save_checkpoint(
        folder / "tiny.pt",
        build_model("unet", 3, 3, features=4, depth=2),
        spec=spec,
        model_name="unet",
        model_kwargs={"features": 4, "depth": 2},
        config={},
        dataset_fingerprint=None,
        metrics={},
    )
    with db.session() as s:
        activate(s, register_checkpoint(s, path, sha256_file(path), name="tiny-untrained").id)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.slow)])
def segmenter(request: pytest.FixtureRequest) -> str | None:
    """``--segmenter`` for the server: the fake's ``module:function``, or None for the real pipeline."""
    if request.param == "fake":
        return "svc_fakes:fake_segmenter"
    why = _real_pipeline_ready()
    if why:
        pytest.skip(why)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, segmenter: str | None):
    data = tmp_path / "data"
    db = Database(ServiceConfig(data_dir=data).database_url)
    with db.session() as s:
        auth_mod.add_user(s, "alice", PASSWORDS["alice"], "clinician")
        auth_mod.add_user(s, "admin", PASSWORDS["admin"], "admin")
    if segmenter is None and not _shipped_default():
        _activate_tiny_checkpoint(db, tmp_path)
    db.dispose()
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
        "1",
    ]
    if segmenter:
        cmd += ["--segmenter", segmenter]
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        cmd,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: teardown reaches the workers too
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(
                    "server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:]
                )
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind
        log.close()


def _login(page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORDS[name])
    page.click("#login-submit")
    page.wait_for_url(f"{url}/")


def test_clinician_and_admin_journey(server: str, segmenter: str | None, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ct = SAMPLE if segmenter is None else write_ct(tmp_path / "phantom_ct.nii.gz", shape=(40, 96, 96))
    timeout_ms = 600_000 if segmenter is None else 120_000
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        # unauthenticated: sent to the login page
        page.goto(f"{server}/")
        expect(page).to_have_url(f"{server}/login")
        _login(page, server, "alice")

        # upload, wait for the result
        page.set_input_files("#upload-file", str(ct))
        page.fill("#upload-label", "e2e case")
        page.click("#upload-button")
        row = page.locator("#studies-table tbody tr").first
        expect(row).to_have_attribute("data-status", "done", timeout=timeout_ms)
        row.locator("a").click()

        # viewer: image loaded, scroll with the wheel, presets, overlay, lesions
        expect(page.locator("#viewer-section")).to_be_visible(timeout=30_000)
        ct_img = page.locator("#ct-img")  # data-index/plane are set once a slice image has loaded
        expect(ct_img).to_have_attribute("data-index", re.compile(r"^\d+$"))
        assert ct_img.evaluate("e => e.naturalWidth") > 0
        before = page.locator("#slice-slider").input_value()
        page.hover("#viewer")
        for _ in range(3):
            page.mouse.wheel(0, 120)
            page.wait_for_timeout(100)
        after = page.locator("#slice-slider").input_value()
        assert int(after) == min(int(before) + 3, int(page.locator("#slice-slider").get_attribute("max")))
        expect(ct_img).to_have_attribute("data-index", after)
        page.click("button[data-window=bone]")
        expect(page.locator("#wl-label")).to_have_text("W 1800 / L 400")
        page.click("button[data-plane=coronal]")
        expect(ct_img).to_have_attribute("data-plane", "coronal")
        page.uncheck("#overlay-toggle")
        assert page.eval_on_selector("#ov-img", "e => e.style.opacity") == "0"
        page.check("#overlay-toggle")
        expect(page.locator("#liver-volume")).to_have_text(re.compile(r"\d+\.\d ml"))
        if segmenter is None:  # the shipped model on the sample (reference liver: ~1.4 l)
            liver_ml = float(page.locator("#liver-volume").inner_text().split()[0])
            assert 1000 < liver_ml < 1800, liver_ml
        lesions = page.locator("#lesion-table tbody tr")
        if segmenter is not None:
            expect(lesions).to_have_count(2)
        if lesions.count():
            lesions.first.click()
            expect(page.locator("button[data-plane=axial]")).to_have_class(re.compile("active"))
            info = page.evaluate(
                "fetch(location.pathname.replace('/studies/', '/api/studies/') + '/viewer').then(r => r.json())"
            )
            first = info["lesions"][0]["viewer_index"]["axial"]
            expect(page.locator("#slice-slider")).to_have_value(str(first))
            expect(ct_img).to_have_attribute("data-index", str(first))
            expect(ct_img).to_have_attribute("data-plane", "axial")
        page.screenshot(path=str(tmp_path / "viewer.png"))
        expect(page.locator("#downloads a")).to_have_count(3)

        # report a problem
        page.select_option("#problem-category", "missed_tumor")
        page.fill("#problem-comment", "lesion near the dome missed")
        page.click("#problem-submit")
        expect(page.locator("#problem-status")).to_contain_text("sent")
        expect(page.locator("#problem-list li")).to_have_count(1)

        if segmenter is not None:  # follow-up: a second study compared with the first
            page.goto(f"{server}/")
            page.set_input_files("#upload-file", str(ct))
            page.fill("#upload-label", "e2e follow-up")
            page.click("#upload-button")
            expect(page.locator("#studies-table tbody tr")).to_have_count(2)
            newest = page.locator("#studies-table tbody tr").first
            expect(newest).to_have_attribute("data-status", "done", timeout=timeout_ms)
            newest.locator("a").click()
            expect(page.locator("#compare-section")).to_be_visible(timeout=30_000)
            expect(page.locator("#baseline-select option")).to_have_count(1)
            page.click("#compare-button")
            expect(page.locator("#compare-result table").first).to_contain_text("liver_volume_ml")
            if hasattr(importlib.import_module("liverseg.reporting"), "compare_reports"):
                expect(page.locator("#lesion-changes tbody tr")).to_have_count(2)

        # admin: triage queue and monitoring
        page.click("#logout")
        page.wait_for_url(f"{server}/login")
        _login(page, server, "admin")
        page.goto(f"{server}/admin/problems")
        prow = page.locator("#problems-table tbody tr").first
        expect(prow).to_contain_text("missed_tumor")
        expect(prow).to_contain_text("alice")
        prow.locator("a").first.click()
        expect(page.locator("#viewer-section")).to_be_visible(timeout=30_000)
        page.goto(f"{server}/admin/monitoring")
        expect(page.locator("#per-model tbody tr")).to_have_count(1)
        expect(page.locator("#per-model tbody tr").first).to_contain_text("1 (")
        if segmenter is None:
            expect(page.locator("#per-model tbody tr").first).to_contain_text("liver-cascade")
        expect(page.locator("#queue-length")).to_have_text("0")
        page.goto(f"{server}/admin/audit")
        expect(page.locator("#audit-table")).to_contain_text("problem_report")
        browser.close()
    assert errors == [], errors
