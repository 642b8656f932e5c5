"""Study lifecycle routes: delete, re-run on the active model, edit the identity of a NIfTI study."""

from __future__ import annotations

import datetime as _dt

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.service.auth import audit
from liverseg.service.db import Study, User, write_lock
from liverseg.service.deps import Auth, client_ip, current_user, get_db, owned_study
from liverseg.service.identity import pseudonym, service_key
from liverseg.service.lifecycle import StudyBusyError, delete_study_rows, remove_study_files, rerun_study
from liverseg.service.routes_studies import StudyOut, study_out

router = APIRouter(tags=["studies"])
_BUSY = {409: {"description": "the study's job is queued or running"}}


@router.delete("/api/studies/{study_id}", status_code=204, response_class=Response, responses=_BUSY)
def delete_study(
    request: Request,
    study: Study = Depends(owned_study),
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
) -> Response:
    """Delete a study (owner or admin): its files, its jobs and problem reports (with their
    corrected label maps); audited. 409 while its job is running."""
    write_lock(db)  # the job's state is read, then rows are deleted: one write transaction
    study = db.merge(study)
    try:
        deleted = delete_study_rows(db, study, user=auth.user, ip=client_ip(request), reason="user request")
    except StudyBusyError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    db.commit()
    remove_study_files(request.app.state.storage, deleted)
    request.app.state.viewer_cache.forget(deleted.study_id)
    return Response(status_code=204)


@router.post("/api/studies/{study_id}/rerun", status_code=202, response_model=StudyOut, responses=_BUSY)
def rerun(
    request: Request,
    study: Study = Depends(owned_study),
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
) -> StudyOut:
    """Segment the study again with the active model (its results are replaced when done)."""
    write_lock(db)
    study = db.merge(study)
    db.refresh(study)  # its status as of this write transaction
    try:
        rerun_study(db, study, user=auth.user, ip=client_ip(request))
    except StudyBusyError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    db.commit()
    owner = db.get(User, study.owner_id)
    return study_out(db, study, request.app.state.storage, owner.name if owner else None)


class IdentityEdit(BaseModel):
    label: str | None = Field(None, max_length=200, description="study name")
    patient_id: str | None = Field(None, max_length=128, description="NIfTI studies only")
    study_date: _dt.date | None = Field(None, description="YYYY-MM-DD, NIfTI studies only")


@router.patch("/api/studies/{study_id}", response_model=StudyOut)
def edit_identity(
    body: IdentityEdit,
    request: Request,
    study: Study = Depends(owned_study),
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
) -> StudyOut:
    """Rename a study, or give a NIfTI study the patient ID / study date its file cannot carry
    (a DICOM study's identity comes from its header and is not editable). Reports written
    before the edit keep the identity they were written with until the study is re-run."""
    cfg = request.app.state.config
    write_lock(db)
    study = db.merge(study)
    changed = []
    if body.label is not None and body.label.strip():
        study.label = body.label.strip()[:200]
        changed.append("label")
    for field in ("patient_id", "study_date"):
        value = getattr(body, field)
        if value is None:
            continue
        if study.input_kind != "nifti":
            raise InputError(f"the {field.replace('_', ' ')} of a DICOM study comes from its header")
        if field == "patient_id":
            value = value.strip() or None
            if value and cfg.deidentify:
                value = pseudonym(service_key(cfg.data_dir), value)
                study.deidentified = True
        setattr(study, field, value)
        changed.append(field)
    audit(
        db,
        "study_edit",
        user=auth.user,
        target=f"study:{study.id}",
        ip=client_ip(request),
        detail={"fields": changed},
    )
    db.commit()
    owner = db.get(User, study.owner_id)
    return study_out(db, study, request.app.state.storage, owner.name if owner else None)
