"""The web app's PACS import (search, import one CT series, queue) and the SR download.

Against the real Orthanc of the tests (``orthanc`` fixture); the import test runs the real
pipeline in the job (``run_job_segmentation`` with the shipped model on a 24-slice slab).
"""

from __future__ import annotations

import highdicom as hd
import pydicom
import pytest
from sqlalchemy import select

from _helpers_dicom import dciodvfy_errors, sample_slab
from _helpers_orthanc import push_study
from liverseg.pacs import PacsConfig
from liverseg.service.db import AuditEvent, Study

REAL = "liverseg.service.jobs:run_job_segmentation"


def test_pacs_routes_without_a_configured_pacs(svc):
    c = svc.client("alice")
    assert c.get("/api/pacs").json() == {"configured": False, "server": None}
    assert c.get("/api/pacs/studies").status_code == 409
    r = c.post("/api/pacs/import", json={"study_instance_uid": "1.2.3"})
    assert r.status_code == 409 and "--pacs-url" in r.json()["detail"]
    assert "Import from the PACS" not in c.get("/").text
    assert svc.client().get("/api/pacs").status_code == 401
    assert svc.client("alice").post("/api/pacs/import", json={"study_instance_uid": "x"}).status_code == 422


@pytest.fixture
def pacs_svc(sqlite_service, orthanc):
    return sqlite_service(
        pacs=PacsConfig(orthanc.dicomweb, orthanc.username, orthanc.password, timeout_s=120)
    )


def test_import_a_study_from_the_pacs_then_download_seg_and_sr(pacs_svc, orthanc, tmp_path):
    st = push_study(orthanc, sample_slab(), tmp_path)
    c = pacs_svc.client("alice")
    assert c.get("/api/pacs").json()["configured"] is True
    assert "Import from the PACS" in c.get("/").text
    (found,) = c.get("/api/pacs/studies", params={"patient_id": st["patient"]}).json()
    assert found["StudyInstanceUID"] == st["study"]
    r = c.post("/api/pacs/import", json={"study_instance_uid": st["study"]})
    assert r.status_code == 202, r.text
    study = r.json()
    assert (
        study["input_kind"] == "dicom"
        and study["status"] == "queued"
        and study["label"].startswith("PACS series 3")
    )
    assert pacs_svc.run_jobs(segmenter=REAL) == 1
    done = c.get(f"/api/studies/{study['id']}").json()
    assert done["status"] == "done", done
    assert {"seg.dcm", "sr.dcm"} <= set(done["downloads"])
    seg_path, sr_path = tmp_path / "seg.dcm", tmp_path / "sr.dcm"
    seg_path.write_bytes(c.get(f"/api/studies/{study['id']}/files/seg.dcm").content)
    sr_response = c.get(f"/api/studies/{study['id']}/files/sr.dcm")
    assert sr_response.headers["content-type"] == "application/dicom"
    sr_path.write_bytes(sr_response.content)
    seg = pydicom.dcmread(seg_path)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == st["ct_series"]
    assert sr.StudyInstanceUID == st["study"]
    for group in sr.content.get_volumetric_roi_measurement_groups():
        assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert dciodvfy_errors(seg_path) == []
    assert dciodvfy_errors(sr_path) == []
    with pacs_svc.database.session() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent)).all()]
        details = [str(e.detail) for e in db.scalars(select(AuditEvent)).all()]
    assert {"pacs_search", "pacs_import"} <= set(actions)
    assert not any(st["patient"] in d for d in details)  # no patient identifiers in the audit log


def test_import_of_a_study_without_a_ct_stack_is_refused(pacs_svc, orthanc, tmp_path):
    st = push_study(orthanc, sample_slab(), tmp_path, ct=False)  # localizers and a dose report only
    c = pacs_svc.client("alice")
    r = c.post("/api/pacs/import", json={"study_instance_uid": st["study"]})
    assert r.status_code == 422 and "localizer" in r.json()["detail"]
    with pacs_svc.database.session() as db:
        assert db.scalars(select(Study)).all() == []
    assert not any((pacs_svc.config.data_dir / "studies").iterdir())


def test_an_unreachable_pacs_is_a_bad_gateway(sqlite_service):
    service = sqlite_service(pacs=PacsConfig("http://127.0.0.1:9/dicom-web", timeout_s=2))  # nothing listens
    r = service.client("alice").get("/api/pacs/studies", params={"patient_id": "PID-12345"})
    assert r.status_code == 502 and "QIDO-RS study search failed" in r.json()["detail"]
    assert "PID-12345" not in r.json()["detail"]  # search values stay out of error messages
