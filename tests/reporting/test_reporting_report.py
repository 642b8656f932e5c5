"""build_report, schema validation, JSON/PNG/HTML outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from liverseg.errors import OutputError
from liverseg.io import Volume
from liverseg.reporting import (
    DISCLAIMER,
    build_report,
    load_schema,
    render_html,
    validate_report,
    write_html,
    write_overlays,
    write_report_json,
)

MODEL = {"name": "cascade-unet", "version": "0.3.1"}


def _scan(tumor: bool = True, liver: bool = True) -> tuple[Volume, Volume]:
    shape = (16, 64, 64)
    vol = Volume(np.zeros(shape, dtype=np.float32), (2.5, 0.8, 0.8), (-25.0, -25.0, 40.0))
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, dtype=np.uint8)
    if liver:
        labels[(((z - 8) / 7.0) ** 2 + ((y - 32) / 26.0) ** 2 + ((x - 30) / 24.0) ** 2) <= 1] = 1
    if tumor:
        labels[(((z - 9) / 2.5) ** 2 + ((y - 28) / 9.0) ** 2 + ((x - 24) / 7.0) ** 2) <= 1] = 2
        labels[7, 44:47, 38:41] = 2  # a second, small lesion
    hu = np.where(labels == 2, 25.0, np.where(labels == 1, 90.0, -80.0)).astype(np.float32)
    return vol.with_array(hu, source="/secret/folder/ct_001.nii.gz"), vol.with_array(labels)


def _report(image: Volume, labels: Volume, **kw) -> dict:
    args = {
        "model": MODEL,
        "timings_s": {"stage1": 1.5, "stage2": 0.25},
        "input_info": {"path": "/secret/folder/ct_001.nii.gz"},
        "warnings": [],
    }
    args.update(kw)
    return build_report(image, labels, **args)


def test_report_contents_and_schema():
    image, labels = _scan()
    report = _report(image, labels)
    jsonschema.Draft202012Validator.check_schema(load_schema())
    jsonschema.validate(report, load_schema())
    voxel_ml = 2.5 * 0.8 * 0.8 / 1000
    assert report["schema_version"] == "1.1" and report["liver_found"] is True
    assert (
        report["slice_numbering"]["basis"] == "superior-to-inferior"
        and report["slice_numbering"]["count"] == 16
    )
    assert report["liver_volume_ml"] == pytest.approx(
        np.count_nonzero(labels.array >= 1) * voxel_ml, abs=1e-3
    )
    assert report["tumor_volume_ml"] == pytest.approx(
        np.count_nonzero(labels.array == 2) * voxel_ml, abs=1e-3
    )
    assert report["tumor_burden_percent"] == pytest.approx(
        100 * np.count_nonzero(labels.array == 2) / np.count_nonzero(labels.array >= 1), abs=1e-3
    )
    assert report["lesion_count"] == 2 == len(report["lesions"])
    vols = [les["volume_ml"] for les in report["lesions"]]
    assert vols == sorted(vols, reverse=True) and [les["id"] for les in report["lesions"]] == [1, 2]
    assert report["model"] == MODEL and report["timings_s"]["stage1"] == 1.5
    assert report["software"]["numpy"] == np.__version__ and report["software"]["python"]
    assert report["input"]["name"] == "ct_001.nii.gz" and "secret" not in json.dumps(report["input"])
    assert report["input"]["geometry"]["shape_zyx"] == [16, 64, 64] and report["input"]["axial_axis"] == 0
    assert report["disclaimer"] == DISCLAIMER and "not a medical device" in DISCLAIMER
    json.dumps(report, allow_nan=False)  # strict JSON


def test_empty_tumor_and_empty_liver():
    image, labels = _scan(tumor=False)
    report = _report(image, labels)
    assert (report["lesion_count"], report["tumor_volume_ml"], report["tumor_burden_percent"]) == (
        0,
        0.0,
        0.0,
    )
    assert report["liver_found"] is True and report["lesions"] == []
    image, labels = _scan(tumor=False, liver=False)
    report = _report(image, labels, warnings=["input had 3 duplicate slices"])
    assert report["liver_found"] is False and report["liver_volume_ml"] == 0.0
    assert report["liver_centroid_lps_mm"] is None and report["tumor_burden_percent"] == 0.0
    assert report["warnings"][0] == "input had 3 duplicate slices"
    assert any("no liver" in w for w in report["warnings"])
    jsonschema.validate(report, load_schema())


def test_schema_rejects_broken_reports():
    image, labels = _scan()
    report = _report(image, labels)
    broken = json.loads(json.dumps(report))
    broken["lesions"][0]["location"]["side"] = "middle"
    with pytest.raises(OutputError, match="lesions/0/location/side"):
        validate_report(broken)
    del broken["disclaimer"]
    with pytest.raises(OutputError, match="disclaimer"):
        validate_report(broken)
    with pytest.raises(OutputError):
        _report(image, labels, model={"name": "x"})  # version missing


def test_write_json_png_and_html(tmp_path: Path):
    image, labels = _scan()
    report = _report(
        image,
        labels,
        input_info={"name": "<script>alert(1)</script>.nii"},
        warnings=["<b>check</b> slice & spacing"],
    )
    path = write_report_json(report, tmp_path / "out" / "report.json")
    assert json.loads(path.read_text()) == report
    pngs = write_overlays(image, labels, report, tmp_path / "png")
    assert [p.name for p in pngs] == ["overview.png", "lesion_01.png", "lesion_02.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == sorted(
        p.name for p in pngs
    )  # no temp files
    page = write_html(report, image, labels, tmp_path / "report.html").read_text()
    assert DISCLAIMER in page
    images = re.findall(r'<img src="([^"]*)"', page)
    assert len(images) == report["lesion_count"] + 1
    assert all(src.startswith("data:image/png;base64,") for src in images)
    text = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', "", page)  # base64 may contain "//"
    assert not re.search(r"(https?:)?//|<script|<link|<iframe|@import|url\(|src=|href=", text)
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        and "&lt;b&gt;check&lt;/b&gt; slice &amp; spacing" in page
    )
    assert "Lesion 2" in page and "cascade-unet" in page


def test_html_shows_identity_slice_numbers_and_confidence():
    image, labels = _scan()
    identity = {
        "label": "Leber Verlauf",
        "patient_id": "PAT-<7>",
        "accession_number": "ACC9",
        "study_date": "2025-04-10",
        "series_description": "Abdomen venous",
        "deidentified": False,
    }
    report = _report(image, labels, input_info={"name": "input.zip", "identity": identity})
    assert report["input"]["identity"] == identity
    # a candidate below the lesion model's threshold: listed after the confirmed ones, not in the label map
    report["lesions"].append({**report["lesions"][1], "id": 3, "confidence": 0.41, "possible": True})
    page = render_html(report, image, labels)
    for text in (
        "Patient ID",
        "PAT-&lt;7&gt;",
        "ACC9",
        "2025-04-10",
        "Abdomen venous",
        "Leber Verlauf",
        "input.zip",
    ):
        assert text in page, text
    assert "<title>liverseg report: Leber Verlauf · PAT-&lt;7&gt; · 2025-04-10</title>" in page
    first = report["lesions"][0]
    numbers = f"<td>{first['slice_numbers'][0]}-{first['slice_numbers'][1]}</td>"
    assert numbers in page and f"{first['largest_slice_number']} (z " in page
    assert "slice 1 is the most superior axial slice" in page and "Not a Couinaud segment" in page
    assert "n/a" in page and "<strong>possible false positive</strong> (41 %; not counted)" in page


def test_html_without_lesions_and_mismatched_report():
    image, labels = _scan(tumor=False)
    report = _report(image, labels)
    page = render_html(report, image, labels)
    assert "No lesion was segmented" in page and len(re.findall(r"<img ", page)) == 1
    _, labels_with_tumor = _scan()
    with pytest.raises(Exception, match="do not belong together"):
        render_html(report, image, labels_with_tumor)


def test_many_lesions_pictures_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a failed segmentation with many specks: the table keeps them all, pictures only the largest
    import liverseg.reporting.overlays as overlays

    monkeypatch.setattr(overlays, "MAX_LESION_PICTURES", 3)
    image, labels = _scan(tumor=False)
    arr = labels.array.copy()
    for i, (yy, xx) in enumerate([(20, 20), (20, 30), (30, 20), (30, 30), (40, 25), (25, 40)]):
        arr[8, yy : yy + 2 + (i % 2), xx : xx + 2] = 2  # six separate small lesions
    labels = labels.with_array(arr)
    report = _report(image, labels)
    assert report["lesion_count"] == 6
    pngs = write_overlays(image, labels, report, tmp_path / "png")
    assert [p.name for p in pngs] == ["overview.png", "lesion_01.png", "lesion_02.png", "lesion_03.png"]
    page = write_html(report, image, labels, tmp_path / "r.html").read_text()
    assert len(re.findall(r"<img ", page)) == 4
    assert "3 largest lesions only" in page and "all 6" in page
    assert page.count("<tr>") >= 6 + 1  # every lesion in the table


def test_possible_lesions_are_listed_flagged_and_not_counted():
    from liverseg.io.labels import decode_confidence, encode_confidence

    image, labels = _scan()
    lab = labels.array.copy()
    ids = np.unique(lab[lab == 2])
    assert ids.size  # the scan has two tumors; demote the smaller one to a "possible" candidate
    from liverseg.metrics.lesions import connected_lesions

    cc, _n = connected_lesions(lab == 2)
    sizes = np.bincount(cc.ravel())[1:]
    small, big = int(np.argmin(sizes)) + 1, int(np.argmax(sizes)) + 1
    conf = np.zeros(lab.shape, np.uint8)
    conf[cc == big] = encode_confidence(0.93)
    conf[cc == small] = encode_confidence(0.31)
    lab[cc == small] = 1  # what the lesion model does to a candidate below 0.5
    labels2 = labels.with_array(lab)
    report = _report(image, labels2, lesion_confidence=labels.with_array(conf))
    jsonschema.validate(report, load_schema())
    assert report["lesion_count"] == 1 and report["possible_lesion_count"] == 1
    confirmed, possible = report["lesions"]
    assert (confirmed["id"], confirmed["possible"], possible["id"], possible["possible"]) == (
        1,
        False,
        2,
        True,
    )
    assert confirmed["confidence"] == pytest.approx(0.93, abs=0.003)
    assert possible["confidence"] == pytest.approx(0.31, abs=0.003)
    voxel_ml = 2.5 * 0.8 * 0.8 / 1000
    assert report["tumor_volume_ml"] == pytest.approx(
        sizes[big - 1] * voxel_ml, abs=1e-3
    )  # possible excluded
    assert possible["volume_ml"] == pytest.approx(sizes[small - 1] * voxel_ml, abs=1e-3)  # but measured
    assert np.isnan(decode_confidence(0)) and decode_confidence(encode_confidence(1.0)) == 1.0
    # without a confidence map every lesion is confirmed, with an unknown confidence
    plain = _report(image, labels)
    assert all(les["confidence"] is None and les["possible"] is False for les in plain["lesions"])
    assert plain["possible_lesion_count"] == 0


def test_max_per_lesion_matches_a_loop_over_lesions() -> None:
    from liverseg.reporting.report import _max_per_lesion

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, size=(6, 7, 8)).astype(np.int32)
    ids[ids == 3] = 0  # lesion 3 absent: scipy's value for a missing label (0) is kept
    codes = rng.integers(0, 200, size=ids.shape).astype(np.uint8)
    got = _max_per_lesion(codes, ids, 4)
    assert got.shape == (4,)
    for k in (1, 2, 4):
        assert got[k - 1] == codes[ids == k].max()
    assert got[2] == 0
