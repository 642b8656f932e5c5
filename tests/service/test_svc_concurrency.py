"""Concurrent clinicians against a real ``liverseg serve`` (uvicorn, worker processes) on SQLite
and on PostgreSQL: uploads while others scroll the viewer, with the health check polled.

Before the database work left the event loop, 8 simultaneous uploads on SQLite gave 500s
("database is locked"), orphan study folders and a silent /healthz for minutes.
"""

from __future__ import annotations

import socket
import stat
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select
from svc_fakes import PASSWORDS, running_server, write_ct

from liverseg.service import auth as auth_mod
from liverseg.service.config import ServiceConfig
from liverseg.service.db import AuditEvent, Database, Job, Study

UPLOADERS, UPLOADS_EACH, VIEWERS = 8, 2, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, db_url: str):
    """``python -m liverseg.cli.serve`` with 2 workers running the fake segmenter (SQLite: the
    default database file in the data dir)."""
    data = tmp_path / "data"
    sqlite = db_url.startswith("sqlite")
    if sqlite:
        db_url = ServiceConfig(data_dir=data).database_url
    db = Database(db_url)
    with db.session() as s:
        for name in ("alice", "bob", "admin"):
            auth_mod.add_user(s, name, PASSWORDS[name], "admin" if name == "admin" else "clinician")
    port = _free_port()
    cmd = [sys.executable, "-m", "liverseg.cli.serve", "--port", str(port), "--data-dir", str(data)]
    cmd += ["--workers", "2", "--segmenter", "svc_fakes:fake_segmenter"] + (
        [] if sqlite else ["--db", db_url]
    )
    try:
        with running_server(cmd, port, tmp_path / "server.log", 90) as url:
            yield url, data, db
    finally:
        db.dispose()


def _client(url: str, name: str) -> httpx.Client:
    c = httpx.Client(base_url=url, timeout=120)
    r = c.post("/api/login", json={"name": name, "password": PASSWORDS[name]})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def _upload(c: httpx.Client, data: bytes, label: str) -> httpx.Response:
    headers = {"Content-Type": "application/octet-stream", "X-Study-Label": quote(label)}
    return c.post("/api/studies", content=data, headers=headers)


def _wait(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_concurrent_uploads_while_others_view(server, tmp_path):
    url, data, db = server
    _forged_forwarded_for_and_foreign_hosts_are_refused(url, db)
    ct = write_ct(tmp_path / "ct.nii.gz", shape=(24, 64, 64)).read_bytes()
    first = _client(url, "alice")
    done = _upload(first, ct, "baseline").json()["id"]
    _wait(lambda: first.get(f"/api/studies/{done}").json()["status"] == "done", 60, "the first study")

    stop = threading.Event()
    statuses: list[int] = []
    health_s: list[float] = []
    lock = threading.Lock()
    uploads: list[httpx.Response] = []

    def uploader(k: int) -> None:
        c = _client(url, "alice" if k % 2 else "bob")
        for j in range(UPLOADS_EACH):
            r = _upload(c, ct, f"u{k}-{j}")
            with lock:
                uploads.append(r)

    def viewer() -> None:
        c = _client(url, "alice")
        k = 0
        while not stop.is_set():
            for kind in ("viewer", "volumes/labels.nii", "volumes/ct.nii") if k % 4 == 0 else ("viewer",):
                r = c.get(f"/api/studies/{done}/{kind}")
                with lock:
                    statuses.append(r.status_code)
            k += 1

    def health() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            r = httpx.get(f"{url}/healthz", timeout=60)
            with lock:
                health_s.append(time.monotonic() - t0)
                statuses.append(r.status_code)
            time.sleep(0.2)

    background = [threading.Thread(target=viewer) for _ in range(VIEWERS)] + [threading.Thread(target=health)]
    threads = [threading.Thread(target=uploader, args=(k,)) for k in range(UPLOADERS)]
    for t in background + threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    for t in background:
        t.join(60)

    assert [r.status_code for r in uploads] == [202] * (UPLOADERS * UPLOADS_EACH), [r.text for r in uploads]
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert max(health_s) < 10, f"/healthz took up to {max(health_s):.1f} s"
    ids = {r.json()["id"] for r in uploads} | {done}

    def all_done() -> bool:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) == len(ids)

    _wait(all_done, 120, "every job to finish")
    with db.session() as s:
        assert set(s.scalars(select(Study.id))) == ids
        uploads_audited = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "upload")
        )
        assert uploads_audited == len(ids)
    assert {p.name for p in (data / "studies").iterdir()} == ids  # no orphan folder
    assert list((data / "incoming").iterdir()) == []
    _check_private(data)


def _check_private(data: Path) -> None:
    """Every folder 0700, every file 0600 (the database file included when it is SQLite)."""
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert any(p.name == "labels.nii.gz" for p in data.rglob("*"))  # outputs were checked too


def _forged_forwarded_for_and_foreign_hosts_are_refused(url: str, db: Database) -> None:
    """`liverseg serve` defaults: X-Forwarded-For believed from nobody, only local Host names."""
    with httpx.Client(base_url=url, timeout=60) as c:
        forged = {"X-Forwarded-For": "6.6.6.6"}
        r = c.post("/api/login", json={"name": "alice", "password": "wrong-password"}, headers=forged)
        assert r.status_code == 401
        assert c.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    with db.session() as s:
        ips = s.scalars(select(AuditEvent.ip).where(AuditEvent.action == "login_failed")).all()
    assert ips == ["127.0.0.1"]
