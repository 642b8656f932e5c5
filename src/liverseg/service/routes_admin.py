"""Administrator API: model registry, monitoring, problem-report triage, audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.service import registry
from liverseg.service.auth import audit
from liverseg.service.db import PROBLEM_STATES, AuditEvent, ModelVersion, ProblemReport, utcnow
from liverseg.service.deps import Auth, IdPath, binary_body, client_ip, get_db, require_admin
from liverseg.service.gate import run_gate_subprocess
from liverseg.service.jobs import load_segmenter
from liverseg.service.monitoring import monitoring_stats
from liverseg.service.routes_problems import ProblemOut, problem_out
from liverseg.service.storage import save_stream

router = APIRouter(prefix="/api/admin", tags=["admin"])


class ModelOut(BaseModel):
    id: int
    name: str
    version: str
    source: str
    status: str
    kind: str | None = None
    card: str
    metrics: dict[str, Any]
    gate: dict[str, Any] | None = None
    activation_problems: list[str] = []
    created_at: datetime


def _model_out(m: ModelVersion) -> ModelOut:
    info = m.info or {}
    return ModelOut(
        id=m.id,
        name=m.name,
        version=m.version,
        source=m.source,
        status=m.status,
        kind=info.get("kind"),
        card=m.card,
        metrics=m.metrics or {},
        gate=info.get("gate"),
        activation_problems=[] if m.status == "active" else registry.activation_problems(m),
        created_at=m.created_at,
    )


@router.get("/models", response_model=list[ModelOut])
def list_models(_: Auth = Depends(require_admin), db: Session = Depends(get_db)) -> list[ModelOut]:
    """Every model: version, model card, validation metrics and status."""
    return [_model_out(m) for m in db.scalars(select(ModelVersion).order_by(ModelVersion.id))]


@router.post(
    "/models",
    status_code=201,
    response_model=ModelOut,
    openapi_extra=binary_body(
        "a zip of a model folder (model.json, stage1.pt, stage2.pt, model card) or a one-stage "
        "checkpoint .pt written by liverseg train"
    ),
)
async def register_model(
    request: Request,
    name: str | None = Query(None, max_length=128),
    auth: Auth = Depends(require_admin),
    db: Session = Depends(get_db),
) -> ModelOut:
    """Register a model as a candidate (see :mod:`liverseg.service.registry` for what is accepted)."""
    storage, cfg = request.app.state.storage, request.app.state.config
    tmp = storage.root / "models" / f"upload-{uuid.uuid4().hex}.bin"
    stored = await save_stream(request.stream(), tmp, max_bytes=cfg.limits.max_label_bytes)

    def register() -> ModelOut:  # in the threadpool: database work and the checks of the files
        try:
            row = registry.register_upload(db, storage, stored.path, stored.sha256, name=name)
        except BaseException:
            db.rollback()
            raise
        audit(
            db,
            "model_register",
            user=auth.user,
            target=f"model:{row.id}",
            ip=client_ip(request),
            detail={"name": row.name, "version": row.version, "sha256": stored.sha256},
        )
        db.commit()
        return _model_out(row)

    try:
        return await run_in_threadpool(register)
    finally:
        await run_in_threadpool(tmp.unlink, missing_ok=True)


class StatusBody(BaseModel):
    status: str = Field(description="candidate, active or retired")
    reason: str = Field("", max_length=2000, description="why (required to activate; audited)")
    confirm: bool = Field(False, description="must be true to activate: every new job will use the model")


@router.post("/models/{model_id}/status", response_model=ModelOut)
def set_model_status(
    model_id: IdPath,
    body: StatusBody,
    request: Request,
    auth: Auth = Depends(require_admin),
    db: Session = Depends(get_db),
) -> ModelOut:
    """Change a model's status; ``active`` makes it the one model used for new jobs and needs
    ``confirm: true``, a ``reason`` (recorded in the audit log) and a model that passes
    :func:`liverseg.service.registry.activation_problems`."""
    reason = body.reason.strip()
    if body.status == "active" and (not body.confirm or len(reason) < 3):
        raise InputError(
            "activating a model changes the model of every new job: confirm it and give the reason "
            "(at least 3 characters; it is recorded in the audit log)"
        )
    row = registry.set_status(db, model_id, body.status)
    audit(
        db,
        "model_status",
        user=auth.user,
        target=f"model:{model_id}",
        ip=client_ip(request),
        detail={"status": body.status, "name": row.name, "version": row.version, "reason": reason},
    )
    return _model_out(row)


@router.post("/models/{model_id}/gate", response_model=ModelOut)
async def run_model_gate(
    model_id: IdPath, request: Request, auth: Auth = Depends(require_admin), db: Session = Depends(get_db)
) -> ModelOut:
    """Run the validation gate (:mod:`liverseg.service.gate`) on a model; the result is stored
    with the model and audited. Takes as long as one segmentation of the bundled sample, during
    which no database transaction is open; database work runs in the threadpool."""

    def model() -> tuple[str, str, str]:
        row = db.get(ModelVersion, model_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no model with id {model_id}")
        db.commit()
        return row.path, row.name, row.version

    model_ref, name, version = await run_in_threadpool(model)
    cfg, storage = request.app.state.config, request.app.state.storage
    started = utcnow()
    if cfg.gate is not None:
        result = await run_in_threadpool(load_segmenter(cfg.gate), model_ref, storage.root / "gate")
    else:
        result = await run_gate_subprocess(model_ref, storage.root / "gate")
    result = {**result, "ran_at": started.isoformat(timespec="seconds")}

    def save() -> ModelOut:
        row = db.get(ModelVersion, model_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"model {model_id} was removed meanwhile")
        row.info = {**(row.info or {}), "gate": result}
        audit(
            db,
            "model_gate",
            user=auth.user,
            target=f"model:{model_id}",
            ip=client_ip(request),
            detail={"name": name, "version": version, "passed": bool(result.get("passed")),
                    "liver_dice": result.get("liver_dice")},
        )  # fmt: skip
        db.commit()
        return _model_out(row)

    return await run_in_threadpool(save)


@router.get("/monitoring")
def monitoring(
    days: int = Query(30, ge=1, le=3650), _: Auth = Depends(require_admin), db: Session = Depends(get_db)
) -> dict[str, Any]:
    """Jobs per day, latency p50/p95 per stage, failures, queue length, flagged share per model."""
    return monitoring_stats(db, days)


@router.get("/problems", response_model=list[ProblemOut])
def list_problems(
    status: str | None = Query(None), _: Auth = Depends(require_admin), db: Session = Depends(get_db)
) -> list[ProblemOut]:
    """The triage queue (optionally one status), oldest first."""
    q = select(ProblemReport).order_by(ProblemReport.id)
    if status:
        if status not in PROBLEM_STATES:
            raise InputError(f"status must be one of {', '.join(PROBLEM_STATES)}, got {status!r}")
        q = q.where(ProblemReport.status == status)
    return [problem_out(db, pr) for pr in db.scalars(q)]


class TriageBody(BaseModel):
    status: str = Field(description="open, confirmed, fixed or rejected")
    note: str = Field("", max_length=5000)


@router.patch("/problems/{problem_id}", response_model=ProblemOut)
def triage(
    problem_id: IdPath,
    body: TriageBody,
    request: Request,
    auth: Auth = Depends(require_admin),
    db: Session = Depends(get_db),
) -> ProblemOut:
    """Record a triage decision on a problem report."""
    if body.status not in PROBLEM_STATES:
        raise InputError(f"status must be one of {', '.join(PROBLEM_STATES)}, got {body.status!r}")
    pr = db.get(ProblemReport, problem_id)
    if pr is None:
        raise HTTPException(status_code=404, detail=f"no problem report {problem_id}")
    old = pr.status
    pr.status, pr.triage_note, pr.triaged_by, pr.updated_at = body.status, body.note, auth.user.id, utcnow()
    audit(
        db,
        "triage",
        user=auth.user,
        target=f"problem:{problem_id}",
        ip=client_ip(request),
        detail={"study": pr.study_id, "from": old, "to": body.status},
    )
    return problem_out(db, pr)


@router.get("/problems/{problem_id}/correction", response_class=FileResponse)
def correction_file(
    problem_id: IdPath, request: Request, auth: Auth = Depends(require_admin), db: Session = Depends(get_db)
) -> FileResponse:
    """Download the corrected label map attached to a problem report."""
    pr = db.get(ProblemReport, problem_id)
    if pr is None or pr.correction_name is None:
        raise HTTPException(status_code=404, detail=f"problem report {problem_id} has no corrected label map")
    audit(
        db,
        "download",
        user=auth.user,
        target=f"problem:{problem_id}",
        ip=client_ip(request),
        detail={"file": "correction"},
    )
    db.commit()
    return FileResponse(
        request.app.state.storage.correction_file(pr.correction_name),
        media_type="application/octet-stream",
        filename=f"correction_{pr.correction_name}",
        content_disposition_type="attachment",
    )


@router.get("/audit")
def audit_log(
    limit: int = Query(200, ge=1, le=5000),
    action: str | None = Query(None),
    _: Auth = Depends(require_admin),
    db: Session = Depends(get_db),
) -> list[dict[str, Any]]:
    """The audit trail, newest first (logins, failed logins, uploads, downloads, models, triage)."""
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        q = q.where(AuditEvent.action == action)
    return [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "user": e.user_name,
            "action": e.action,
            "target": e.target,
            "ip": e.ip,
            "detail": e.detail,
        }
        for e in db.scalars(q)
    ]
