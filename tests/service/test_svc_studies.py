"""Study upload, validation, object-level access, downloads, problem reports and comparison."""

from __future__ import annotations

import gzip
import io
import json
import logging
import zipfile
from urllib.parse import quote

import numpy as np
from sqlalchemy import select
from svc_fakes import dicom_zip_bytes, make_ct, upload, write_ct

from liverseg.io import read_volume, write_volume
from liverseg.service.db import AuditEvent, Job, ProblemReport, Study
from liverseg.utils import sha256_file

RAW = {"Content-Type": "application/octet-stream"}


def _post_raw(c, data: bytes, label: str = "x"):
    return c.post("/api/studies", content=data, headers={**RAW, "X-Study-Label": quote(label)})


def test_upload_is_stored_durably_and_queued(svc, ct_file):
    c = svc.client("alice")
    r = upload(c, ct_file, label="Liver follow-up")
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "queued" and body["label"] == "Liver follow-up" and body["owner"] == "alice"
    with svc.database.session() as s:
        study = s.get(Study, body["id"])
        job = s.scalar(select(Job).where(Job.study_id == study.id))
        stored = svc.config.data_dir.resolve() / "studies" / study.id / study.input_name
        assert stored.name == "input.nii.gz" and study.input_kind == "nifti"
        assert sha256_file(stored) == sha256_file(ct_file) == study.input_sha256
        assert job.status == "queued"
        assert [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "upload"))] == [
            "upload"
        ]
    listed = c.get("/api/studies").json()
    assert [s["id"] for s in listed] == [body["id"]]


def test_uncompressed_nifti_and_dicom_zip_are_accepted(svc, tmp_path):
    c = svc.client("alice")
    r = upload(c, write_ct(tmp_path / "a.nii"))
    assert r.status_code == 202 and r.json()["input_kind"] == "nifti"
    r = _post_raw(c, dicom_zip_bytes())
    assert r.status_code == 202, r.text
    assert r.json()["input_kind"] == "dicom"


def test_invalid_uploads_are_refused_before_queueing(svc, ct_file, tmp_path):
    c = svc.client("alice")
    cases = {
        "not a medical image": b"hello world" * 100,
        "empty": b"",
        "truncated nifti": gzip.compress(gzip.decompress(ct_file.read_bytes())[:5000]),
        "corrupt gzip": ct_file.read_bytes()[:3000],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "no dicom here")
    cases["zip without dicom"] = buf.getvalue()
    for name, data in cases.items():
        r = _post_raw(c, data)
        assert r.status_code == 422, (name, r.status_code, r.text)
        assert r.json()["detail"], name
    with svc.database.session() as s:
        assert s.scalars(select(Study)).all() == []
    assert list((svc.config.data_dir / "studies").iterdir()) == []


def test_zip_slip_and_zip_limits(svc):
    c = svc.client("alice")
    good = zipfile.ZipFile(io.BytesIO(dicom_zip_bytes()))
    first = good.read(good.namelist()[0])
    for evil in ("../evil.dcm", "/etc/evil.dcm", "a/../../evil.dcm", "C:\\evil.dcm", "a\\..\\..\\evil"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("ok/IM1", first)
            zf.writestr(evil, first)
        r = _post_raw(c, buf.getvalue())
        assert r.status_code == 422 and "absolute path or '..'" in r.json()["detail"], evil
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k in range(svc.config.limits.max_zip_files + 1):
            zf.writestr(f"IM{k}", first)
    r = _post_raw(c, buf.getvalue())
    assert r.status_code == 422 and "entries" in r.json()["detail"]
    buf = io.BytesIO()  # a zip bomb: small compressed, huge uncompressed
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IM1", first)
        zf.writestr("big", b"\0" * (svc.config.limits.max_uncompressed_bytes + 1))
    r = _post_raw(c, buf.getvalue())
    assert r.status_code == 422 and "uncompressed size" in r.json()["detail"]


def test_oversized_upload_is_refused(svc):
    c = svc.client("alice")
    big = b"\x1f\x8b" + b"\0" * (svc.config.limits.max_upload_bytes + 10)
    r = _post_raw(c, big)
    assert r.status_code == 413

    def chunks():  # no Content-Length: refused while streaming
        for _ in range(9):
            yield b"\0" * (1024 * 1024)

    r = c.post("/api/studies", content=chunks(), headers=RAW)
    assert r.status_code == 413
    assert list((svc.config.data_dir / "studies").iterdir()) == []


def test_nifti_voxel_limit(svc, tmp_path):
    import nibabel as nib

    c = svc.client("alice")
    hdr = nib.Nifti1Header()  # header promises 2000 x 2000 x 20 float64 = 640 MB > the 64 MiB limit
    hdr.set_data_shape((2000, 2000, 20))
    hdr.set_data_dtype(np.float64)
    hdr["vox_offset"] = 352
    path = tmp_path / "liar.nii"
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 1000)
    r = upload(c, path)
    assert r.status_code == 422 and "exceeds the limit" in r.json()["detail"]


def test_clinician_cannot_reach_another_clinicians_study(svc, done_study):
    bob, alice, admin = svc.client("bob"), svc.client("alice"), svc.client("admin")
    other = f"/api/studies/{done_study}"
    urls = [
        other,
        f"{other}/report",
        f"{other}/viewer",
        f"{other}/volumes/ct.nii",
        f"{other}/volumes/labels.nii",
        f"{other}/lesions/1/border",
        f"{other}/problems",
        f"{other}/files/labels.nii.gz",
        f"{other}/files/report.json",
        f"{other}/files/report.html",
        f"/studies/{done_study}",
    ]
    for url in urls:
        assert bob.get(url).status_code == 404, url
        assert alice.get(url).status_code == 200, url
        assert admin.get(url).status_code == 200, url
    assert bob.post(f"{other}/problems", data={"category": "other"}).status_code == 404
    assert bob.get("/api/studies").json() == []
    assert [s["id"] for s in admin.get("/api/studies").json()] == [done_study]
    # bob cannot use alice's study as his baseline either
    r = upload(bob, write_ct(svc.config.data_dir.parent / "b.nii.gz"))
    svc.run_jobs()
    assert bob.get(f"/api/studies/{r.json()['id']}/compare?baseline={done_study}").status_code == 404


def test_downloads_and_audit(svc, done_study):
    c = svc.client("alice")
    s = c.get(f"/api/studies/{done_study}").json()
    assert set(s["downloads"]) == {"labels.nii.gz", "report.json", "report.html"}
    r = c.get(f"/api/studies/{done_study}/files/labels.nii.gz")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    path = svc.config.data_dir / "dl.nii.gz"
    path.write_bytes(r.content)
    labels = read_volume(path, kind="label")
    assert labels.shape == (20, 48, 48) and set(np.unique(labels.array)) == {0, 1, 2}
    report = c.get(f"/api/studies/{done_study}/files/report.json").json()
    assert report == c.get(f"/api/studies/{done_study}/report").json()
    assert c.get(f"/api/studies/{done_study}/files/seg.dcm").status_code == 404  # NIfTI input: no DICOM-SEG
    assert c.get(f"/api/studies/{done_study}/files/..%2F..%2Fliverseg.db").status_code == 404
    with svc.database.session() as db:
        downloads = db.scalars(select(AuditEvent).where(AuditEvent.action == "download")).all()
        assert len(downloads) == 2 and all(e.user_name == "alice" for e in downloads)


def test_problem_report_with_validated_correction(svc, done_study, tmp_path):
    c = svc.client("alice")
    url = f"/api/studies/{done_study}/problems"
    assert c.post(url, data={"category": "bad"}).status_code == 422
    r = c.post(url, data={"category": "missed_tumor", "comment": "lesion in segment VII"})
    assert r.status_code == 201 and r.json()["status"] == "open" and not r.json()["has_correction"]
    image = make_ct()
    good = image.with_array(np.zeros(image.shape, np.uint8))
    write_volume(good, tmp_path / "fix.nii.gz")
    r = c.post(
        url,
        data={"category": "false_tumor"},
        files={"correction": ("fix.nii.gz", (tmp_path / "fix.nii.gz").read_bytes())},
    )
    assert r.status_code == 201, r.text
    assert r.json()["has_correction"]
    bad_values = image.with_array(np.full(image.shape, 3, np.uint8))
    write_volume(bad_values, tmp_path / "bad.nii.gz")
    r = c.post(
        url,
        data={"category": "other"},
        files={"correction": ("bad.nii.gz", (tmp_path / "bad.nii.gz").read_bytes())},
    )
    assert r.status_code == 422 and "3" in r.json()["detail"]
    shifted = make_ct(shape=(20, 48, 40))
    write_volume(shifted.with_array(np.zeros(shifted.shape, np.uint8)), tmp_path / "grid.nii.gz")
    r = c.post(
        url,
        data={"category": "other"},
        files={"correction": ("g.nii.gz", (tmp_path / "grid.nii.gz").read_bytes())},
    )
    assert r.status_code == 422 and "shape" in r.json()["detail"]
    listed = c.get(url).json()
    assert [p["category"] for p in listed] == ["missed_tumor", "false_tumor"]
    with svc.database.session() as s:
        assert len(s.scalars(select(ProblemReport)).all()) == 2  # refused ones left nothing behind
    assert sorted(p.name for p in (svc.config.data_dir / "corrections").iterdir()) == [
        f"{listed[1]['id']}.nii.gz"
    ]


def test_failed_job_is_reported(svc, ct_file):
    c = svc.client("alice")
    sid = upload(c, ct_file).json()["id"]
    assert svc.run_jobs("svc_fakes:failing_segmenter") == 1
    s = c.get(f"/api/studies/{sid}").json()
    assert s["status"] == "failed" and "internal error" in s["error"] and s["downloads"] == []
    assert c.get(f"/api/studies/{sid}/report").status_code == 409
    assert c.get(f"/api/studies/{sid}/viewer").status_code == 422


def _nifti(c, path, label: str, patient: str | None, date: str | None):
    headers = {**RAW, "X-Study-Label": quote(label)}
    if patient is not None:
        headers["X-Patient-Id"] = quote(patient)
    if date is not None:
        headers["X-Study-Date"] = date
    return c.post("/api/studies", content=path.read_bytes(), headers=headers)


def test_compare_follow_up_with_baseline(svc, tmp_path):
    c = svc.client("alice")
    base = _nifti(c, write_ct(tmp_path / "b.nii.gz"), "baseline", "PAT-1", "2025-01-10").json()["id"]
    fu = _nifti(
        c, write_ct(tmp_path / "fu.nii.gz", spacing=(2.5, 0.9, 0.9)), "follow-up", "PAT-1", "2025-04-02"
    ).json()["id"]
    svc.run_jobs()
    out = c.get(f"/api/studies/{fu}/compare", params={"baseline": base}).json()
    assert out["baseline_id"] == base and out["followup_id"] == fu
    assert (
        out["baseline_study"]["study_date"] == "2025-01-10" and out["followup_study"]["patient_id"] == "PAT-1"
    )
    rows = {m["measure"]: m for m in out["summary"]}
    assert rows["liver_volume_ml"]["label"] == "Liver volume" and rows["liver_volume_ml"]["unit"] == "ml"
    # same voxels, spacing 0.9 vs 0.8 in-plane: volumes scale by (0.9/0.8)^2
    assert np.isclose(
        rows["liver_volume_ml"]["followup"] / rows["liver_volume_ml"]["baseline"], (0.9 / 0.8) ** 2, rtol=1e-3
    )
    counts = rows["lesion_count"]
    assert counts["label"] == "Lesions" and counts["decimals"] == 0
    assert (counts["baseline"], counts["followup"], counts["change"]) == (2, 2, 0)
    assert all(isinstance(counts[k], int) for k in ("baseline", "followup", "change"))
    lesions = out["lesions"]
    assert len(lesions["matched"]) == 2 and lesions["new"] == []
    sod = lesions["sum_of_diameters"]  # the phantom's lesions are under 10 mm: no target lesion
    assert (
        sod["category"] is None and sod["reason"].startswith("no measurable") and "20 %" in sod["rules"]["PD"]
    )
    assert [les["id"] for les in out["followup_lesions"]] == [1, 2]


def test_compare_refuses_another_patient_a_later_baseline_and_unknown_identity(svc, tmp_path):
    c = svc.client("alice")
    ct = write_ct(tmp_path / "ct.nii.gz")
    ids = {
        "base": _nifti(c, ct, "base", "PAT-1", "2025-01-10"),
        "later": _nifti(c, ct, "later", "PAT-1", "2025-06-01"),
        "other": _nifti(c, ct, "other", "PAT-2", "2024-12-01"),
        "anonymous": _nifti(c, ct, "anonymous", None, "2024-12-01"),
        "undated": _nifti(c, ct, "undated", "PAT-1", None),
    }
    ids = {k: r.json()["id"] for k, r in ids.items()}
    svc.run_jobs()

    def refusal(follow: str, base: str) -> str:
        r = c.get(f"/api/studies/{ids[follow]}/compare", params={"baseline": ids[base]})
        assert r.status_code == 422, r.text
        return r.json()["detail"]

    assert c.get(f"/api/studies/{ids['later']}/compare", params={"baseline": ids["base"]}).status_code == 200
    assert "another patient (PAT-2, the follow-up is PAT-1)" in refusal("later", "other")
    assert "must be scanned before the follow-up" in refusal("base", "later")
    assert "no patient ID" in refusal("base", "anonymous")
    assert "no study date" in refusal("base", "undated")
    assert "another study" in refusal("base", "base")
    # the identity of a NIfTI study can be completed afterwards (audited); DICOM identity cannot
    r = c.patch(f"/api/studies/{ids['anonymous']}", json={"patient_id": "PAT-1", "label": "found"})
    assert r.status_code == 200 and r.json()["patient_id"] == "PAT-1" and r.json()["label"] == "found"
    assert (
        c.get(f"/api/studies/{ids['base']}/compare", params={"baseline": ids["anonymous"]}).status_code == 200
    )
    dicom = c.post("/api/studies", content=dicom_zip_bytes(), headers=RAW).json()["id"]
    assert c.patch(f"/api/studies/{dicom}", json={"patient_id": "X"}).status_code == 422


def test_logs_carry_no_patient_identifiers(svc, ct_file, caplog):
    caplog.set_level(logging.DEBUG)
    c = svc.client("alice")
    sid = _post_raw(c, dicom_zip_bytes(), label="Doe^John").json()["id"]
    upload(c, ct_file, label="Smith Jane 1970")
    svc.run_jobs()
    assert c.get(f"/api/studies/{sid}").json()["label"] == "Doe^John"
    text = json.dumps([r.getMessage() for r in caplog.records])
    assert sid in text
    for ident in ("Doe^John", "Smith Jane", "Test^Patient", "TP1"):
        assert ident not in text
