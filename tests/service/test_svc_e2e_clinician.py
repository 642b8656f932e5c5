"""The clinician's journey in a real browser (Debian chromium headless, WebGL2 in software):
upload a DICOM zip, wait, read the viewer (WebGL rendering, HU under the cursor, W/L drag as
OHIF, scanner-order slice numbers), go to a lesion (centred, zoomed, outlined, long and short
axes drawn), paint a correction and submit it, compare a follow-up of the same patient, be refused
another patient's study as baseline, delete a study. Screenshots: ``<tmp_path>/screenshots``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from svc_browser import (
    BROWSER_MARKS,
    Browser,
    first_frames,
    open_when_done,
    orange,
    pixels,
    server,
    upload_in_page,
    yellowish_gain,
)
from svc_fakes import TUMOR_HU, dicom_zip_bytes, make_ct

pytestmark = BROWSER_MARKS


SPACING = (2.5, 1.5, 1.5)  # a 144 mm field: the small lesion is zoomed to


def _grown_ct(shape: tuple[int, int, int]):
    """The phantom three months later: the large tumor grew (longest diameter about +35 %)."""
    v = make_ct(shape=shape, spacing=SPACING)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    arr = v.array.copy()
    arr[(z / 0.4) ** 2 + ((y - 0.1) / 0.27) ** 2 + ((x + 0.3) / 0.27) ** 2 < 1] = TUMOR_HU
    return v.with_array(arr)


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
    with server(tmp_path, "svc_fakes:fake_segmenter") as url, sync_playwright() as pw:
        b = Browser(pw, tmp_path / "screenshots")
        p = b.page
        b.login(url, "alice")
        upload_in_page(b, url, tmp_path / "baseline.zip", "baseline")
        expect(p.locator("#upload-status")).to_contain_text("baseline", timeout=10_000)
        expect(p.locator("#upload-status")).to_contain_text("is ready", timeout=60_000)
        row = p.locator("#studies-table tbody tr").first
        expect(row).to_contain_text("P-100")
        expect(row).to_contain_text("2025-01-10")
        b.shot("studies_list")
        open_when_done(b, "baseline", 60_000)

        # identity and the viewer: WebGL really draws the CT and the overlay
        expect(p.locator("#identity")).to_contain_text("P-100")
        expect(p.locator("#identity")).to_contain_text("ACC0001")
        canvas = p.locator("#gl")
        first = pixels(canvas.screenshot())
        assert (first.sum(axis=2) > 60).mean() > 0.2, "the WebGL canvas is (almost) black"
        expect(p.locator("#slice-label")).to_contain_text(" / 40 · z ")
        b.shot("viewer_opened")
        # single axial plane for the interactions below
        p.click("button[data-layout=axial]")
        box = canvas.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        p.mouse.move(cx, cy)
        expect(p.locator("#hu-label")).to_have_text(re.compile(r"^HU -?\d+$"))
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
        plain = pixels(canvas.screenshot())
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
        expect(lesion).to_have_class(re.compile("selected"))
        p.wait_for_timeout(400)
        selected = pixels(canvas.screenshot())
        b.shot("lesion_selected")
        p.keyboard.press("Escape")
        p.wait_for_timeout(300)
        cleared = pixels(canvas.screenshot())
        assert orange(selected) > 40 and orange(cleared) == 0, "long/short axes not drawn"
        assert yellowish_gain(selected, cleared) > 40, "selected lesion not outlined"
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
        upload_in_page(b, url, tmp_path / "follow-up.zip", "follow-up")
        upload_in_page(b, url, tmp_path / "other patient.zip", "other patient")
        for label in ("follow-up", "other patient"):  # both finished: both can be offered as baseline
            row = p.locator("#studies-table tbody tr", has_text=label).first
            expect(row).to_have_attribute("data-status", "done", timeout=60_000)
        open_when_done(b, "follow-up", 60_000)
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
        first_frames(p)
        p.once("dialog", lambda d: d.accept())
        p.click("#delete-button")
        p.wait_for_url(f"{url}/?deleted=*")
        expect(p.locator("#studies-notice")).to_contain_text("other patient")
        expect(p.locator("#studies-table tbody tr")).to_have_count(2)
        b.shot("after_delete")
        errors = b.errors
        b.close()
    assert errors == [], errors
