"""Operational statistics for the admin monitoring page (computed portably in Python).

Per model version: jobs per day, latency p50/p95 per stage (seconds, from the reports' timings),
failures with reasons, share of finished studies flagged by a problem report; plus the queue.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from liverseg.service.db import Job, ProblemReport, Study, utcnow

__all__ = ["monitoring_stats"]


def _pct(values: list[float]) -> dict[str, float | int]:
    arr = np.asarray(values, dtype=float)
    return {"n": len(values), "p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95))}


def monitoring_stats(db: Session, days: int = 30) -> dict[str, Any]:
    """Statistics over the jobs created in the last ``days`` days."""
    since = utcnow() - timedelta(days=days)
    rows = db.execute(
        select(Job, Study.model_name, Study.model_version)
        .join(Study, Study.id == Job.study_id)
        .where(Job.created_at >= since)
        .order_by(Job.id)
    ).all()
    flagged = set(db.scalars(select(ProblemReport.study_id).distinct()).all())
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    timings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    done: dict[str, set[str]] = defaultdict(set)
    failures = []
    for job, name, version in rows:
        model = f"{name} {version}" if name else "unknown"
        per_day[job.created_at.date().isoformat()][job.status] += 1
        if job.status == "done":
            done[model].add(job.study_id)
            for stage, secs in (job.timings_s or {}).items():
                if isinstance(secs, (int, float)):
                    timings[model][stage].append(float(secs))
        elif job.status == "failed":
            failures.append(
                {
                    "job_id": job.id,
                    "study_id": job.study_id,
                    "model": model,
                    "at": job.finished_at.isoformat() if job.finished_at else None,
                    "reason": job.error,
                }
            )
    models = {}
    for model in sorted(set(done) | set(timings)):
        studies = done[model]
        models[model] = {
            "studies_done": len(studies),
            "flagged": len(studies & flagged),
            "flagged_share": (len(studies & flagged) / len(studies)) if studies else 0.0,
            "latency_s": {stage: _pct(v) for stage, v in sorted(timings[model].items())},
        }
    counts = dict(db.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {
        "days": days,
        "queue_length": int(counts.get("queued", 0)),
        "running": int(counts.get("running", 0)),
        "jobs_per_day": [{"day": d, **dict(c), "total": sum(c.values())} for d, c in sorted(per_day.items())],
        "per_model": models,
        "failures": failures[-100:][::-1],
    }
