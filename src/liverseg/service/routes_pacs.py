"""Import a study from the configured PACS (DICOMweb): search, then pull one CT series and queue it.

``liverseg serve --pacs-url URL`` (credentials from the environment or ``--pacs-config``) turns
these routes on. The series is chosen by the same rules as a local DICOM export (or named by the
user), pulled with WADO-RS, stored as the study's ``input.zip`` and queued like an upload; the
job then writes the DICOM-SEG and the structured report (``sr.dcm``) next to the other results.
PACS failures answer 502 with the PACS's reason; the audit log records searches and imports
without patient identifiers.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from liverseg.errors import PacsError
from liverseg.io.dicom_series import read_series_identity
from liverseg.pacs import PacsClient, choose_series
from liverseg.service.auth import audit
from liverseg.service.deps import Auth, client_ip, current_user, get_db
from liverseg.service.identity import study_identity
from liverseg.service.routes_studies import StudyOut, register_study
from liverseg.service.storage import fsync_dir, validate_dicom_zip
from liverseg.utils import atomic_path

router = APIRouter(tags=["pacs"])
log = logging.getLogger(__name__)

_UID = r"^[0-9]+(\.[0-9]+)*$"


class PacsImportIn(BaseModel):
    study_instance_uid: str = Field(..., max_length=64, pattern=_UID, description="StudyInstanceUID")
    series: str | None = Field(
        None, max_length=70, pattern=r"^[0-9.#]+$", description="SeriesInstanceUID, SeriesNumber or stack id"
    )
    label: str = Field("", max_length=200, description="display name (default: date and series)")


def _pacs(request: Request) -> Any:
    pacs = request.app.state.config.pacs
    if pacs is None:
        raise HTTPException(
            status_code=409,
            detail="no PACS is configured: start liverseg serve with --pacs-url (credentials in "
            "LIVERSEG_PACS_USERNAME / LIVERSEG_PACS_PASSWORD or --pacs-config)",
        )
    return pacs


def _bad_gateway(exc: PacsError) -> HTTPException:
    return HTTPException(status_code=502, detail=str(exc))


@router.get("/api/pacs")
def pacs_status(request: Request, _auth: Auth = Depends(current_user)) -> dict[str, Any]:
    """Whether a PACS is configured, and which (URL and kind of authentication, no secrets)."""
    pacs = request.app.state.config.pacs
    return {"configured": pacs is not None, "server": pacs.describe() if pacs is not None else None}


@router.get("/api/pacs/studies")
def pacs_studies(
    request: Request,
    patient_id: str = Query("", max_length=64),
    study_date: str = Query("", max_length=17, pattern=r"^[0-9-]*$", description="YYYYMMDD or a range"),
    accession: str = Query("", max_length=64),
    limit: int = Query(50, ge=1, le=200),
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
) -> list[dict[str, Any]]:
    """Studies in the PACS (QIDO-RS) holding CT, newest first (a plain route: the database work and
    the PACS query run in the threadpool, never on the event loop)."""

    pacs = _pacs(request)
    filters = {"ModalitiesInStudy": "CT"}
    filters.update(
        {
            k: v
            for k, v in {
                "PatientID": patient_id,
                "StudyDate": study_date,
                "AccessionNumber": accession,
            }.items()
            if v
        }
    )
    audit(db, "pacs_search", user=auth.user, ip=client_ip(request), detail={"filters": sorted(filters)})
    db.commit()
    try:
        studies = PacsClient(pacs, http_attempts=2).find_studies(filters, limit)
    except PacsError as exc:
        raise _bad_gateway(exc) from exc
    return sorted(studies, key=lambda s: s.get("StudyDate") or "", reverse=True)


def _pull(pacs: Any, body: PacsImportIn, folder: Path) -> dict[str, Any]:
    """Choose and pull the series into ``folder/input.zip``; returns what the study row needs."""

    client = PacsClient(pacs, http_attempts=2)
    selection = choose_series(client, body.study_instance_uid, body.series)
    chosen = selection.chosen
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "input.zip"
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        files = client.retrieve_series(body.study_instance_uid, chosen.series_instance_uid, Path(tmp))
        with atomic_path(final) as part, zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                zf.write(f, f"{chosen.series_instance_uid}/{f.name}")
    fsync_dir(folder)
    digest = hashlib.sha256()
    with open(final, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return {
        "path": final,
        "sha256": digest.hexdigest(),
        "size": final.stat().st_size,
        "files": len(files),
        "series_number": chosen.series_number,
        "series_description": chosen.first.series_description,
        "why": selection.why(),
    }


@router.post(
    "/api/pacs/import",
    status_code=202,
    response_model=StudyOut,
    responses={409: {"description": "no PACS configured"}, 502: {"description": "the PACS failed"}},
)
def pacs_import(request: Request, body: PacsImportIn, auth: Auth = Depends(current_user)) -> JSONResponse:
    """Pull one CT series of a PACS study (chosen by the rules, or ``series``) and queue it.

    Like an upload: pulled into ``incoming/<id>/`` (no database transaction open meanwhile) and
    checked, then moved to ``studies/<id>/`` and registered in one short write transaction (the
    folder is removed if that fails). A plain route: it runs in the threadpool.
    """
    cfg, storage = request.app.state.config, request.app.state.storage
    pacs = _pacs(request)
    study_id = uuid.uuid4().hex
    incoming = storage.incoming_dir(study_id)
    try:
        try:
            pulled = _pull(pacs, body, incoming)
        except PacsError as exc:
            raise _bad_gateway(exc) from exc
        validate_dicom_zip(pulled["path"], cfg.limits)
        identity = study_identity(read_series_identity(pulled["path"]), {}, cfg)
        default = f"PACS series {pulled['series_number']} {pulled['series_description']}".strip()
        out = register_study(
            request,
            auth,
            incoming,
            study_id,
            action="pacs_import",
            detail={"files": pulled["files"], "bytes": pulled["size"], "series_chosen_by": pulled["why"]},
            label=(body.label.strip() or default)[:200],
            input_kind="dicom",
            input_name="input.zip",
            input_sha256=pulled["sha256"],
            input_bytes=pulled["size"],
            **identity,
        )
    finally:
        shutil.rmtree(incoming, ignore_errors=True)  # gone once published
    log.info("study %s imported from the PACS (%d files) and queued", study_id, pulled["files"])
    return JSONResponse(out, status_code=202)
