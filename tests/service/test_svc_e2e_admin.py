"""The administrator's journey in a real browser: register a model (and be refused half of
one), run the validation gate, activate with a confirmation and a reason, triage a problem
report, read the audit log; and the real pipeline (shipped model) on the bundled sample, viewed
in the browser. Screenshots: ``<tmp_path>/screenshots``.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from pathlib import Path

import httpx
from svc_browser import (
    BROWSER_MARKS,
    SAMPLE,
    SHIPPED,
    Browser,
    open_when_done,
    server,
    upload_in_page,
)
from svc_fakes import PASSWORDS, make_ct

from liverseg.catalog import resolve_model

pytestmark = BROWSER_MARKS
DEFAULT = resolve_model("default")  # the shipped model active on a fresh service


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
    with server(tmp_path, "svc_fakes:fake_segmenter") as url, sync_playwright() as pw:
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
        expect(p.locator("#activate-current")).to_have_text(f"{DEFAULT.name} {DEFAULT.version}")
        p.fill("#activate-reason", "retrained on more cases; gate passed")
        b.shot("activate_dialog")
        p.click("#activate-confirm")
        expect(new).to_have_attribute("data-status", "active", timeout=10_000)
        shipped_row = f"#models-table tbody tr[data-name='{DEFAULT.name}'][data-version='{DEFAULT.version}']"
        expect(p.locator(shipped_row)).to_have_attribute("data-status", "retired")
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


def test_real_pipeline_in_the_viewer(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with server(tmp_path, None) as url, sync_playwright() as pw:
        b = Browser(pw, tmp_path / "screenshots")
        p = b.page
        b.login(url, "alice")
        upload_in_page(b, url, SAMPLE, "CHAOS sample", patient="CHAOS-3", date="2019-01-01")
        open_when_done(b, "CHAOS sample", 600_000)
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
