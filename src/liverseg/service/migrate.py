"""Schema migrations of the service database (Alembic; revisions in ``service/migrations``).

One path for every database:

* a **fresh** database (none of liverseg's tables) is created by running every revision, from
  the 0.1.0 baseline to the head, when the service, a worker or ``liverseg users`` opens it;
* a database **at the head** is used as it is;
* an **older** one (an earlier revision, or a database of liverseg 0.1.0, which had only the
  ``schema_version`` table) is refused with a message asking the administrator to back it up and
  run ``liverseg db upgrade``: the service never changes the schema of a database with data in it
  behind the administrator's back;
* a **newer** one (a revision this liverseg does not know) is refused: upgrade liverseg.

Every migration runs in one transaction (SQLite and PostgreSQL both have transactional DDL),
under a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so two processes
starting at once never both create the schema.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine

from liverseg.errors import ConfigError

__all__ = ["MIGRATIONS_DIR", "SchemaState", "head_revision", "prepare", "schema_state", "upgrade"]

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
#: ``schema_version`` of the releases before Alembic -> the revision with that schema
LEGACY_REVISIONS = {1: "0001", 2: "0002"}
#: every table a liverseg database may hold (a database without any of them is fresh)
_OWN_TABLES = frozenset(
    {
        "alembic_version",
        "schema_version",
        "users",
        "sessions",
        "login_throttle",
        "models",
        "studies",
        "jobs",
        "problem_reports",
        "audit_events",
    }
)
_PG_LOCK_KEY = 0x6C69766572736567  # "liverseg": serialises migrations of one PostgreSQL database


@dataclass(frozen=True)
class SchemaState:
    """Where a database stands: ``kind`` is ``fresh``, ``current``, ``older``, ``newer`` or
    ``unknown`` (tables but no version); ``revision`` the Alembic revision (a legacy database:
    the revision its ``schema_version`` corresponds to), ``legacy`` true before Alembic."""

    kind: str
    revision: str | None
    head: str
    legacy: bool = False

    def describe(self) -> str:
        if self.kind == "fresh":
            return f"empty (this liverseg creates revision {self.head})"
        where = f"revision {self.revision}" + (" (liverseg before Alembic)" if self.legacy else "")
        return f"{where}; this liverseg's head is {self.head}"


@functools.lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS_DIR))


def head_revision() -> str:
    """The newest revision shipped with this liverseg."""
    head = _script().get_current_head()
    assert head is not None  # the baseline always exists
    return head


def _alembic_config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def _state(conn: Connection) -> SchemaState:
    head = head_revision()
    tables = set(inspect(conn).get_table_names()) & _OWN_TABLES
    if not tables:
        return SchemaState("fresh", None, head)
    if "alembic_version" in tables:
        revision = MigrationContext.configure(conn).get_current_revision()
        legacy = False
    elif "schema_version" in tables:
        found = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
        revision = LEGACY_REVISIONS.get(int(found)) if found is not None else None
        if revision is None:
            return SchemaState("unknown", None, head, legacy=True)
        legacy = True
    else:
        return SchemaState("unknown", None, head)
    if revision is None:
        return SchemaState("unknown", None, head, legacy)
    if revision == head:
        return SchemaState("current", revision, head, legacy)
    try:
        known = _script().get_revision(revision) is not None
    except CommandError:  # a revision id this liverseg does not ship
        known = False
    return SchemaState("older" if known else "newer", revision, head, legacy)


def _lock(conn: Connection) -> None:
    """Serialise schema work on one database (SQLite: the engine begins ``IMMEDIATE``)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def schema_state(engine: Engine) -> SchemaState:
    """Where the database behind ``engine`` stands (reads only)."""
    with engine.connect() as conn:
        return _state(conn)


def prepare(engine: Engine, shown_url: str) -> SchemaState:
    """Make a fresh database (every revision to the head) or check that an existing one is at the
    head; raise :class:`ConfigError` for an older (``liverseg db upgrade``) or newer one."""
    with engine.begin() as conn:
        _lock(conn)
        state = _state(conn)
        if state.kind == "fresh":
            command.upgrade(_alembic_config(conn), "head")
            log.info("created the database schema (revision %s)", state.head)
            return SchemaState("current", state.head, state.head)
    if state.kind == "current":
        return state
    if state.kind == "older":
        raise ConfigError(
            f"the database {shown_url} is at {state.describe()}: back it up, then run "
            f"`liverseg db upgrade` with the same --data-dir/--db (docs/service.md, 'Upgrading')"
        )
    if state.kind == "newer":
        raise ConfigError(
            f"the database {shown_url} is at {state.describe()}: it was migrated by a newer "
            f"liverseg; upgrade liverseg"
        )
    raise ConfigError(
        f"the database {shown_url} has liverseg tables but no known schema version "
        f"(tables of another application, or a damaged database); expected an empty database "
        f"or one made by liverseg"
    )


def upgrade(engine: Engine, shown_url: str) -> tuple[SchemaState, SchemaState]:
    """Migrate the database to the head (a fresh one is created); ``(before, after)``.

    A database of a liverseg before Alembic is first stamped with the revision its
    ``schema_version`` names. The whole upgrade is one transaction: it applies completely or not
    at all.
    """
    with engine.begin() as conn:
        _lock(conn)
        before = _state(conn)
        if before.kind == "newer":
            raise ConfigError(
                f"the database {shown_url} is at {before.describe()}: it was migrated by a newer "
                f"liverseg; upgrade liverseg instead"
            )
        if before.kind == "unknown":
            raise ConfigError(
                f"the database {shown_url} has liverseg tables but no known schema version: not upgraded"
            )
        cfg = _alembic_config(conn)
        if before.legacy and before.revision is not None:
            command.stamp(cfg, before.revision)
        if before.kind != "current":
            command.upgrade(cfg, "head")
        after = _state(conn)
    log.info("database %s: %s -> %s", shown_url, before.revision or "empty", after.revision)
    return before, after
