"""Real-browser journeys: Debian's chromium (headless, WebGL2 through SwiftShader) driven by
Playwright against a real server (``python -m liverseg.cli.serve``, one worker process).

* clinician: upload a DICOM zip, wait, read the viewer (WebGL rendering, HU under the cursor, W/L
  drag as OHIF, scanner-order slice numbers), go to a lesion (centred, outlined, long and short
  axes drawn), paint a correction and submit it, compare a follow-up of the same patient, be
  refused another patient's study as baseline, delete a study;
* admin: register a cascade (and be refused half of one), run the validation gate, activate with
  a reason, triage the painted correction, read the audit log;
* the real pipeline (shipped model) on the bundled sample, viewed in the browser.

Screenshots of every step are written to ``<tmp_path>/screenshots`` (pytest keeps the last runs'
temporary folders).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from svc_fakes import PASSWORDS, TUMOR_HU, dicom_zip_bytes, make_ct, subprocess_env

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
_NO_BROWSER = not CHROMIUM.exists() and os.environ.get("CI") != "true"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(_NO_BROWSER, reason="Debian chromium not installed at /usr/bin/chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(tmp_path: Path, segmenter: str | None):
    data = tmp_path / "data"
    db = Database(ServiceConfig(data_dir=data).database_url)
    with db.session() as s:
        auth_mod.add_user(s, "alice", PASSWORDS["alice"], "clinician")
        auth_mod.add_user(s, "admin", PASSWORDS["admin"], "admin")
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
        cmd, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: teardown reaches the workers too
    )  # fmt: skip
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


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _orange(a: np.ndarray) -> int:
    """Pixels of the ruler/axis colour (NiiVue measurement lines, RGB 1, 0.55, 0)."""
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return int(((r > 230) & (g > 110) & (g < 170) & (b < 60)).sum())


def _yellowish_gain(after: np.ndarray, before: np.ndarray) -> int:
    """Pixels that turned towards the highlight yellow (red and green up, blue down)."""
    d = after - before
    return int(((d[..., 1] > 25) & (d[..., 2] <= 5) & (after[..., 0] > 150)).sum())


SPACING = (2.5, 1.5, 1.5)  # a 144 mm field: the small lesion is zoomed to


def _grown_ct(shape: tuple[int, int, int]):
    """The phantom three months later: the large tumor grew (longest diameter about +35 %)."""
    v = make_ct(shape=shape, spacing=SPACING)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    arr = v.array.copy()
    arr[(z / 0.4) ** 2 + ((y - 0.1) / 0.27) ** 2 + ((x + 0.3) / 0.27) ** 2 < 1] = TUMOR_HU
    return v.with_array(arr)


def _upload(b: Browser, url: str, path: Path, label: str, *, patient: str = "", date: str = "") -> None:
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


def _open_when_done(b: Browser, label: str, timeout_ms: int) -> None:
    from playwright.sync_api import expect

    row = b.page.locator("#studies-table tbody tr", has_text=label).first
    expect(row).to_have_attribute("data-status", "done", timeout=timeout_ms)
    row.locator("a").first.click()
    expect(b.page.locator("#gl")).to_have_attribute("data-ready", "1", timeout=60_000)
    _first_frames(b.page)


def _first_frames(page) -> None:
    """Wait until the browser has composited frames with the viewer: the software renderer
    (SwiftShader) compiles NiiVue's shaders first, which takes many seconds on a busy CPU."""
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_clinician_journey(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shape = (40, 96, 96)
    zips = {
        "baseline": dicom_zip_bytes(volume=make_ct(shape=shape, spacing=SPACING), patient_id="P-100", study_date="20250110"),
        "follow-up": dicom_zip_bytes(volume=_grown_ct(shape), patient_id="P-100", study_date="20250410", accession="ACC0002"),
        "other patient": dicom_zip_bytes(volume=make_ct(shape=shape, spacing=SPACING), patient_id="P-200", study_date="20241201"),
    }  # fmt: skip
    for name, data in zips.items():
        (tmp_path / f"{name}.zip").write_bytes(data)
    with _server(tmp_path, "svc_fakes:fake_segmenter") as url, sync_playwright() as pw:
        b = Browser(pw, tmp_path / "screenshots")
        p = b.page
        b.login(url, "alice")
        _upload(b, url, tmp_path / "baseline.zip", "baseline")
        expect(p.locator("#upload-status")).to_contain_text("baseline", timeout=10_000)
        expect(p.locator("#upload-status")).to_contain_text("is ready", timeout=60_000)
        row = p.locator("#studies-table tbody tr").first
        expect(row).to_contain_text("P-100")
        expect(row).to_contain_text("2025-01-10")
        b.shot("studies_list")
        _open_when_done(b, "baseline", 60_000)

        # identity and the viewer: WebGL really draws the CT and the overlay
        expect(p.locator("#identity")).to_contain_text("P-100")
        expect(p.locator("#identity")).to_contain_text("ACC0001")
        canvas = p.locator("#gl")
        first = _pixels(canvas.screenshot())
        assert (first.sum(axis=2) > 60).mean() > 0.2, "the WebGL canvas is (almost) black"
        expect(p.locator("#slice-label")).to_contain_text(" / 40 · z ")
        b.shot("viewer_opened")
        # single axial plane for the interactions below
        p.click("button[data-layout=axial]")
        box = canvas.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        p.mouse.move(cx, cy)
        expect(p.locator("#hu-label")).to_have_text(__import__("re").compile(r"^HU -?\d+$"))
        # W/L drag as OHIF: right = wider window, down = higher level
        p.mouse.down()
        p.mouse.move(cx + 50, cy + 20, steps=5)
        p.mouse.up()
        expect(p.locator("#wl-label")).to_have_text("W 600 / L 90")
        p.keyboard.press("1")
        expect(p.locator("#wl-label")).to_have_text("W 400 / L 50")
        # wheel down = next image in the scanner's order (head first: towards the feet)
        before = int(canvas.get_attribute("data-number"))
        p.mouse.wheel(0, 120)
        expect(canvas).to_have_attribute("data-number", str(before + 1))
        p.keyboard.press("Home")
        expect(canvas).to_have_attribute("data-number", "1")

        # lesion navigation: centred, zoomed, outlined, long and short axes drawn
        p.click("button[data-layout=mpr]")
        p.wait_for_timeout(300)
        plain = _pixels(canvas.screenshot())
        lesion = p.locator("#lesion-table tbody tr").first
        lesion.click()
        expect(p.locator("#lesion-caption")).to_contain_text("Lesion 1")
        info = p.evaluate(
            "fetch(location.pathname.replace('/studies/', '/api/studies/') + '/viewer').then(r => r.json())"
        )
        target = info["lesions"][0]
        expect(canvas).to_have_attribute("data-number", str(target["largest_slice_number"]))
        (nx, ny, _), (sx, sy, _) = info["shape_ijk"], info["spacing_ijk_mm"]
        zoom = max(1.0, min(12.0, max(nx * sx, ny * sy) / target["fov_mm"]))  # the lesion's field of view
        expect(canvas).to_have_attribute("data-zoom", f"{zoom:.2f}")
        expect(lesion).to_have_class(__import__("re").compile("selected"))
        p.wait_for_timeout(400)
        selected = _pixels(canvas.screenshot())
        b.shot("lesion_selected")
        p.keyboard.press("Escape")
        p.wait_for_timeout(300)
        cleared = _pixels(canvas.screenshot())
        assert _orange(selected) > 40 and _orange(cleared) == 0, "long/short axes not drawn"
        assert _yellowish_gain(selected, cleared) > 40, "selected lesion not outlined"
        assert (plain != selected).any()
        # the small lesion: all planes zoom to an 80 mm field around it
        small = info["lesions"][1]
        p.locator("#lesion-table tbody tr").nth(1).click()
        expect(canvas).to_have_attribute("data-number", str(small["largest_slice_number"]))
        expected_zoom = 96 * 1.5 / small["fov_mm"]
        assert expected_zoom > 1.5
        expect(canvas).to_have_attribute("data-zoom", f"{expected_zoom:.2f}")
        b.shot("small_lesion_zoomed")
        lesion.click()
        p.keyboard.press("f")  # outline mode: crisp borders
        p.wait_for_timeout(300)
        b.shot("lesion_outline_mode")
        p.keyboard.press("f")

        # paint a correction on the axial plane and submit it
        p.click("button[data-layout=axial]")
        p.click("#correct-start")
        expect(canvas).to_have_attribute("data-tool", "paint")
        p.click("#pen-buttons button[data-pen='2']")
        p.mouse.move(cx - 60, cy + 40)
        p.mouse.down()
        p.mouse.move(cx + 20, cy + 70, steps=12)
        p.mouse.up()
        p.fill("#correct-comment", "tumor extends posteriorly")
        b.shot("painting")
        p.click("#correct-submit")
        expect(p.locator("#correct-status")).to_contain_text("correction sent", timeout=20_000)
        expect(p.locator("#problem-list li").first).to_contain_text("painted correction")

        # follow-up of the same patient
        _upload(b, url, tmp_path / "follow-up.zip", "follow-up")
        _upload(b, url, tmp_path / "other patient.zip", "other patient")
        _open_when_done(b, "follow-up", 60_000)
        expect(p.locator("#compare-section")).to_be_visible(timeout=30_000)
        options = p.locator("#baseline-select option")
        expect(options).to_have_count(2)
        expect(options.first).to_have_attribute("data-eligible", "yes")
        p.select_option("#baseline-select", label=options.first.inner_text())
        p.click("#compare-button")
        expect(p.locator("#recist-category")).not_to_have_text("")
        expect(p.locator("#recist-box")).to_contain_text("Why:")
        expect(p.locator("#compare-summary")).to_contain_text("Liver volume (ml)")
        expect(p.locator("#compare-summary tr[data-measure=lesion_count] td").nth(1)).to_have_text("2")
        expect(p.locator("#lesion-changes tbody tr[data-kind=matched]")).to_have_count(2)
        p.locator("#compare-result").scroll_into_view_if_needed()
        b.shot("comparison")
        # another patient's study is refused as a baseline, with the reason
        other = p.locator("#baseline-select option", has_text="P-200")
        p.select_option("#baseline-select", value=other.get_attribute("value"))
        p.click("#compare-button")
        expect(p.locator("#compare-refusal")).to_contain_text("another patient")
        b.shot("comparison_refused")
        refusals = [e for e in b.errors if "status of 422" in e]
        assert len(refusals) == 1, b.errors  # the browser logs the refused request itself
        b.errors.remove(refusals[0])

        # delete the other patient's study
        p.goto(f"{url}/")
        p.locator("#studies-table tbody tr", has_text="other patient").locator("a").click()
        expect(p.locator("#gl")).to_have_attribute("data-ready", "1", timeout=60_000)
        _first_frames(p)
        p.once("dialog", lambda d: d.accept())
        p.click("#delete-button")
        p.wait_for_url(f"{url}/?deleted=*")
        expect(p.locator("#studies-notice")).to_contain_text("other patient")
        expect(p.locator("#studies-table tbody tr")).to_have_count(2)
        b.shot("after_delete")
        errors = b.errors
        b.close()
    assert errors == [], errors


def _model_zip(folder: Path, name: str, version: str) -> Path:
    """The shipped cascade, renamed: a complete model folder as an admin would register it."""
    shutil.copytree(SHIPPED, folder / name, ignore=shutil.ignore_patterns("*.onnx"))
    meta = json.loads((folder / name / "model.json").read_text())
    meta.update(name=name, version=version, default=False)
    (folder / name / "model.json").write_text(json.dumps(meta))
    out = folder / f"{name}.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for f in sorted((folder / name).iterdir()):
            zf.write(f, f"{name}/{f.name}")
    return out


def _seed_problem(url: str, ct: Path) -> None:
    """As alice through the API: one finished study with a problem report (for the triage)."""
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        sid = c.post(
            "/api/studies",
            content=ct.read_bytes(),
            headers={"Content-Type": "application/octet-stream", "X-Study-Label": "triage case"},
        ).json()["id"]
        end = time.monotonic() + 60
        while c.get(f"/api/studies/{sid}").json()["status"] != "done":
            assert time.monotonic() < end, "seed study did not finish"
            time.sleep(0.3)
        c.post(
            f"/api/studies/{sid}/problems", data={"category": "false_tumor", "comment": "cyst, not a tumor"}
        )


def test_admin_journey(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from liverseg.io import write_volume

    ct = tmp_path / "ct.nii.gz"
    write_volume(make_ct(shape=(40, 96, 96)), ct)
    good = _model_zip(tmp_path / "m", "liver-cascade-retrained", "0.2.0")
    half = SHIPPED / "stage2.pt"
    with _server(tmp_path, "svc_fakes:fake_segmenter") as url, sync_playwright() as pw:
        _seed_problem(url, ct)
        b = Browser(pw, tmp_path / "screenshots")
        p = b.page
        b.login(url, "admin")
        # the studies table: every value under its heading
        headings = [t.strip() for t in p.locator("#studies-table thead th").all_inner_texts()]
        row = p.locator("#studies-table tbody tr").first
        expect(row).to_have_attribute("data-status", "done", timeout=30_000)
        cells = row.locator("td").all_inner_texts()
        assert cells[headings.index("Owner")] == "alice" and cells[headings.index("Status")] == "done"
        assert cells[headings.index("Lesions")] == "2"

        p.goto(f"{url}/admin/models")
        # half a cascade is refused with the reason
        p.set_input_files("#model-file", str(half))
        p.click("#model-register")
        expect(p.locator("#model-status")).to_contain_text("stage 2", timeout=60_000)
        assert "/" not in p.locator("#model-status").inner_text().split("refused: ")[1].split(" (")[0]
        refusals = [e for e in b.errors if "status of 422" in e]
        assert len(refusals) == 1, b.errors  # the browser logs the refused request itself
        b.errors.remove(refusals[0])
        # a complete model folder registers; it cannot be activated before the gate
        p.set_input_files("#model-file", str(good))
        p.click("#model-register")
        expect(p.locator("#model-status")).to_contain_text(
            "registered liver-cascade-retrained 0.2.0", timeout=60_000
        )
        new = p.locator("#models-table tbody tr[data-name='liver-cascade-retrained']")
        expect(new.locator("button[data-action=active]")).to_be_disabled()
        expect(new).to_contain_text("validation gate has not been run")
        b.shot("model_registered")
        # the validation gate: the model segments the bundled sample (real pipeline)
        new.locator("button[data-action=gate]").click()
        expect(new.locator("td.gate-pass")).to_contain_text("liver Dice", timeout=300_000)
        expect(new.locator("button[data-action=active]")).to_be_enabled()
        b.shot("model_gate_passed")
        # activation asks for a confirmation and a reason
        new.locator("button[data-action=active]").click()
        expect(p.locator("#activate-dialog")).to_be_visible()
        expect(p.locator("#activate-current")).to_have_text("liver-cascade 0.1.0")
        p.fill("#activate-reason", "retrained on more cases; gate passed")
        b.shot("activate_dialog")
        p.click("#activate-confirm")
        expect(new).to_have_attribute("data-status", "active", timeout=10_000)
        expect(p.locator("#models-table tbody tr[data-name='liver-cascade']")).to_have_attribute(
            "data-status", "retired"
        )
        b.shot("model_activated")

        # triage: readable, and a saved row stays in view
        p.goto(f"{url}/admin/problems")
        prow = p.locator("#problems-table tbody tr").first
        expect(prow).to_contain_text("False tumor")
        expect(prow).to_contain_text("triage case")
        expect(prow).to_contain_text("alice")
        prow.locator("select").select_option("confirmed")
        prow.locator("input").fill("agreed: simple cyst")
        prow.locator("button").click()
        expect(prow.locator(".saved")).to_have_text("saved (confirmed)")
        expect(p.locator("#problems-table tbody tr")).to_have_count(1)
        b.shot("triage")

        p.goto(f"{url}/admin/audit")
        table = p.locator("#audit-table")
        expect(table).to_contain_text("retrained on more cases; gate passed")
        for action in ("model_status", "model_gate", "model_register", "triage", "problem_report"):
            expect(p.locator(f"#audit-table tr[data-action={action}]").first).to_be_visible()
        b.shot("audit")
        errors = b.errors
        b.close()
    assert errors == [], errors


def _real_pipeline_ready() -> str | None:
    try:
        from liverseg.catalog import resolve_model
        from liverseg.inference import run_segment  # noqa: F401

        resolve_model("default")
    except Exception as exc:  # not installed or no shipped model
        return f"real pipeline not available ({exc})"
    return None if SAMPLE.exists() else f"bundled sample missing: {SAMPLE}"


@pytest.mark.skipif(_real_pipeline_ready() is not None, reason=str(_real_pipeline_ready()))
def test_real_pipeline_in_the_viewer(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with _server(tmp_path, None) as url, sync_playwright() as pw:
        b = Browser(pw, tmp_path / "screenshots")
        p = b.page
        b.login(url, "alice")
        _upload(b, url, SAMPLE, "CHAOS sample", patient="CHAOS-3", date="2019-01-01")
        _open_when_done(b, "CHAOS sample", 600_000)
        expect(p.locator("#identity")).to_contain_text("CHAOS-3")
        liver_ml = float(p.locator("#liver-volume").inner_text().split()[0])
        assert 1000 < liver_ml < 1800, liver_ml  # the sample's reference liver: ~1.4 l
        rows = p.locator("#lesion-table tbody tr")
        if rows.count():
            rows.first.click()
            expect(p.locator("#lesion-caption")).to_contain_text("Lesion")
        b.shot("real_pipeline_viewer")
        expect(p.locator("#downloads a")).to_have_count(3)
        errors = b.errors
        b.close()
    assert errors == [], errors
