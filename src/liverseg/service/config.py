"""Service settings: one frozen dataclass built by ``liverseg serve`` / ``liverseg users``.

All sizes are in bytes and all durations in seconds. No setting is read from the environment,
except the PACS credentials, which ``liverseg serve`` loads from the environment or a PACS config
file (:func:`liverseg.pacs.load_pacs_config`) so that they never appear on its command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from liverseg.service_defaults import DEFAULT_ALLOWED_HOSTS, DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from liverseg.pacs.config import PacsConfig

__all__ = ["DEFAULT_ALLOWED_HOSTS", "DEFAULT_DATA_DIR", "ServiceConfig", "UploadLimits", "default_db_url"]


@dataclass(frozen=True)
class UploadLimits:
    """Limits applied to every upload before anything is queued.

    Attributes:
        max_upload_bytes: largest accepted request body (NIfTI file or DICOM zip), bytes.
        max_uncompressed_bytes: largest total uncompressed size of a zip or of a NIfTI's voxels.
        max_zip_files: most entries a DICOM zip may hold.
        max_label_bytes: largest corrected label map / model file upload.
        max_login_bytes: largest ``POST /api/login`` body (JSON name and password).
        max_request_bytes: largest body of every other route (JSON and forms without files).
    """

    max_upload_bytes: int = 2 * 1024**3
    max_uncompressed_bytes: int = 8 * 1024**3
    max_zip_files: int = 5000
    max_label_bytes: int = 512 * 1024**2
    max_login_bytes: int = 4 * 1024
    max_request_bytes: int = 1024**2


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the web app and the workers need.

    Attributes:
        data_dir: folder holding the database (SQLite default), uploads and results.
        db_url: SQLAlchemy URL; ``None`` means ``sqlite:///<data_dir>/liverseg.db``.
        limits: upload limits.
        session_ttl_s: absolute lifetime of a login session.
        secure_cookies: always mark cookies ``Secure`` (otherwise only when the request is HTTPS,
            which includes ``X-Forwarded-Proto: https`` from a trusted proxy).
        throttle_free_failures: failed logins per user allowed before the lockout starts.
        throttle_ip_free_failures: failed logins per client IP allowed before its lockout starts.
        throttle_base_s: first lockout; doubles with every further failure.
        throttle_max_s: longest lockout.
        lease_s: job lease; a worker that stops heart-beating loses its job after this.
        max_attempts: a job whose worker died this many times is marked failed.
        segmenter: ``"module:function"`` replacing :func:`liverseg.service.jobs.run_job_segmentation`
            (integration tests use a fast fake); ``None`` runs the real pipeline.
        viewer_cache_studies: how many studies' viewer descriptions one process keeps in memory.
        viewer_cache_studies: how many studies' memory-mapped volumes one process keeps open.
        allowed_hosts: accepted ``Host`` header values (others get 400), e.g. ``"liver.example.org"``
            or ``"*.example.org"``; ``("*",)`` accepts any (not recommended).
        forwarded_allow_ips: addresses or networks of reverse proxies whose ``X-Forwarded-For`` /
            ``X-Forwarded-Proto`` headers are trusted; empty: trusted from nobody (the peer
            address is the client).
        view_window_s: a study accessed again by the same session within this time is the same
            view (one ``study_view`` audit event per view, not per slice).
        orphan_grace_s: at start, study folders without a database row and abandoned uploads
            untouched for this long are removed.
        pacs: the DICOMweb PACS studies can be imported from (``None``: no PACS import).
        deidentify: store pseudonyms (keyed hash) instead of patient IDs and accession numbers
            in the database, the pages and the reports (:mod:`liverseg.service.identity`).
        retention_days: studies older than this are deleted (files and rows, audited) by
            ``liverseg serve``; ``None`` keeps them until someone deletes them.
        gate: ``"module:function"`` replacing the model validation gate
            (:func:`liverseg.service.gate.run_gate_subprocess`; tests use a fast fake).
    """

    data_dir: Path = DEFAULT_DATA_DIR
    db_url: str | None = None
    limits: UploadLimits = field(default_factory=UploadLimits)
    session_ttl_s: float = 12 * 3600.0
    secure_cookies: bool = False
    throttle_free_failures: int = 5
    throttle_ip_free_failures: int = 20
    throttle_base_s: float = 30.0
    throttle_max_s: float = 900.0
    lease_s: float = 60.0
    max_attempts: int = 3
    segmenter: str | None = None
    viewer_cache_studies: int = 8
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    forwarded_allow_ips: tuple[str, ...] = ()
    view_window_s: float = 1800.0
    orphan_grace_s: float = 600.0
    pacs: PacsConfig | None = None
    deidentify: bool = False
    retention_days: float | None = None
    gate: str | None = None

    @property
    def database_url(self) -> str:
        """The effective SQLAlchemy URL."""
        return self.db_url or default_db_url(self.data_dir)


def default_db_url(data_dir: str | Path) -> str:
    """``sqlite:///`` URL of the default database file inside ``data_dir``."""
    return f"sqlite:///{(Path(data_dir).resolve() / 'liverseg.db').as_posix()}"
