"""Study lifecycle: delete (files and rows, audited), retention purge, re-run on the active model.

Deleting removes the study's rows (the study, its jobs, its problem reports) in one transaction
and then its files (the study folder, the problem reports' corrected label maps). A study
whose job is running under a live lease cannot be deleted (409): the worker would write its
results into a deleted folder. The audit log keeps the deletion (who, when, which study id,
why: a user's request or the retention period), never patient data.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.service.auth import audit
from liverseg.service.db import Database, Job, ModelVersion, ProblemReport, Study, User, utcnow
from liverseg.service.jobs import enqueue
from liverseg.service.storage import Storage

__all__ = ["StudyBusyError", "delete_study_rows", "purge_expired", "remove_study_files", "rerun_study"]

log = logging.getLogger(__name__)


class StudyBusyError(InputError):
    """The study's job is running: it cannot be deleted or re-run now (HTTP 409)."""


@dataclass(frozen=True)
class DeletedStudy:
    """What is left to remove from disk once the rows are gone."""

    study_id: str
    corrections: list[str]


def _running(db: Session, study_id: str) -> bool:
    jobs = db.scalars(select(Job).where(Job.study_id == study_id).with_for_update()).all()
    now = utcnow()
    return any(
        j.status == "running" and j.lease_expires_at is not None and j.lease_expires_at > now for j in jobs
    )


def delete_study_rows(
    db: Session, study: Study, *, user: User | str | None, ip: str | None, reason: str
) -> DeletedStudy:
    """Delete the study's rows (jobs, problem reports, the study) and audit it; the caller commits
    and then calls :func:`remove_study_files`. StudyBusyError while its job runs."""
    if _running(db, study.id):
        raise StudyBusyError(
            f"study {study.id} is being segmented right now; delete it once its job has finished"
        )
    names = db.scalars(select(ProblemReport.correction_name).where(ProblemReport.study_id == study.id)).all()
    corrections = [name for name in names if name]
    n_problems = len(names)
    db.execute(delete(ProblemReport).where(ProblemReport.study_id == study.id))
    db.execute(delete(Job).where(Job.study_id == study.id))
    db.delete(study)
    audit(
        db,
        "study_delete",
        user=user,
        target=f"study:{study.id}",
        ip=ip,
        detail={"reason": reason, "problem_reports": n_problems, "corrections": len(corrections)},
    )
    return DeletedStudy(study.id, corrections)


def remove_study_files(storage: Storage, deleted: DeletedStudy) -> None:
    """Remove a deleted study's folder and its corrected label maps (missing files are fine)."""
    shutil.rmtree(storage.study_dir(deleted.study_id), ignore_errors=True)
    for name in deleted.corrections:
        storage.correction_file(name).unlink(missing_ok=True)
    if storage.study_dir(deleted.study_id).exists():
        log.error("could not remove every file of deleted study %s", deleted.study_id)


def purge_expired(database: Database, storage: Storage, retention_days: float) -> int:
    """Delete every study created more than ``retention_days`` ago (audited, reason
    ``retention``); studies whose job is running are left for the next purge. Returns the count."""
    cutoff = utcnow() - timedelta(days=retention_days)
    with database.session() as s:
        ids = s.scalars(select(Study.id).where(Study.created_at < cutoff)).all()
    purged = 0
    for study_id in ids:
        try:
            with database.session() as s:
                study = s.get(Study, study_id)
                if study is None:
                    continue
                deleted = delete_study_rows(
                    s, study, user="system", ip=None, reason=f"retention: older than {retention_days:g} days"
                )
        except StudyBusyError:
            continue
        remove_study_files(storage, deleted)
        purged += 1
    if purged:
        log.info("retention: deleted %d stud(y/ies) older than %g days", purged, retention_days)
    return purged


def rerun_study(db: Session, study: Study, *, user: User, ip: str | None) -> dict[str, Any]:
    """Queue the study again with the active model (its results are replaced when the job ends).

    Raises:
        StudyBusyError: the study is queued or running.
        InputError: no model is active.
    """
    if study.status in ("queued", "running"):
        raise StudyBusyError(f"study {study.id} is already {study.status}; wait until its job has finished")
    active = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
    if active is None:
        raise StudyBusyError("no model is active: an administrator must activate one first")
    previous = {"name": study.model_name, "version": study.model_version}
    enqueue(db, study)
    study.status, study.error, study.finished_at = "queued", None, None
    audit(
        db,
        "study_rerun",
        user=user,
        target=f"study:{study.id}",
        ip=ip,
        detail={"previous": previous, "model": {"name": active.name, "version": active.version}},
    )
    return {"name": active.name, "version": active.version}
