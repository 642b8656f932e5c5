"""Data-level hardening: no orphan study folders, private permissions, the patient-data access log,
user names and passwords, header-first label checks, and database locking that never stalls."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import stat
import threading
import time
import uuid

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from svc_fakes import PASSWORDS, upload

from liverseg.errors import InputError
from liverseg.service import auth as auth_mod
from liverseg.service.app import create_app
from liverseg.service.db import AuditEvent, LoginThrottle, Study, User


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _studies_on_disk(svc) -> list[str]:
    return sorted(p.name for p in (svc.config.data_dir / "studies").iterdir())


# ----------------------------------------------------------------------------- orphans
def test_failed_registration_leaves_no_study_folder(svc, ct_file, monkeypatch):
    from liverseg.service import routes_studies

    def broken_enqueue(*_a, **_k):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(routes_studies, "enqueue", broken_enqueue)
    c = TestClient(svc.app, raise_server_exceptions=False)
    svc.clients.append(c)
    r = c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]})
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    assert upload(c, ct_file).status_code == 500
    assert _studies_on_disk(svc) == [] and list((svc.config.data_dir / "incoming").iterdir()) == []
    with svc.database.session() as s:
        assert s.scalar(select(func.count()).select_from(Study)) == 0


def test_orphans_are_swept_at_start(svc, ct_file):
    kept = upload(svc.client("alice"), ct_file).json()["id"]
    root = svc.config.data_dir
    old = time.time() - 2 * svc.config.orphan_grace_s
    orphans = []
    for parent in ("studies", "incoming"):
        folder = root / parent / uuid.uuid4().hex
        folder.mkdir()
        (folder / "input.nii.gz").write_bytes(b"partial")
        for p in (folder / "input.nii.gz", folder):
            os.utime(p, (old, old))
        orphans.append(folder)
    young = root / "studies" / uuid.uuid4().hex  # may be being published by another process
    young.mkdir()
    create_app(svc.config, svc.database)
    assert not any(p.exists() for p in orphans)
    assert _studies_on_disk(svc) == sorted([kept, young.name])


# ----------------------------------------------------------------------------- permissions
def test_patient_data_is_private(svc, ct_file):
    sid = upload(svc.client("alice"), ct_file).json()["id"]
    root = svc.config.data_dir
    for folder in (root, root / "studies", root / "incoming", root / "studies" / sid):
        assert _mode(folder) == 0o700, folder
    assert _mode(root / "studies" / sid / "input.nii.gz") == 0o600


def test_an_older_world_readable_data_dir_is_fixed_at_start(svc, ct_file):
    sid = upload(svc.client("alice"), ct_file).json()["id"]
    root = svc.config.data_dir
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    create_app(svc.config, svc.database)
    for path in [root, *root.rglob("*")]:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert (root / "studies" / sid / "input.nii.gz").exists()


# ----------------------------------------------------------------------------- access log
def _views(svc) -> list[tuple[str, str]]:
    with svc.database.session() as s:
        q = select(AuditEvent).where(AuditEvent.action == "study_view").order_by(AuditEvent.id)
        return [(e.user_name, e.target) for e in s.scalars(q)]


def test_one_access_log_event_per_study_view_not_per_slice(svc, done_study, ct_file):
    c = svc.client("alice")
    assert c.get(f"/studies/{done_study}").status_code == 200
    assert c.get(f"/api/studies/{done_study}").status_code == 200
    assert c.get(f"/api/studies/{done_study}/viewer").status_code == 200
    assert c.get(f"/api/studies/{done_study}/report").status_code == 200
    for _ in range(5):  # the viewer's volume downloads (a re-opened viewer) are part of the view
        assert c.get(f"/api/studies/{done_study}/volumes/ct.nii").status_code == 200
        assert c.get(f"/api/studies/{done_study}/volumes/labels.nii").status_code == 200
    assert _views(svc) == [("alice", f"study:{done_study}")]
    with svc.database.session() as s:
        via = s.scalar(select(AuditEvent.detail).where(AuditEvent.action == "study_view"))
    assert via == {"via": "/studies/{study_id}"}
    svc.client("admin").get(f"/api/studies/{done_study}/volumes/labels.nii")  # another user
    other = upload(c, ct_file).json()["id"]
    c.get(f"/api/studies/{other}")  # another study
    assert _views(svc)[1:] == [("admin", f"study:{done_study}"), ("alice", f"study:{other}")]
    svc.client("bob").get(f"/api/studies/{done_study}")  # not bob's study: 404, no view
    assert len(_views(svc)) == 3


# ----------------------------------------------------------------------------- accounts
def test_user_names_are_normalised_and_unique_ignoring_case(svc):
    with svc.database.session() as s:
        user = auth_mod.add_user(s, "  Carol.Smith\n", "carol-password-1", "clinician")
        assert user.name == "carol.smith"
    for look_alike in ("carol.smith", "CAROL.SMITH", "carol.smith\n", " Carol.Smith"):
        with svc.database.session() as s, pytest.raises(InputError, match="already exists"):
            auth_mod.add_user(s, look_alike, "carol-password-2", "clinician")
    for bad in ("car\x00ol", "car ol", "carol\tx", "c", "c" * 65, "cärol"):
        with svc.database.session() as s, pytest.raises(InputError, match="user name"):
            auth_mod.add_user(s, bad, "carol-password-2", "clinician")
    c = svc.client()
    r = c.post("/api/login", json={"name": " CAROL.smith ", "password": "carol-password-1"})
    assert r.status_code == 200 and r.json()["name"] == "carol.smith"


def test_throttling_cannot_be_dodged_by_letter_case(svc):
    c = svc.client()
    for name in ("Alice", "ALICE", "alice ", "aLiCe", "alice"):
        c.post("/api/login", json={"name": name, "password": "wrong-password"})
    with svc.database.session() as s:
        row = s.get(LoginThrottle, "user:alice")
        assert row is not None and row.failures == 5 and row.locked_until is not None


@pytest.mark.parametrize(
    "password, why",
    [
        ("aaaaaaaaaaaa", "different characters"),
        ("abababababab", "different characters"),
        ("0123456789", "straight run"),
        ("9876543210", "straight run"),
        ("dave123456", "user name"),
        ("DAVE!!!!2024", "user name"),
        ("Password123!", "most common"),
        ("qwertyuiop", "most common"),
        ("short-1", "at least 10"),
        ("new\nline-password", "control"),
    ],
)
def test_weak_passwords_are_refused(svc, password, why):
    with svc.database.session() as s, pytest.raises(InputError, match=why):
        auth_mod.add_user(s, "dave", password, "clinician")


def test_reasonable_passwords_are_accepted(svc):
    with svc.database.session() as s:
        for k, password in enumerate(("correct horse battery", "dave-password-12", "Tr0ub4dor&3x")):
            auth_mod.add_user(s, f"dave{k}", password, "clinician")
        assert s.scalar(select(func.count()).select_from(User)) == 3 + 3


# ----------------------------------------------------------------------------- label bombs
def test_corrected_label_map_is_checked_from_its_header_first(svc, done_study, tmp_path, monkeypatch):
    """A ~1 MB gzip announcing a 1024^3 label map is refused without decoding a voxel."""
    from liverseg.service import volumes

    def no_decoding(*_a, **_k):
        raise AssertionError("the label map was decoded before its header was checked")

    monkeypatch.setattr(volumes, "read_label_volume", no_decoding)
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((1024, 1024, 1024))
    hdr.set_data_dtype(np.uint8)
    hdr["vox_offset"] = 352
    member = gzip.compress(bytes(64 * 1024**2), compresslevel=9)
    bomb = gzip.compress(hdr.binaryblock + b"\0" * 4) + member * 16
    assert len(bomb) < svc.config.limits.max_label_bytes
    c = svc.client("alice")
    files = {"correction": ("fix.nii.gz", bomb, "application/gzip")}
    r = c.post(f"/api/studies/{done_study}/problems", data={"category": "other"}, files=files)
    assert r.status_code == 422 and "(1024, 1024, 1024)" in r.json()["detail"], r.text
    assert sorted(p.name for p in (svc.config.data_dir / "corrections").iterdir()) == []


# ----------------------------------------------------------------------------- database locking
def test_request_sessions_refuse_to_run_on_the_event_loop(svc):
    async def blocking_route_body() -> None:
        with svc.database.request_session() as s:
            s.execute(text("SELECT 1"))

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(blocking_route_body())


def _in_thread(fn, timeout: float):
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return t.is_alive(), out


def test_readers_never_wait_for_a_writer_and_writers_wait_instead_of_failing(svc, done_study):
    c = svc.client("alice")
    c.get(f"/api/studies/{done_study}")  # its view is logged now: the next reads write nothing
    holder = svc.database.new_session()
    try:
        holder.execute(text("UPDATE studies SET label = label"))  # holds the write lock (SQLite)
        stuck, out = _in_thread(lambda: c.get(f"/api/studies/{done_study}/volumes/labels.nii"), 10)
        assert not stuck and out["value"].status_code == 200, out
        release = threading.Timer(1.0, holder.commit)
        release.start()
        t0 = time.monotonic()
        stuck, out = _in_thread(
            lambda: svc.client().post("/api/login", json={"name": "bob", "password": "wrong-password"}), 30
        )
        release.join()
        assert not stuck and out["value"].status_code == 401, out
        assert time.monotonic() - t0 < 20
    finally:
        holder.close()


def test_concurrent_failed_logins_all_count(svc):
    """Reads no longer serialise on the write lock, so the failure count must be atomic."""
    clients = [svc.client() for _ in range(svc.config.throttle_free_failures - 1)]
    barrier = threading.Barrier(len(clients))

    def fail(c) -> None:
        barrier.wait()
        c.post("/api/login", json={"name": "bob", "password": "wrong-password"})

    threads = [threading.Thread(target=fail, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with svc.database.session() as s:
        assert s.get(LoginThrottle, "user:bob").failures == len(clients)


def test_what_a_response_reports_is_committed_before_it_is_sent(svc):
    """Log in through ASGI and count the stored sessions the moment the response starts: a client
    acting at once on the response (e.g. uploading) must find its session."""
    seen: list[int] = []

    def count_sessions() -> None:
        reader = svc.database.engine.execution_options(liverseg_read_first=True)
        with reader.connect() as conn:  # a plain read: never waits for a writer
            seen.append(conn.execute(text("SELECT count(*) FROM sessions")).scalar_one())

    body = json.dumps({"name": "alice", "password": PASSWORDS["alice"]}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/login",
        "raw_path": b"/api/login",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200
            t = threading.Thread(target=count_sessions)  # off the event loop, like another client
            t.start()
            t.join(30)

    asyncio.run(svc.app(scope, receive, send))
    assert seen == [1]
