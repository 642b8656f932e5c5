"""Studies: upload (durable, validated, identity read, queued), list, detail, downloads, compare.

Problem reports live in :mod:`~liverseg.service.routes_problems`, delete / re-run / identity
edits in :mod:`~liverseg.service.routes_lifecycle`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from liverseg.io.dicom_series import read_series_identity
from liverseg.service.auth import audit
from liverseg.service.compare import check_follow_up, compare_study_reports
from liverseg.service.db import Job, Study, User, utcnow
from liverseg.service.deps import Auth, binary_body, client_ip, current_user, get_db, owned_study
from liverseg.service.identity import clean_text, parse_user_date, study_identity
from liverseg.service.jobs import enqueue, read_report
from liverseg.service.progress import describe, job_progress
from liverseg.service.storage import (
    StoredFile,
    fsync_dir,
    save_stream,
    sniff_kind,
    validate_dicom_zip,
    validate_nifti,
)

router = APIRouter(tags=["studies"])
log = logging.getLogger(__name__)

DOWNLOADS = {
    "labels.nii.gz": "application/gzip",
    "report.json": "application/json",
    "report.html": "text/html",
    "seg.dcm": "application/dicom",
    "sr.dcm": "application/dicom",
}
_INPUT_NAMES = {"nifti-gz": "input.nii.gz", "nifti": "input.nii", "zip": "input.zip"}


class StudyOut(BaseModel):
    id: str
    label: str
    owner: str | None = None
    input_kind: str
    status: str
    stage: str | None = None
    fraction: float | None = None
    error: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    liver_volume_ml: float | None = None
    tumor_volume_ml: float | None = None
    tumor_burden_percent: float | None = None
    lesion_count: int | None = None
    created_at: datetime
    finished_at: datetime | None = None
    downloads: list[str] = []
    patient_id: str | None = None
    accession_number: str | None = None
    study_date: _dt.date | None = None
    series_description: str | None = None
    deidentified: bool = False
    progress_label: str | None = None
    progress: float | None = None
    eta_s: float | None = None
    queue_position: int | None = None


def _latest_job(db: Session, study_id: str) -> Job | None:
    return db.scalar(select(Job).where(Job.study_id == study_id).order_by(Job.id.desc()).limit(1))


def study_out(db: Session, study: Study, storage: Any, owner: str | None = None) -> StudyOut:
    job = _latest_job(db, study.id)
    out_dir = storage.output_dir(study.id)
    downloads = [n for n in DOWNLOADS if study.status == "done" and (out_dir / n).exists()]
    return StudyOut(
        id=study.id,
        label=study.label,
        owner=owner,
        input_kind=study.input_kind,
        status=study.status,
        stage=job.stage if job else None,
        fraction=job.fraction if job else None,
        error=study.error,
        model_name=study.model_name,
        model_version=study.model_version,
        liver_volume_ml=study.liver_volume_ml,
        tumor_volume_ml=study.tumor_volume_ml,
        tumor_burden_percent=study.tumor_burden_percent,
        lesion_count=study.lesion_count,
        created_at=study.created_at,
        finished_at=study.finished_at,
        downloads=downloads,
        patient_id=study.patient_id,
        accession_number=study.accession_number,
        study_date=study.study_date,
        series_description=study.series_description,
        deidentified=bool(study.deidentified),
        **describe(job_progress(db, job, study.status)),
    )


@router.get("/api/studies", response_model=list[StudyOut])
def list_studies(
    request: Request,
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
    limit: int = Query(200, ge=1, le=1000),
) -> list[StudyOut]:
    """The user's studies, newest first (admins: everyone's, with the owner's name)."""
    q = (
        select(Study, User.name)
        .join(User, User.id == Study.owner_id)
        .order_by(Study.created_at.desc())
        .limit(limit)
    )
    if not auth.is_admin:
        q = q.where(Study.owner_id == auth.user.id)
    storage = request.app.state.storage
    return [study_out(db, st, storage, owner) for st, owner in db.execute(q).all()]


@router.post(
    "/api/studies",
    status_code=202,
    response_model=StudyOut,
    openapi_extra=binary_body("the raw file: a NIfTI (.nii / .nii.gz) or a zip of one DICOM series"),
    responses={
        413: {"description": "upload too large"},
        422: {"description": "not NIfTI/DICOM, or unsafe zip"},
    },
)
async def upload_study(
    request: Request,
    label: str = Header(
        "",
        alias="X-Study-Label",
        max_length=600,
        description="display name of the study, percent-encoded UTF-8 (a header, so it "
        "never appears in URLs or access logs)",
    ),
    patient_id: str = Header(
        "",
        alias="X-Patient-Id",
        max_length=600,
        description="patient ID, percent-encoded; used when the file has none (NIfTI)",
    ),
    study_date: str = Header(
        "",
        alias="X-Study-Date",
        max_length=40,
        description="study date YYYY-MM-DD; used when the file has none (NIfTI)",
    ),
    auth: Auth = Depends(current_user),
) -> JSONResponse:
    """Upload a CT; it is stored and fsynced, validated, its identity read (DICOM header, then the
    user's entries for what it lacks; pseudonymised under ``--deidentify``), then queued. 202.

    The body streams into ``incoming/<id>/`` (no database transaction is open meanwhile); the
    checks and the registration run in the threadpool, never on the event loop.
    """
    user_identity = {
        "patient_id": clean_text(patient_id, "patient ID"),
        "study_date": parse_user_date(study_date),
    }
    storage = request.app.state.storage
    study_id = uuid.uuid4().hex
    incoming = await run_in_threadpool(storage.incoming_dir, study_id)
    try:
        stored = await save_stream(
            request.stream(),
            incoming / "upload.bin",
            max_bytes=request.app.state.config.limits.max_upload_bytes,
        )
        out = await run_in_threadpool(_register_upload, request, auth, stored, study_id, label, user_identity)
    finally:
        await run_in_threadpool(shutil.rmtree, incoming, True)  # gone once published
    return JSONResponse(out, status_code=202)


def register_study(
    request: Request, auth: Auth, incoming: Path, study_id: str, *, action: str, detail: dict, **columns: Any
) -> dict[str, Any]:
    """Move the checked input folder ``incoming`` to ``studies/<study_id>`` and register the queued
    study (``columns``: its :class:`Study` columns besides id, owner, status and time), its job and
    the audit event ``action`` with ``detail`` in one short write transaction; the folder is
    removed again if that fails (never a study folder without its row). Returns the study as JSON.
    """
    storage, database = request.app.state.storage, request.app.state.database
    folder = storage.publish(incoming, study_id)
    try:
        with database.session() as s:
            study = Study(id=study_id, owner_id=auth.user.id, status="queued", created_at=utcnow(), **columns)
            s.add(study)
            s.flush()
            enqueue(s, study)
            audit(s, action, user=auth.user, target=f"study:{study_id}", ip=client_ip(request), detail=detail)
            s.flush()
            return study_out(s, study, storage, auth.user.name).model_dump(mode="json")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _register_upload(
    request: Request, auth: Auth, stored: StoredFile, study_id: str, label: str, user_identity: dict[str, Any]
) -> dict:
    """Identify and validate an upload, read its identity, move it to ``studies/<id>`` and
    register the study and its job in one short write transaction (the folder is removed again
    if that fails)."""
    cfg = request.app.state.config
    incoming = stored.path.parent
    with open(stored.path, "rb") as fh:
        kind = sniff_kind(fh.read(544))
    final = incoming / _INPUT_NAMES[kind]
    os.replace(stored.path, final)
    fsync_dir(incoming)
    (validate_dicom_zip if kind == "zip" else validate_nifti)(final, cfg.limits)
    from_dicom = read_series_identity(final) if kind == "zip" else None
    identity = study_identity(from_dicom, user_identity, cfg)
    input_kind = "dicom" if kind == "zip" else "nifti"
    out = register_study(
        request,
        auth,
        incoming,
        study_id,
        action="upload",
        detail={"bytes": stored.size, "kind": input_kind},
        label=(unquote(label).strip() or f"study {study_id[:8]}")[:200],
        input_kind=input_kind,
        input_name=final.name,
        input_sha256=stored.sha256,
        input_bytes=stored.size,
        **identity,
    )
    log.info("study %s uploaded (%d bytes) and queued", study_id, stored.size)
    return out


@router.get("/api/studies/{study_id}", response_model=StudyOut)
def get_study(
    request: Request, study: Study = Depends(owned_study), db: Session = Depends(get_db)
) -> StudyOut:
    """One study with its job progress."""
    owner = db.get(User, study.owner_id)
    return study_out(db, study, request.app.state.storage, owner.name if owner else None)


@router.get("/api/studies/{study_id}/report")
def get_report(request: Request, study: Study = Depends(owned_study)) -> dict[str, Any]:
    """The report JSON of a finished study (docs/contracts.md "Reporting")."""
    report = read_report(request.app.state.storage, study.id)
    if report is None:
        raise HTTPException(
            status_code=409, detail=f"study {study.id} has no report yet (status {study.status})"
        )
    return report


@router.get(
    "/api/studies/{study_id}/files/{name}",
    response_class=FileResponse,
    responses={200: {"content": {k: {} for k in DOWNLOADS.values()}}},
)
def download(
    name: str,
    request: Request,
    study: Study = Depends(owned_study),
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
) -> FileResponse:
    """Download a result: labels.nii.gz, report.json, report.html, or for DICOM input seg.dcm (DICOM-SEG)
    and sr.dcm (TID 1500 structured report)."""
    if name not in DOWNLOADS:
        raise HTTPException(
            status_code=404, detail=f"file must be one of {', '.join(DOWNLOADS)}, got {name!r}"
        )
    path = request.app.state.storage.output_dir(study.id) / name
    if study.status != "done" or not path.exists():
        raise HTTPException(status_code=404, detail=f"study {study.id} has no {name}")
    audit(
        db,
        "download",
        user=auth.user,
        target=f"study:{study.id}",
        ip=client_ip(request),
        detail={"file": name},
    )
    db.commit()
    return FileResponse(
        path, media_type=DOWNLOADS[name], filename=f"{study.id}_{name}", content_disposition_type="attachment"
    )


@router.get("/api/studies/{study_id}/compare")
def compare(
    request: Request,
    baseline: str = Query(..., max_length=32, description="id of an earlier study of the same patient"),
    study: Study = Depends(owned_study),
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
) -> dict[str, Any]:
    """Follow-up comparison of this study against an earlier study of the same patient.

    Refused (422, with the reason) for the same study, another patient, an unknown patient or
    date, or a baseline that is not earlier; 409 until both are finished.
    """
    base = owned_study(baseline, auth, db, request)
    check_follow_up(base, study)
    storage = request.app.state.storage
    base_report, follow_report = read_report(storage, base.id), read_report(storage, study.id)
    if base_report is None or follow_report is None:
        raise HTTPException(status_code=409, detail="both studies must be finished to compare them")
    out = compare_study_reports(base_report, follow_report, baseline_id=base.id, followup_id=study.id)
    out["baseline_study"] = {"id": base.id, **base.identity()}
    out["followup_study"] = {"id": study.id, **study.identity()}
    return out
