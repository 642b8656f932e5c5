"""One progress bar for a job: the pipeline's internal stages mapped to plain words and to one
overall fraction, plus an estimate of the time left.

The worker stores the stage the pipeline reports (``stage1``, ``stage2``, ...) and the fraction
of that stage; :func:`job_progress` turns them into ``(label, overall fraction)`` with the spans
of :data:`STAGES` (chosen from the measured share of each stage in the shipped model's run
time, docs/report_schema.md ``timings_s``). The time left is extrapolated from the elapsed time
once a tenth of the work is done; before that, from the median duration of this model's last
finished jobs (``None`` when there is no history: "estimating").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liverseg.service.db import Job, utcnow

__all__ = ["STAGES", "JobProgress", "describe", "job_progress"]

#: internal stage -> (plain label, overall fraction at its start, at its end)
STAGES: dict[str, tuple[str, float, float]] = {
    "queued": ("waiting in the queue", 0.0, 0.0),
    "starting": ("reading the CT", 0.0, 0.05),
    "read": ("reading the CT", 0.0, 0.05),
    "preprocess": ("loading the model", 0.05, 0.10),
    "stage1": ("finding the liver", 0.10, 0.25),
    "stage2": ("segmenting liver and tumors", 0.25, 0.85),
    "single": ("segmenting liver and tumors", 0.10, 0.85),
    "segment": ("segmenting liver and tumors", 0.10, 0.85),
    "postprocess": ("measuring lesions and writing the report", 0.85, 0.92),
    "report": ("measuring lesions and writing the report", 0.85, 0.92),
    "viewer_cache": ("preparing the viewer", 0.92, 1.0),
    "done": ("done", 1.0, 1.0),
}
EXTRAPOLATE_FROM = 0.10
HISTORY_JOBS = 20


@dataclass(frozen=True)
class JobProgress:
    """What the browser shows: a label, one fraction in [0, 1], seconds left (or None)."""

    label: str
    fraction: float
    eta_s: float | None
    queue_position: int | None


def _history_s(db: Session, model_id: int | None) -> float | None:
    """Median wall time (s) of the model's last finished jobs, None without any."""
    rows = db.execute(
        select(Job.started_at, Job.finished_at)
        .where(Job.status == "done", Job.model_id == model_id, Job.started_at.is_not(None))
        .order_by(Job.id.desc())
        .limit(HISTORY_JOBS)
    ).all()
    spans = [(f - s).total_seconds() for s, f in rows if s is not None and f is not None]
    return statistics.median(spans) if spans else None


def job_progress(db: Session, job: Job | None, study_status: str) -> JobProgress:
    """The progress of ``job`` (the study's latest) for a study in ``study_status``."""
    if job is None or study_status in ("done", "failed"):
        label = {"done": "done", "failed": "failed"}.get(study_status, study_status)
        return JobProgress(label, 1.0 if study_status == "done" else 0.0, None, None)
    if job.status == "queued":
        n_ahead = int(
            db.scalar(
                select(func.count(Job.id)).where(Job.status.in_(("queued", "running")), Job.id < job.id)
            )
            or 0
        )
        history = _history_s(db, job.model_id)
        eta = None if history is None else history * (n_ahead + 1)
        return JobProgress("waiting in the queue", 0.0, eta, n_ahead)
    label, lo, hi = STAGES.get(job.stage, (job.stage, 0.0, 0.0))
    fraction = lo + (hi - lo) * min(1.0, max(0.0, float(job.fraction or 0.0)))
    elapsed = (utcnow() - job.started_at).total_seconds() if job.started_at else 0.0
    eta: float | None
    if fraction >= EXTRAPOLATE_FROM:
        eta = elapsed * (1.0 - fraction) / fraction
    else:
        history = _history_s(db, job.model_id)
        eta = None if history is None else max(0.0, history - elapsed)
    return JobProgress(label, round(fraction, 4), None if eta is None else round(eta, 1), None)


def describe(progress: JobProgress) -> dict[str, Any]:
    """JSON fields of a study's progress."""
    return {
        "progress_label": progress.label,
        "progress": progress.fraction,
        "eta_s": progress.eta_s,
        "queue_position": progress.queue_position,
    }
