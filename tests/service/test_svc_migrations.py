"""Alembic migrations: a database made by liverseg 0.1.0 (its frozen DDL in fixtures/) is refused
by the service, upgraded by ``liverseg db upgrade`` with its rows kept, and then has exactly the
schema of the current models (so a model change without a migration fails here); fresh databases
are made by the same migrations; a newer one is refused. SQLite, and PostgreSQL when
``LIVERSEG_TEST_PG_URL`` is set (the ``db_url`` fixture)."""

from __future__ import annotations

import fnmatch
import importlib.resources
from pathlib import Path

import pytest
import tomllib
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import DatabaseError

from liverseg.cli.main import main
from liverseg.errors import ConfigError
from liverseg.service.db import SCHEMA_VERSION, AuditEvent, Base, Database, Study, User
from liverseg.service.migrate import head_revision, schema_state

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
IDENTITY = {"patient_id", "accession_number", "study_date", "series_description", "deidentified"}

ROWS_0_1_0 = [
    "INSERT INTO users (id, name, password_hash, role, disabled, created_at) VALUES "
    "(1, 'admin', '$argon2id$x', 'admin', false, '2026-11-26 12:00:00'), "
    "(2, 'alice', '$argon2id$y', 'clinician', false, '2026-11-26 12:00:00')",
    "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES "
    "('" + "a" * 64 + "', 2, 'csrf', '2026-11-26 12:00:00', '2099-01-01 00:00:00')",
    "INSERT INTO models (id, name, version, source, path, status, card, metrics, info, sha256, created_at) "
    "VALUES (1, 'liver-cascade', '0.1.0', 'shipped', 'liver-cascade', 'active', '', '{}', '{}', NULL, "
    "'2026-11-26 12:00:00')",
    "INSERT INTO studies (id, owner_id, label, input_kind, input_name, input_sha256, input_bytes, status, "
    "model_id, model_name, model_version, liver_volume_ml, tumor_volume_ml, tumor_burden_percent, "
    "lesion_count, error, created_at, finished_at) VALUES ('" + "b" * 32 + "', 2, 'CT 1', 'nifti', "
    "'input.nii.gz', '" + "c" * 64 + "', 1234, 'done', 1, 'liver-cascade', '0.1.0', 1450.5, 3.25, 0.22, "
    "2, NULL, '2026-11-26 12:05:00', '2026-11-26 12:06:00')",
    "INSERT INTO jobs (id, study_id, status, stage, fraction, attempts, model_id, timings_s, created_at) "
    "VALUES (1, '" + "b" * 32 + "', 'done', 'done', 1.0, 1, 1, '{\"total\": 60.0}', '2026-11-26 12:05:00')",
    "INSERT INTO problem_reports (id, study_id, user_id, category, comment, status, triage_note, "
    "created_at, updated_at) VALUES (1, '" + "b" * 32 + "', 2, 'missed_tumor', 'segment 7', 'open', '', "
    "'2026-11-26 12:10:00', '2026-11-26 12:10:00')",
    "INSERT INTO audit_events (id, at, user_name, action, target, ip, detail) VALUES "
    "(1, '2026-11-26 12:05:00', 'alice', 'study.upload', 'bbb', '127.0.0.1', '{}')",
]


def _make_0_1_0_database(url: str) -> None:
    """The database liverseg 0.1.0 made (frozen DDL of fixtures/), with one row in every table."""
    engine = create_engine(url)
    ddl = (FIXTURES / f"liverseg_0_1_0.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    statements = [s.strip() for s in ddl.split(";\n")]
    with engine.begin() as conn:
        for stmt in statements:
            body = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
            if body:
                conn.exec_driver_sql(body)
        for row in ROWS_0_1_0:
            conn.exec_driver_sql(row)
    engine.dispose()


def _schema_differences(db: Database) -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)


def test_a_0_1_0_database_is_refused_then_upgraded_with_its_rows(db_url, capsys):
    _make_0_1_0_database(db_url)
    with pytest.raises(ConfigError, match=r"back it up, then run `liverseg db upgrade`"):
        Database(db_url)
    assert main(["db", "current", "--db", db_url]) == 0
    assert "older, revision 0001 (liverseg before Alembic)" in capsys.readouterr().out

    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert f"upgraded from 0001 to {head_revision()}" in capsys.readouterr().out
    db = Database(db_url)  # now accepted
    try:
        assert _schema_differences(db) == []
        assert {c["name"] for c in inspect(db.engine).get_columns("studies")} >= IDENTITY
        with db.session() as s:
            assert s.scalars(select(User.name).order_by(User.id)).all() == ["admin", "alice"]
            study = s.scalar(select(Study))
            assert (study.label, study.liver_volume_ml, study.lesion_count) == ("CT 1", 1450.5, 2)
            assert study.patient_id is None and study.identity()["deidentified"] is False
            assert s.scalar(select(AuditEvent.action)) == "study.upload"
            versions = s.execute(text("SELECT version FROM schema_version ORDER BY version")).scalars()
            assert list(versions) == [1, 2, SCHEMA_VERSION]
        with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))  # the 0.1.0 trigger still guards it
    finally:
        db.dispose()
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_fresh_database_is_made_by_the_migrations_and_equals_the_models(db_url):
    db = Database(db_url)
    try:
        state = schema_state(db.engine)
        assert (state.kind, state.revision, state.legacy) == ("current", head_revision(), False)
        assert _schema_differences(db) == []
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() == SCHEMA_VERSION
    finally:
        db.dispose()
    Database(db_url).dispose()  # reopening changes nothing


def test_a_database_of_an_unknown_newer_revision_is_refused(db_url, capsys):
    Database(db_url).dispose()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="migrated by a newer liverseg; upgrade liverseg"):
        Database(db_url)
    assert main(["db", "upgrade", "--db", db_url]) == 1
    assert "upgrade liverseg instead" in capsys.readouterr().err


def test_a_database_of_another_application_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)"))
    engine.dispose()
    with pytest.raises(ConfigError, match="no known schema version"):
        Database(url)


def test_db_upgrade_names_a_missing_data_dir_database(tmp_path, capsys):
    assert main(["db", "upgrade", "--data-dir", str(tmp_path / "nowhere")]) == 1
    assert "no database in" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_the_migrations_ship_inside_the_package():
    root = importlib.resources.files("liverseg.service.migrations")
    names = {p.name for p in root.iterdir()}
    assert {"env.py", "script.py.mako", "versions"} <= names
    revisions = sorted(p.name for p in root.joinpath("versions").iterdir() if p.name[:4].isdigit())
    assert revisions[0].startswith("0001_") and revisions[-1].startswith(head_revision())
    # a non-editable install copies Python files of packages and the package-data patterns only
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch("service/migrations/script.py.mako", pat) for pat in data["liverseg"])
    assert root.joinpath("versions", "__init__.py").is_file()  # versions/ is a package: its files ship
