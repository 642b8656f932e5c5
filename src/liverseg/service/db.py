"""Database schema (SQLAlchemy 2.0) and the engine/session factory.

SQLite (default) and PostgreSQL (``postgresql+psycopg://``) are supported. The schema is made
and changed by the Alembic revisions in ``service/migrations`` only (:mod:`liverseg.service.migrate`):
a fresh database is migrated to the head when opened, an older one is refused until the
administrator runs ``liverseg db upgrade``, a newer one is refused. A change to these models
needs a new revision (tests/service/test_svc_migrations.py compares the two). Timestamps are
naive UTC.

SQLite concurrency (one writer at a time, readers never blocked in WAL mode):

* :meth:`Database.session` (workers, the CLI) starts every transaction with ``BEGIN IMMEDIATE``:
  it takes the write lock up front, waiting up to the 60 s busy timeout, so two processes never
  fail upgrading a read lock.
* :meth:`Database.request_session` (web requests) starts transactions as plain reads, which never
  wait and never block anyone. The first write statement of a transaction ends that read
  snapshot and re-begins with ``BEGIN IMMEDIATE`` (a deferred read transaction cannot wait for
  the write lock: SQLite would fail at once with "database is locked"). So a request holds the
  write lock only from its first write to its commit, and only requests that write take it.
  Code that reads a value and writes something computed from it calls :func:`write_lock` first.
* No database call may run on the web server's event loop (where waiting for a lock would stall
  every request, including the one holding the lock): the request session refuses it loudly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from liverseg.errors import ConfigError
from liverseg.service.migrate import prepare

__all__ = [
    "SCHEMA_VERSION",
    "AuditEvent",
    "Base",
    "Database",
    "Job",
    "LoginThrottle",
    "ModelVersion",
    "ProblemReport",
    "SchemaVersion",
    "Study",
    "User",
    "UserSession",
    "redact_url",
    "utcnow",
    "write_lock",
]

log = logging.getLogger(__name__)
#: the last ``schema_version`` row (revision 0003); Alembic's revision is the version since
SCHEMA_VERSION = 3

ROLES = ("clinician", "admin")
JOB_STATES = ("queued", "running", "done", "failed")
MODEL_STATES = ("candidate", "active", "retired")
PROBLEM_CATEGORIES = ("missed_tumor", "false_tumor", "liver_boundary", "other")
PROBLEM_STATES = ("open", "confirmed", "fixed", "rejected")


def utcnow() -> datetime:
    """Current time as naive UTC (the convention of every timestamp column)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class SchemaVersion(Base):
    """The schema versions of the releases before Alembic (1: 0.1.0, 2, 3: Alembic took over);
    kept so that those releases refuse a database migrated since (see migration 0003)."""

    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    """An account; ``role`` is ``clinician`` or ``admin``; the password is an argon2 hash."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserSession(Base):
    """A server-side login session; the cookie holds a token whose sha256 is ``token_hash``."""

    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class LoginThrottle(Base):
    """Failed-login counter and lockout for a key ``user:<name>`` or ``ip:<address>``."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ModelVersion(Base):
    """A model in the registry. At most one row has ``status='active'`` (partial unique index)."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # "shipped" | "registered"
    path: Mapped[str] = mapped_column(Text)  # shipped model name, or the stored checkpoint path
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    card: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (
        Index("uq_models_name_version", "name", "version", unique=True),
        Index(
            "uq_models_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


class Study(Base):
    """One uploaded CT and its results. ``id`` is a random hex string (never sequential)."""

    __tablename__ = "studies"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    input_kind: Mapped[str] = mapped_column(String(16))  # "nifti" | "dicom"
    input_name: Mapped[str] = mapped_column(String(64))  # stored file name inside the study folder
    input_sha256: Mapped[str] = mapped_column(String(64))
    input_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    liver_volume_ml: Mapped[float | None] = mapped_column(Float, nullable=True)
    tumor_volume_ml: Mapped[float | None] = mapped_column(Float, nullable=True)
    tumor_burden_percent: Mapped[float | None] = mapped_column(Float, nullable=True)
    lesion_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # identity (schema 2): DICOM tags, or the user's entries for NIfTI; pseudonyms when the
    # service runs with --deidentify (``deidentified``). Never patient names.
    patient_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    accession_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    study_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    series_description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    deidentified: Mapped[bool | None] = mapped_column(Boolean, nullable=True)

    def identity(self) -> dict[str, Any]:
        """The identity shown beside results and written into the reports."""
        return {
            "label": self.label,
            "patient_id": self.patient_id,
            "accession_number": self.accession_number,
            "study_date": self.study_date.isoformat() if self.study_date else None,
            "series_description": self.series_description,
            "deidentified": bool(self.deidentified),
        }


class Job(Base):
    """A durable segmentation job, claimed by a worker under a lease it renews by heartbeat."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    stage: Mapped[str] = mapped_column(String(64), default="queued")
    fraction: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings_s: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ProblemReport(Base):
    """A clinician's "report a problem" on a study; triaged by an admin."""

    __tablename__ = "problem_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    category: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    correction_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    triage_note: Mapped[str] = mapped_column(Text, default="")
    triaged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Append-only audit trail (no update/delete path; database triggers refuse both)."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    """ORM-level guard: audit rows may be added, never modified or deleted."""
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("audit_events is append-only")


class Database:
    """Engine + session factory for one database URL.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``).
        create: create a fresh database, check the schema revision of an existing one
            (:func:`liverseg.service.migrate.prepare`); ``False`` for ``liverseg db``.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        try:
            self.engine: Engine = _make_engine(url)
        except Exception as exc:  # bad URL, missing driver
            raise ConfigError(f"cannot use database URL {redact_url(url)!r}: {exc}") from exc
        self.dialect = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._request_sessions = sessionmaker(
            self.engine.execution_options(**{_READ_FIRST: True}), expire_on_commit=False
        )
        if create:
            self.create_schema()

    def create_schema(self) -> None:
        """Create a fresh database (every migration to the head) or check that this one is at the
        head; :class:`ConfigError` for an older (``liverseg db upgrade``) or a newer schema."""
        prepare(self.engine, redact_url(self.url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end of the block (rolled back on error); on SQLite each of
        its transactions holds the write lock from its start."""
        with _committing(self._sessions()) as s:
            yield s

    @contextmanager
    def request_session(self) -> Iterator[Session]:
        """A session for a web request: transactions start as reads and take the write lock only
        at their first write (see the module docstring); committed at the end of the block."""
        with _committing(self._request_sessions()) as s:
            yield s

    def new_session(self) -> Session:
        """A plain session (the caller commits and closes)."""
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _committing(s: Session) -> Iterator[Session]:
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


def write_lock(session: Session) -> None:
    """Make the session's current transaction a write transaction now.

    On SQLite a request session's read transaction is ended and ``BEGIN IMMEDIATE`` taken, so
    nothing read from here on can change before this transaction commits (call it before a
    read-modify-write, then re-read). Elsewhere (PostgreSQL, worker sessions) it does nothing:
    use ``SELECT ... FOR UPDATE`` or atomic ``UPDATE``s there.
    """
    conn = session.connection()
    if conn.dialect.name == "sqlite" and conn.info.get(_TX_KIND) == "read":
        _begin_write(conn)


def redact_url(url: str) -> str:
    """``url`` without its user and password (for messages and logs)."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


_READ_FIRST = "liverseg_read_first"  # execution option of request sessions
_TX_KIND = "liverseg_tx"  # connection info: "read" or "write" (SQLite)
_WRITE_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "SAVEPOINT"})


def _is_write(statement: str) -> bool:
    head = statement.lstrip()[:10].split(None, 1)
    return bool(head) and head[0].upper() in _WRITE_VERBS


def _begin_write(conn: Any) -> None:
    """End a read transaction that wrote nothing and begin ``IMMEDIATE`` (waits for the lock)."""
    dbapi = conn.connection.dbapi_connection
    dbapi.execute("COMMIT")
    dbapi.execute("BEGIN IMMEDIATE")
    conn.info[_TX_KIND] = "write"


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _guard_event_loop(engine: Engine) -> None:
    """Refuse database work of request sessions on a running event loop (a blocking call there
    stalls the whole web server, and with SQLite can deadlock it until the busy timeout)."""

    def check(conn: Any) -> None:
        if conn.get_execution_options().get(_READ_FIRST) and _on_event_loop():
            raise RuntimeError(
                "blocking database call on the event loop: run it in the threadpool "
                "(a plain `def` route or starlette.concurrency.run_in_threadpool)"
            )

    @event.listens_for(engine, "before_cursor_execute")
    def _before_execute(conn: Any, *_args: Any) -> None:
        check(conn)

    @event.listens_for(engine, "commit")
    def _before_commit(conn: Any) -> None:
        check(conn)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_file = make_url(url).database
        if db_file and db_file != ":memory:":
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        # one connection per busy thread of the web server (40) plus the workers' heartbeats
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=10,
            max_overflow=40,
            pool_timeout=60,
        )
        _guard_event_loop(engine)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy (not the driver) open transactions, so we choose how they begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get(_READ_FIRST):
                conn.exec_driver_sql("BEGIN")  # a read: never waits, never blocks a writer
                conn.info[_TX_KIND] = "read"
            else:
                # Take the write lock up front: two processes never deadlock upgrading a read lock.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                conn.info[_TX_KIND] = "write"

        @event.listens_for(engine, "before_cursor_execute")
        def _sqlite_upgrade(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if conn.info.get(_TX_KIND) == "read" and _is_write(statement):
                _begin_write(conn)

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=60)
    _guard_event_loop(engine)
    return engine
