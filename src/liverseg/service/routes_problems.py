"""Problem reports on a study: category, comment, and optionally a corrected label map, either
uploaded (NIfTI on the study's input grid) or painted in the browser viewer.

A painted correction arrives as the viewer's drawing: the label map in the viewer cache's RAS
voxel order, one uint8 per voxel, gzip-compressed by the browser. It is decompressed with a
hard size bound, mapped exactly back onto the study's input grid
(:func:`liverseg.service.volumes.ras_to_input_labels`), written as NIfTI and then checked by the
same :func:`~liverseg.service.storage.validate_label_map` as an uploaded one, so both kinds feed
``liverseg data export-corrections`` identically.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.io import write_volume
from liverseg.service.auth import audit
from liverseg.service.db import PROBLEM_CATEGORIES, ProblemReport, Study, User, utcnow
from liverseg.service.deps import Auth, client_ip, current_user, get_db, owned_study
from liverseg.service.storage import Storage, fsync_dir, save_stream, sniff_kind, validate_label_map
from liverseg.service.volumes import ras_to_input_labels

router = APIRouter(tags=["problems"])

CATEGORY_LABELS = {
    "missed_tumor": "Missed tumor",
    "false_tumor": "False tumor",
    "liver_boundary": "Liver boundary",
    "other": "Other",
}


class ProblemOut(BaseModel):
    id: int
    study_id: str
    study_label: str | None = None
    category: str
    category_label: str
    comment: str
    status: str
    has_correction: bool
    correction_source: str | None = None
    reporter: str | None = None
    triage_note: str = ""
    created_at: datetime
    updated_at: datetime


def problem_out(db: Session, pr: ProblemReport) -> ProblemOut:
    reporter = db.get(User, pr.user_id)
    study = db.get(Study, pr.study_id)
    source = None
    if pr.correction_name:
        source = "painted" if ".painted." in pr.correction_name else "uploaded"
    return ProblemOut(
        id=pr.id,
        study_id=pr.study_id,
        study_label=study.label if study else None,
        category=pr.category,
        category_label=CATEGORY_LABELS.get(pr.category, pr.category),
        comment=pr.comment,
        status=pr.status,
        has_correction=pr.correction_name is not None,
        correction_source=source,
        reporter=reporter.name if reporter else None,
        triage_note=pr.triage_note,
        created_at=pr.created_at,
        updated_at=pr.updated_at,
    )


def _inflate(data: bytes, expected: int) -> bytes:
    """gzip bytes -> at most ``expected`` + 1 bytes (a larger stream is refused, never inflated)."""
    try:
        d = zlib.decompressobj(wbits=31)  # gzip container
        raw = d.decompress(data, expected + 1)
    except zlib.error as exc:
        raise InputError(f"the painted label map is not valid gzip data ({exc})") from exc
    if len(raw) > expected or d.unconsumed_tail:
        raise InputError(f"the painted label map holds more than the study's {expected} voxels")
    return raw


def _checked_correction(storage: Storage, study: Study, upload: Path, painted: bool) -> tuple[Path, str]:
    """Turn a received correction into a checked NIfTI beside it (outside any transaction).

    Returns ``(path, suffix)``: the file to move into place and its final name's ending.
    """
    meta_path = storage.viewer_dir(study.id) / "viewer.json"
    if study.status != "done" or not meta_path.exists():
        raise InputError("a corrected label map can only be attached to a finished study")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if painted:
        nz, ny, nx = meta["shape_zyx"]
        volume = ras_to_input_labels(meta, _inflate(upload.read_bytes(), nz * ny * nx))
        checked = upload.with_name(upload.stem + ".painted.nii.gz")
        write_volume(volume, checked)
        suffix = ".painted.nii.gz"
    else:
        with open(upload, "rb") as fh:
            kind = sniff_kind(fh.read(544))
        if kind == "zip":
            raise InputError("expected the corrected label map as a NIfTI file, got a zip")
        suffix = ".nii.gz" if kind == "nifti-gz" else ".nii"
        checked = upload.with_name(upload.stem + suffix)
        os.replace(upload, checked)
    try:
        validate_label_map(checked, meta["input_geometry"])
    except BaseException:
        checked.unlink(missing_ok=True)
        raise
    return checked, suffix


def _file_problem(
    request: Request,
    auth: Auth,
    study: Study,
    category: str,
    comment: str,
    upload: Path | None,
    painted: bool,
) -> ProblemOut:
    """Check the correction (outside any transaction), then store the report and move the
    correction into place in one short write transaction."""
    storage, database = request.app.state.storage, request.app.state.database
    checked, suffix = _checked_correction(storage, study, upload, painted) if upload else (None, "")
    dest: Path | None = None
    try:
        with database.session() as s:
            now = utcnow()
            pr = ProblemReport(
                study_id=study.id,
                user_id=auth.user.id,
                category=category,
                comment=comment,
                status="open",
                created_at=now,
                updated_at=now,
            )
            s.add(pr)
            s.flush()
            if checked is not None:
                dest = storage.correction_file(f"{int(pr.id)}{suffix}")
                os.replace(checked, dest)
                fsync_dir(dest.parent)
                pr.correction_name = dest.name
            audit(
                s,
                "problem_report",
                user=auth.user,
                target=f"study:{study.id}",
                ip=client_ip(request),
                detail={
                    "problem": pr.id,
                    "category": category,
                    "correction": None if checked is None else ("painted" if painted else "uploaded"),
                },
            )
            s.flush()
            return problem_out(s, pr)
    except BaseException:
        for leftover in (checked, dest):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
        raise


@router.post("/api/studies/{study_id}/problems", status_code=201, response_model=ProblemOut)
async def report_problem(
    request: Request,
    category: str = Form(..., description=f"one of {', '.join(PROBLEM_CATEGORIES)}"),
    comment: str = Form("", max_length=5000),
    correction: UploadFile | None = File(None, description="optional corrected label map (NIfTI, 0/1/2)"),
    painted: UploadFile | None = File(
        None, description="optional label map painted in the viewer (gzip of RAS-ordered uint8 voxels)"
    ),
    study: Study = Depends(owned_study),
    auth: Auth = Depends(current_user),
) -> ProblemOut:
    """ "Report a problem": category, comment, optional corrected label map (uploaded or painted).

    The file streams to disk on the event loop; checks and the database run in the threadpool.
    """
    if category not in PROBLEM_CATEGORIES:
        raise InputError(f"category must be one of {', '.join(PROBLEM_CATEGORIES)}, got {category!r}")
    uploaded = correction is not None and bool(correction.filename)
    has_painted = painted is not None and bool(painted.filename)
    if uploaded and has_painted:
        raise InputError("send either an uploaded or a painted corrected label map, not both")
    cfg, storage = request.app.state.config, request.app.state.storage
    source = correction if uploaded else painted if has_painted else None
    upload: Path | None = None
    try:
        if source is not None:
            upload = storage.correction_file(f"upload-{uuid.uuid4().hex}.part")

            async def chunks() -> Any:
                while block := await source.read(1 << 20):
                    yield block

            await save_stream(chunks(), upload, max_bytes=cfg.limits.max_label_bytes)
        return await run_in_threadpool(
            _file_problem, request, auth, study, category, comment, upload, has_painted
        )
    finally:
        if upload is not None:
            await run_in_threadpool(upload.unlink, missing_ok=True)


@router.get("/api/studies/{study_id}/problems", response_model=list[ProblemOut])
def study_problems(study: Study = Depends(owned_study), db: Session = Depends(get_db)) -> list[ProblemOut]:
    """Problem reports filed on this study."""
    rows = db.scalars(
        select(ProblemReport).where(ProblemReport.study_id == study.id).order_by(ProblemReport.id)
    )
    return [problem_out(db, pr) for pr in rows]
