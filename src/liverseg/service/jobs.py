"""Durable job queue: enqueue, claim under a lease, heartbeat, progress, finish, resume.

A job row is ``queued`` -> ``running`` (owned by one worker until ``lease_expires_at``, renewed
by a heartbeat thread) -> ``done`` or ``failed``. A worker that dies stops renewing its lease;
once the lease expires any worker claims the job again (``attempts`` counts tries; after
``max_attempts`` the job fails with the reason). Claiming is atomic: ``SELECT ... FOR UPDATE
SKIP LOCKED`` on PostgreSQL, a conditional ``UPDATE ... WHERE status='queued'`` on SQLite.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update

from liverseg.errors import ConfigError, LiversegError
from liverseg.inference import SegmentOptions, run_segment
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database, Job, ModelVersion, Study, utcnow
from liverseg.service.errors import public_message
from liverseg.service.storage import Storage
from liverseg.service.volumes import build_viewer_cache, read_image_volume, read_label_volume

__all__ = [
    "Segmenter",
    "Worker",
    "claim_job",
    "enqueue",
    "load_segmenter",
    "run_job_segmentation",
]

log = logging.getLogger(__name__)
#: What a clinician sees of an unexpected failure (the details are in the job, for administrators).
INTERNAL_ERROR = (
    "internal error while segmenting this study; an administrator can see the details under monitoring"
)
ProgressFn = Callable[[str, float], None]
Segmenter = Callable[..., dict[str, Any]]


def run_job_segmentation(
    input_path: Path,
    out_dir: Path,
    *,
    model: str,
    dicom_input: bool,
    progress: ProgressFn,
    identity: dict[str, Any],
) -> dict[str, Any]:
    """Segment one study with the real pipeline (:func:`liverseg.inference.run_segment`).

    Writes ``labels.nii.gz``, ``report.json``, ``report.html`` (and for DICOM input ``seg.dcm`` and
    ``sr.dcm``, the TID 1500 structured report) into ``out_dir`` and returns the report dict
    (docs/contracts.md, "Reporting"). ``identity`` (the study's stored identity, pseudonymised
    under ``--deidentify``) goes into both reports.
    """

    return run_segment(
        input_path,
        out_dir / "labels.nii.gz",
        report_json=out_dir / "report.json",
        html=out_dir / "report.html",
        dicom_seg=(out_dir / "seg.dcm") if dicom_input else None,
        dicom_sr=(out_dir / "sr.dcm") if dicom_input else None,
        options=SegmentOptions(model=model),
        progress=progress,
        identity=identity,
    )


def load_segmenter(spec: str | None) -> Segmenter:
    """The segmentation function: ``run_job_segmentation`` (looked up at call time, so tests may
    monkeypatch it) or a ``"module:function"`` with the same signature."""
    if spec is None:
        return lambda *a, **kw: globals()["run_job_segmentation"](*a, **kw)
    module, _, func = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"segmenter must be 'module:function', cannot load {spec!r}: {exc}") from exc


def enqueue(db: Any, study: Study) -> Job:
    """Queue a job for ``study`` with the active model (recorded on job and study)."""
    active = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
    job = Job(study_id=study.id, status="queued", stage="queued", fraction=0.0, created_at=utcnow())
    if active is not None:
        job.model_id = active.id
        study.model_id, study.model_name, study.model_version = active.id, active.name, active.version
    db.add(job)
    return job


def _claimable(now: Any) -> Any:
    return or_(
        Job.status == "queued",
        and_(Job.status == "running", Job.lease_expires_at < now),
    )


def claim_job(database: Database, worker_id: str, lease_s: float) -> int | None:
    """Atomically take the oldest claimable job (queued, or running with an expired lease)."""
    with database.session() as s:
        now = utcnow()
        values = {
            "status": "running",
            "lease_owner": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_s),
            "heartbeat_at": now,
            "attempts": Job.attempts + 1,
        }
        if database.dialect == "postgresql":
            job_id = s.scalar(
                select(Job.id)
                .where(_claimable(now))
                .order_by(Job.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job_id is None:
                return None
            s.execute(update(Job).where(Job.id == job_id).values(**values))
            return int(job_id)
        for job_id in s.scalars(select(Job.id).where(_claimable(now)).order_by(Job.id).limit(5)).all():
            res = s.execute(update(Job).where(Job.id == job_id, _claimable(now)).values(**values))
            if res.rowcount == 1:  # type: ignore[attr-defined]
                return int(job_id)
        return None


class _Heartbeat:
    """Renews a job's lease every ``lease_s / 3`` and stores progress (throttled)."""

    def __init__(self, database: Database, job_id: int, worker_id: str, lease_s: float) -> None:
        self.database, self.job_id, self.worker_id, self.lease_s = database, job_id, worker_id, lease_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: tuple[str, float] | None = None
        self._last_write = 0.0
        self._last_stage = ""
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def progress(self, stage: str, fraction: float) -> None:
        """Progress callback handed to the segmenter: stage name and fraction in [0, 1]."""
        with self._lock:
            self._pending = (str(stage)[:64], float(min(1.0, max(0.0, fraction))))
        now = time.monotonic()
        if stage != self._last_stage or now - self._last_write > 0.5:
            self._last_stage, self._last_write = stage, now
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        values: dict[str, Any] = {
            "lease_expires_at": utcnow() + timedelta(seconds=self.lease_s),
            "heartbeat_at": utcnow(),
        }
        if pending is not None:
            values["stage"], values["fraction"] = pending
        with self.database.session() as s:
            s.execute(
                update(Job).where(Job.id == self.job_id, Job.lease_owner == self.worker_id).values(**values)
            )

    def _run(self) -> None:
        while not self._stop.wait(max(0.2, self.lease_s / 3)):
            try:
                self._flush()
            except Exception:  # a database hiccup must not kill the job; the next beat retries
                log.warning("heartbeat of job %s failed", self.job_id, exc_info=True)


class Worker:
    """Runs jobs from the database, one at a time, until stopped.

    Args:
        database: the service database.
        config: service settings (data dir, lease, attempts, segmenter).
        worker_id: unique name of this worker (default: host:pid).
    """

    def __init__(self, database: Database, config: ServiceConfig, worker_id: str | None = None) -> None:
        self.database = database
        self.config = config
        self.storage = Storage(config.data_dir)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.segmenter = load_segmenter(config.segmenter)

    def run_forever(self, stop: threading.Event, poll_s: float = 1.0) -> None:
        """Claim and run jobs until ``stop`` is set; never raises for a job's failure."""
        log.info("worker %s started", self.worker_id)
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception:
                log.exception("worker %s: database error, retrying", self.worker_id)
                ran = False
            if not ran:
                stop.wait(poll_s)

    def run_once(self) -> bool:
        """Claim one job and run it; ``False`` when the queue is empty."""
        job_id = claim_job(self.database, self.worker_id, self.config.lease_s)
        if job_id is None:
            return False
        self._run(job_id)
        return True

    def _run(self, job_id: int) -> None:
        with self.database.session() as s:
            job = s.get(Job, job_id)
            assert job is not None
            study = s.get(Study, job.study_id)
            assert study is not None
            give_up = job.attempts > self.config.max_attempts
            model = s.get(ModelVersion, job.model_id) if job.model_id else None
            model_ref = model.path if model is not None else "default"
            study.status, job.started_at = "running", job.started_at or utcnow()
            job.stage, job.fraction = "starting", 0.0
            input_path = self.storage.study_dir(study.id) / study.input_name
            dicom_input, study_id = study.input_kind == "dicom", study.id
            identity = study.identity()
        if give_up:
            self._fail(job_id, f"gave up after {job.attempts - 1} attempts (the worker stopped each time)")
            return
        log.info("job %s (study %s) attempt %s on %s", job_id, study_id, job.attempts, self.worker_id)
        out_dir = self.storage.output_dir(study_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            with _Heartbeat(self.database, job_id, self.worker_id, self.config.lease_s) as hb:
                report = self.segmenter(
                    input_path,
                    out_dir,
                    model=model_ref,
                    dicom_input=dicom_input,
                    progress=hb.progress,
                    identity=identity,
                )
                hb.progress("viewer_cache", 0.0)
                t1 = time.perf_counter()
                self._write_viewer_cache(input_path, out_dir)
                hb.progress("viewer_cache", 1.0)
        except LiversegError as exc:  # the user's input: its message, without server paths
            self._fail(job_id, public_message(str(exc)))
            return
        except Exception as exc:  # anything unexpected: the job fails, the worker lives on
            log.exception("job %s (study %s) failed", job_id, study_id)
            self._fail(
                job_id,
                f"internal error: {type(exc).__name__}: {exc}".replace(str(self.storage.root), "<data>"),
                public=INTERNAL_ERROR,
            )
            return
        timings = dict(report.get("timings_s") or {})
        timings["viewer_cache"] = time.perf_counter() - t1
        timings.setdefault("total", time.perf_counter() - t0)
        self._finish(job_id, report, timings)

    def _write_viewer_cache(self, input_path: Path, out_dir: Path) -> None:
        image = read_image_volume(input_path)
        labels = read_label_volume(out_dir / "labels.nii.gz")
        build_viewer_cache(image, labels, out_dir / "viewer")

    def _finish(self, job_id: int, report: dict[str, Any], timings: dict[str, float]) -> None:
        with self.database.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.lease_owner != self.worker_id:
                log.warning("job %s was taken over by another worker; result discarded", job_id)
                return
            study = s.get(Study, job.study_id)
            assert study is not None
            now = utcnow()
            job.status, job.stage, job.fraction, job.finished_at = "done", "done", 1.0, now
            job.timings_s = {k: float(v) for k, v in timings.items() if isinstance(v, (int, float))}
            job.lease_owner, job.lease_expires_at, job.error = None, None, None
            study.status, study.finished_at, study.error = "done", now, None
            study.liver_volume_ml = _num(report.get("liver_volume_ml"))
            study.tumor_volume_ml = _num(report.get("tumor_volume_ml"))
            study.tumor_burden_percent = _num(report.get("tumor_burden_percent"))
            count = report.get("lesion_count")
            study.lesion_count = int(count) if isinstance(count, int) else len(report.get("lesions") or [])
            model = report.get("model") or {}
            if model.get("version") and not study.model_version:
                study.model_name, study.model_version = str(model.get("name")), str(model["version"])
        log.info("job %s done", job_id)

    def _fail(self, job_id: int, reason: str, public: str | None = None) -> None:
        """Fail the job with ``reason`` (administrators see it in monitoring); the study shows
        ``public`` (default: the same reason) to its clinician."""
        with self.database.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            study = s.get(Study, job.study_id)
            now = utcnow()
            job.status, job.error, job.finished_at = "failed", reason[:2000], now
            job.lease_owner, job.lease_expires_at = None, None
            if study is not None:
                study.status, study.error, study.finished_at = "failed", (public or reason)[:2000], now
        log.warning("job %s failed: %s", job_id, reason.splitlines()[0] if reason else "")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def read_report(storage: Storage, study_id: str) -> dict[str, Any] | None:
    """The stored report JSON of a finished study, else ``None``."""
    path = storage.output_dir(study_id) / "report.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
