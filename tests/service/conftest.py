"""Fixtures of the service tests: a database per test (SQLite, and PostgreSQL when
``LIVERSEG_TEST_PG_URL`` is set), an app with three accounts, logged-in test clients, and an
in-process worker running the fake segmenter."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # svc_fakes must also be importable by worker subprocesses
    sys.path.insert(0, str(HERE))

from fastapi.testclient import TestClient  # noqa: E402

from liverseg.service import auth as auth_mod  # noqa: E402
from liverseg.service.app import create_app  # noqa: E402
from liverseg.service.config import ServiceConfig, UploadLimits  # noqa: E402
from liverseg.service.db import Database  # noqa: E402
from liverseg.service.jobs import Worker  # noqa: E402

PG_ENV = "LIVERSEG_TEST_PG_URL"
from svc_fakes import PASSWORDS, upload, write_ct  # noqa: E402

FAKE = "svc_fakes:fake_segmenter"
FAKE_GATE = "svc_fakes:fake_gate"


@pytest.fixture(autouse=True)
def _fast_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters in-process (still argon2id; the served app uses the defaults)."""
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(auth_mod, "_hasher", fast)
    monkeypatch.setattr(auth_mod, "_DUMMY_HASH", fast.hash("dummy-password"))


@pytest.fixture(autouse=True)
def _no_shipped_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process app tests start with an empty registry, whatever the installation ships
    (tests that need shipped models patch ``list_shipped_models`` themselves)."""
    monkeypatch.setattr("liverseg.catalog.list_shipped_models", lambda: [])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new schema on the PostgreSQL test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI") == "true":  # .ci/run starts PostgreSQL: a silent skip there hides a broken CI
            pytest.fail(f"{PG_ENV} is not set in CI (.ci/run should start PostgreSQL and export it)")
        pytest.skip(f"{PG_ENV} not set (PostgreSQL tests need a server URL)")
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@dataclass
class Service:
    """An app on a temporary data dir with accounts admin (admin), alice and bob (clinicians)."""

    config: ServiceConfig
    database: Database
    app: Any
    clients: list[TestClient] = field(default_factory=list)

    def client(self, name: str | None = None) -> TestClient:
        """A TestClient, logged in as ``name`` (CSRF header preset) unless ``None``."""
        c = TestClient(self.app)
        self.clients.append(c)
        if name is not None:
            r = c.post("/api/login", json={"name": name, "password": PASSWORDS[name]})
            assert r.status_code == 200, r.text
            c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    def worker(self, segmenter: str = FAKE, **kw: Any) -> Worker:
        cfg = ServiceConfig(**{**self.config.__dict__, "segmenter": segmenter, **kw})
        return Worker(self.database, cfg, worker_id=f"test-{uuid.uuid4().hex[:6]}")

    def run_jobs(self, segmenter: str = FAKE) -> int:
        """Run queued jobs in-process until the queue is empty; returns how many ran."""
        w, n = self.worker(segmenter), 0
        while w.run_once():
            n += 1
        return n


def make_service(tmp_path: Path, db_url: str, **cfg: Any) -> Service:
    cfg.setdefault("gate", FAKE_GATE)
    cfg.setdefault("allowed_hosts", ("testserver", "localhost", "127.0.0.1"))  # TestClient's Host: testserver
    config = ServiceConfig(data_dir=tmp_path / "data", db_url=db_url, lease_s=2.0, segmenter=FAKE, **cfg)
    database = Database(config.database_url)
    with database.session() as s:
        for name, pw in PASSWORDS.items():
            auth_mod.add_user(s, name, pw, "admin" if name == "admin" else "clinician")
    return Service(config, database, create_app(config, database))


@pytest.fixture
def svc(tmp_path: Path, db_url: str) -> Iterator[Service]:
    service = make_service(
        tmp_path,
        db_url,
        limits=UploadLimits(
            max_upload_bytes=8 * 1024**2,
            max_uncompressed_bytes=64 * 1024**2,
            max_zip_files=50,
            max_label_bytes=4 * 1024**2,
        ),
    )
    yield service
    for c in service.clients:
        c.close()
    service.database.dispose()


@pytest.fixture
def ct_file(tmp_path: Path) -> Path:
    return write_ct(tmp_path / "ct.nii.gz")


@pytest.fixture
def done_study(svc: Service, ct_file: Path) -> str:
    """Id of a finished study of alice's (fake segmentation)."""
    r = upload(svc.client("alice"), ct_file)
    assert r.status_code == 202, r.text
    assert svc.run_jobs() == 1
    return r.json()["id"]


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[Any]:
    """``make(**config)``: a :class:`Service` on SQLite with extra settings (e.g. ``pacs=``)."""
    made: list[Service] = []

    def make(**cfg: Any) -> Service:
        made.append(make_service(tmp_path, f"sqlite:///{tmp_path / 'svc.db'}", **cfg))
        return made[-1]

    yield make
    for service in made:
        for c in service.clients:
            c.close()
        service.database.dispose()
