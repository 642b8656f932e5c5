"""Study identity: from the DICOM header or the user's entries, in the API, the viewer and the
report; the de-identification option; patients in exported corrections; the schema upgrade that
added the columns; readable error messages."""

from __future__ import annotations

import json
import os
import stat
from urllib.parse import quote

import numpy as np
from sqlalchemy import select
from svc_fakes import dicom_zip_bytes, make_ct, write_ct

from liverseg.errors import InputError
from liverseg.service.db import Study
from liverseg.service.errors import public_message

RAW = {"Content-Type": "application/octet-stream"}


def test_dicom_identity_is_read_and_user_entries_only_fill_gaps(svc):
    c = svc.client("alice")
    data = dicom_zip_bytes(volume=make_ct(), patient_id="P9", study_date="20240301", accession="A77")
    r = c.post(
        "/api/studies", content=data, headers={**RAW, "X-Patient-Id": "typed", "X-Study-Date": "2020-01-01"}
    )
    s = r.json()
    assert (s["patient_id"], s["accession_number"], s["study_date"], s["series_description"]) == (
        "P9", "A77", "2024-03-01", "Abdomen venous 2.0",
    )  # fmt: skip
    undated = dicom_zip_bytes(patient_id="P9", study_date="")
    s = c.post("/api/studies", content=undated, headers={**RAW, "X-Study-Date": "2024-05-02"}).json()
    assert s["study_date"] == "2024-05-02" and s["patient_id"] == "P9"
    svc.run_jobs()
    report = c.get(f"/api/studies/{r.json()['id']}/report").json()
    assert (
        report["input"]["identity"]["patient_id"] == "P9"
        and report["input"]["identity"]["accession_number"] == "A77"
    )
    info = c.get(f"/api/studies/{r.json()['id']}/viewer").json()
    assert info["identity"]["study_date"] == "2024-03-01"


def test_nifti_identity_comes_from_the_user(svc, ct_file):
    c = svc.client("alice")
    headers = {
        **RAW,
        "X-Study-Label": quote("Leber Kontrolle"),
        "X-Patient-Id": quote("PAT 12/ä"),
        "X-Study-Date": "2025-02-03",
    }
    s = c.post("/api/studies", content=ct_file.read_bytes(), headers=headers).json()
    assert (s["label"], s["patient_id"], s["study_date"], s["accession_number"]) == (
        "Leber Kontrolle",
        "PAT 12/ä",
        "2025-02-03",
        None,
    )
    bad = c.post("/api/studies", content=ct_file.read_bytes(), headers={**RAW, "X-Study-Date": "03.02.2025"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["detail"]
    assert len(c.get("/api/studies").json()) == 1


def test_deidentify_stores_pseudonyms_only(tmp_path, db_url):
    from conftest import make_service

    svc = make_service(tmp_path, db_url, deidentify=True)
    try:
        c = svc.client("alice")
        ids = []
        for date in ("20240301", "20240601"):
            data = dicom_zip_bytes(
                volume=make_ct(), patient_id="REAL-ID-4711", study_date=date, accession="ACC-REAL"
            )
            ids.append(c.post("/api/studies", content=data, headers=RAW).json()["id"])
        svc.run_jobs()
        studies = {s["id"]: s for s in c.get("/api/studies").json()}
        first, second = (studies[i] for i in ids)
        assert first["patient_id"].startswith("anon-") and first["patient_id"] == second["patient_id"]
        assert first["accession_number"].startswith("anon-") and first["deidentified"] is True
        assert c.get(f"/api/studies/{ids[1]}/compare", params={"baseline": ids[0]}).status_code == 200
        report_text = (svc.config.data_dir / "studies" / ids[0] / "output" / "report.json").read_text()
        assert "REAL-ID-4711" not in report_text and "ACC-REAL" not in report_text
        assert json.loads(report_text)["input"]["identity"]["deidentified"] is True
        with svc.database.session() as s:
            assert "REAL-ID" not in json.dumps([st.identity() for st in s.scalars(select(Study))])
        key = svc.config.data_dir / "secret.key"
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and len(key.read_bytes()) == 32
    finally:
        svc.database.dispose()


def test_exported_corrections_keep_a_patients_studies_together(svc, tmp_path):
    from liverseg.data.dataset import load_dataset
    from liverseg.io import write_volume
    from liverseg.service.export import export_corrections

    alice, admin = svc.client("alice"), svc.client("admin")
    image = make_ct()
    write_volume(image.with_array(np.zeros(image.shape, np.uint8)), tmp_path / "fix.nii.gz")
    ct = write_ct(tmp_path / "ct.nii.gz")
    for date in ("2025-01-01", "2025-03-01"):
        sid = alice.post(
            "/api/studies",
            content=ct.read_bytes(),
            headers={**RAW, "X-Patient-Id": "PX-1", "X-Study-Date": date},
        ).json()["id"]
        svc.run_jobs()
        pid = alice.post(
            f"/api/studies/{sid}/problems", data={"category": "other"},
            files={"correction": ("fix.nii.gz", (tmp_path / "fix.nii.gz").read_bytes())},
        ).json()["id"]  # fmt: skip
        admin.patch(f"/api/admin/problems/{pid}", json={"status": "confirmed"})
    export_corrections(svc.database, svc.config.data_dir, tmp_path / "out")
    patients = {case.patient_id for case in load_dataset(tmp_path / "out").cases}
    assert len(patients) == 1 and "PX-1" not in next(iter(patients))


def test_error_messages_name_files_not_server_paths(tmp_path):
    exc = InputError("cannot read the checkpoint", tmp_path / "models" / "x.pt")
    assert public_message(str(exc)) == "x.pt: cannot read the checkpoint"
    other = InputError(f"_pickle.UnpicklingError: bad file {tmp_path}/studies/abc/input.zip")
    msg = public_message(str(other))
    assert "input.zip" in msg and str(tmp_path) not in msg and "Unpickling" not in msg


def test_upload_page_asks_for_the_identity(svc):
    html = svc.client("alice").get("/").text
    assert 'id="upload-patient"' in html and 'id="upload-date"' in html and 'data-admin="no"' in html
    assert 'data-admin="yes"' in svc.client("admin").get("/").text
