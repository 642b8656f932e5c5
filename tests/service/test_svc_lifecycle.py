"""Study lifecycle (delete, retention, re-run), the progress bar's stages and time left, and
corrections painted in the viewer."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import nibabel as nib
import numpy as np
from sqlalchemy import select, update
from svc_fakes import fake_labels, make_ct, upload

from liverseg.io import read_volume
from liverseg.service.db import AuditEvent, Job, ModelVersion, ProblemReport, Study, utcnow
from liverseg.service.lifecycle import purge_expired
from liverseg.service.progress import STAGES, job_progress
from liverseg.service.storage import Storage


def _actions(svc, action: str) -> list[AuditEvent]:
    with svc.database.session() as s:
        return s.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_delete_removes_files_rows_and_corrections_and_is_audited(svc, done_study, tmp_path):
    alice, bob, admin = svc.client("alice"), svc.client("bob"), svc.client("admin")
    folder = svc.config.data_dir / "studies" / done_study
    assert alice.post(f"/api/studies/{done_study}/problems", data={"category": "other"}).status_code == 201
    pid = _paint(alice, done_study, svc).json()["id"]
    correction = svc.config.data_dir / "corrections" / f"{pid}.painted.nii.gz"
    assert folder.exists() and correction.exists()
    assert bob.delete(f"/api/studies/{done_study}").status_code == 404  # not his
    r = alice.delete(f"/api/studies/{done_study}")
    assert r.status_code == 204
    assert not folder.exists() and not correction.exists()
    assert alice.get(f"/api/studies/{done_study}").status_code == 404
    with svc.database.session() as s:
        assert s.scalars(select(Job)).all() == [] and s.scalars(select(ProblemReport)).all() == []
    (event,) = _actions(svc, "study_delete")
    assert event.user_name == "alice" and event.target == f"study:{done_study}"
    assert event.detail == {"reason": "user request", "problem_reports": 2, "corrections": 1}
    # an admin may delete anyone's study
    sid = upload(alice, tmp_path / "ct.nii.gz").json()["id"]
    assert admin.delete(f"/api/studies/{sid}").status_code == 204  # a queued study: its job goes too
    with svc.database.session() as s:
        assert s.scalars(select(Study)).all() == [] and s.scalars(select(Job)).all() == []


def test_a_running_study_cannot_be_deleted(svc, ct_file):
    alice = svc.client("alice")
    sid = upload(alice, ct_file).json()["id"]
    with svc.database.session() as s:
        s.execute(
            update(Job).values(
                status="running", lease_owner="w", lease_expires_at=utcnow() + timedelta(seconds=60)
            )
        )
    r = alice.delete(f"/api/studies/{sid}")
    assert r.status_code == 409 and "being segmented" in r.json()["detail"]
    with svc.database.session() as s:  # a dead worker's expired lease does not block it
        s.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert alice.delete(f"/api/studies/{sid}").status_code == 204


def test_retention_purges_old_studies_only(svc, ct_file):
    alice = svc.client("alice")
    old, new = (upload(alice, ct_file).json()["id"] for _ in range(2))
    svc.run_jobs()
    with svc.database.session() as s:
        s.get(Study, old).created_at = utcnow() - timedelta(days=40)
    assert purge_expired(svc.database, Storage(svc.config.data_dir), retention_days=30) == 1
    ids = [st["id"] for st in alice.get("/api/studies").json()]
    assert ids == [new] and not (svc.config.data_dir / "studies" / old).exists()
    (event,) = _actions(svc, "study_delete")
    assert event.user_name == "system" and event.detail["reason"] == "retention: older than 30 days"


def test_rerun_uses_the_active_model_and_replaces_the_results(svc, done_study):
    alice = svc.client("alice")
    assert alice.post(f"/api/studies/{done_study}/rerun").status_code == 409  # no active model
    with svc.database.session() as s:
        s.add(
            ModelVersion(
                name="m2",
                version="2.0",
                source="shipped",
                path="m2",
                status="active",
                info={"kind": "cascade"},
            )
        )
    r = alice.post(f"/api/studies/{done_study}/rerun")
    assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["model_name"] == "m2"
    assert alice.post(f"/api/studies/{done_study}/rerun").status_code == 409  # already queued
    viewer_json = svc.config.data_dir / "studies" / done_study / "output" / "viewer" / "viewer.json"
    before = viewer_json.stat().st_mtime_ns
    assert svc.run_jobs() == 1
    s = alice.get(f"/api/studies/{done_study}").json()
    assert s["status"] == "done" and s["model_version"] == "2.0" and viewer_json.stat().st_mtime_ns > before
    assert alice.get(f"/api/studies/{done_study}/report").json()["model"]["ref"] == "m2"
    assert alice.get(f"/api/studies/{done_study}/viewer").status_code == 200  # the reloaded cache
    (event,) = _actions(svc, "study_rerun")
    assert event.detail["model"] == {"name": "m2", "version": "2.0"}


def test_progress_is_one_bar_with_plain_stage_names_and_time_left(svc, ct_file):
    alice = svc.client("alice")
    first = upload(alice, ct_file).json()
    second = upload(alice, ct_file).json()
    assert first["progress_label"] == "waiting in the queue" and first["eta_s"] is None  # no history yet
    assert second["queue_position"] == 1
    svc.run_jobs()
    done = alice.get(f"/api/studies/{first['id']}").json()
    assert (done["progress_label"], done["progress"]) == ("done", 1.0)
    # a job half-way through stage 2 of the cascade, started 30 s ago
    sid = upload(alice, ct_file).json()["id"]
    with svc.database.session() as s:
        s.execute(
            update(Job)
            .where(Job.study_id == sid)
            .values(
                status="running", stage="stage2", fraction=0.5, started_at=utcnow() - timedelta(seconds=30)
            )
        )
        job = s.scalar(select(Job).where(Job.study_id == sid))
        p = job_progress(s, job, "running")
    assert p.label == "segmenting liver and tumors" and p.fraction == 0.55
    assert abs(p.eta_s - 30 * 0.45 / 0.55) < 1.0  # extrapolated from the elapsed time
    queued = alice.get(f"/api/studies/{sid}").json()
    assert queued["progress_label"] == "segmenting liver and tumors"
    # every stage the pipeline reports has a plain name and a span inside [0, 1]
    assert all(lo <= hi <= 1.0 and label and "_" not in label for label, lo, hi in STAGES.values())


def _paint(client, sid: str, svc, change=None, compress=True):
    """Post a painted correction: the study's labels in the viewer's RAS byte order, modified."""
    folder = svc.config.data_dir / "studies" / sid / "output" / "viewer"
    ras = np.asarray(nib.load(folder / "labels.nii.gz").dataobj).transpose(2, 1, 0).copy()
    if change is not None:
        change(ras)
    data = ras.tobytes()
    return client.post(
        f"/api/studies/{sid}/problems",
        data={"category": "missed_tumor", "comment": "painted"},
        files={"painted": ("painted.gz", gzip.compress(data) if compress else data)},
    )


def test_a_painted_correction_lands_on_the_input_grid_and_is_exported(svc, tmp_path):
    alice, admin = svc.client("alice"), svc.client("admin")
    image = make_ct(direction=np.diag([-1.0, 1.0, -1.0]))  # stored flipped: the mapping must undo it
    from liverseg.io import write_volume

    write_volume(image, tmp_path / "flipped.nii.gz")
    sid = upload(alice, tmp_path / "flipped.nii.gz").json()["id"]
    svc.run_jobs()

    def add_tumor(ras):
        ras[2, 5:9, 5:9] = 2  # canonical slice 2 (inferior), RAS rows 5-8 (posterior), columns 5-8 (left)

    r = _paint(alice, sid, svc, add_tumor)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["has_correction"] and p["correction_source"] == "painted"
    corrected = read_volume(svc.config.data_dir / "corrections" / f"{p['id']}.painted.nii.gz", kind="label")
    assert corrected.same_grid(image)
    expected = fake_labels(image.array)
    nz, ny, _ = expected.shape
    # RAS (k, j, i) -> canonical (k, ny-1-j, nx-1-i) -> input: z and x flipped back
    expected[nz - 1 - 2, ny - 9 : ny - 5, 5:9] = 2
    assert np.array_equal(corrected.array, expected)
    # refusals: wrong size, labels outside 0..2, not gzip; none leaves a file behind
    bad = [
        _paint(alice, sid, svc, lambda ras: ras.__setitem__((0, 0, 0), 7)),
        alice.post(
            f"/api/studies/{sid}/problems",
            data={"category": "other"},
            files={"painted": ("p.gz", gzip.compress(b"\0" * 10))},
        ),
        _paint(alice, sid, svc, compress=False),
    ]
    assert [b.status_code for b in bad] == [422, 422, 422]
    detail = bad[0].json()["detail"]
    assert (
        "painted labels: expected a label map with values in {0 (background), 1 (liver), 2 (tumor)}" in detail
    )
    assert ", 7}" in detail and "voxels" in bad[1].json()["detail"]
    assert "gzip" in bad[2].json()["detail"]
    assert sorted(f.name for f in (svc.config.data_dir / "corrections").iterdir()) == [
        f"{p['id']}.painted.nii.gz"
    ]
    # confirmed, it is exported for retraining like an uploaded one
    assert admin.patch(f"/api/admin/problems/{p['id']}", json={"status": "confirmed"}).status_code == 200
    from liverseg.data.dataset import load_dataset
    from liverseg.service.export import export_corrections

    export_corrections(svc.database, svc.config.data_dir, tmp_path / "export")
    ds = load_dataset(tmp_path / "export")
    _, lab = ds.load_case(ds.cases[0].id)
    assert np.array_equal(lab.array, expected)
    queue = admin.get("/api/admin/problems").json()
    assert queue[0]["category_label"] == "Missed tumor" and queue[0]["study_label"] == "case"
    assert json.loads((tmp_path / "export" / "dataset.json").read_text())["cases"][0][
        "patient_id"
    ].startswith("study_")
