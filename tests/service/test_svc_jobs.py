"""Durable jobs: atomic claims, leases, resume after a killed worker, failures, concurrency."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import timedelta

from sqlalchemy import func, select, update
from svc_fakes import subprocess_env, upload, write_ct

from liverseg.service.config import ServiceConfig
from liverseg.service.db import AuditEvent, Job, Study, utcnow
from liverseg.service.jobs import claim_job
from liverseg.service.worker import DB_URL_ENV, worker_command

SLOW = "svc_fakes:slow_fake_segmenter"


def _wait(predicate, timeout: float, what: str, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _job(svc, study_id) -> Job:
    with svc.database.session() as s:
        return s.scalar(select(Job).where(Job.study_id == study_id))


def _start_worker(svc, segmenter: str, lease_s: float, env) -> subprocess.Popen:
    cfg = ServiceConfig(**{**svc.config.__dict__, "segmenter": segmenter, "lease_s": lease_s})
    env = {**env, DB_URL_ENV: cfg.database_url}
    return subprocess.Popen(
        worker_command(cfg, poll_s=0.2),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_claim_is_exclusive(svc, ct_file):
    c = svc.client("alice")
    ids = [upload(c, ct_file).json()["id"] for _ in range(2)]
    a = claim_job(svc.database, "A", 30)
    b = claim_job(svc.database, "B", 30)
    assert a is not None and b is not None and a != b
    assert claim_job(svc.database, "C", 30) is None
    with svc.database.session() as s:
        owners = {j.study_id: j.lease_owner for j in s.scalars(select(Job))}
    assert sorted(owners.values()) == ["A", "B"] and set(owners) == set(ids)


def test_expired_lease_is_resumed_and_attempts_are_bounded(svc, ct_file):
    c = svc.client("alice")
    sid = upload(c, ct_file).json()["id"]
    assert claim_job(svc.database, "dead-worker", 30) is not None
    assert svc.run_jobs() == 0  # lease still valid: nobody else takes it
    with svc.database.session() as s:
        s.execute(update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert svc.run_jobs() == 1
    job = _job(svc, sid)
    assert (job.status, job.attempts, job.stage, job.fraction) == ("done", 2, "done", 1.0)
    assert c.get(f"/api/studies/{sid}").json()["status"] == "done"
    # a job whose workers keep dying is failed with the reason after max_attempts
    sid2 = upload(c, ct_file).json()["id"]
    for _ in range(svc.config.max_attempts):
        assert claim_job(svc.database, "dying", 30) is not None
        with svc.database.session() as s:
            s.execute(
                update(Job)
                .where(Job.study_id == sid2)
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
    assert svc.run_jobs() == 1
    s2 = c.get(f"/api/studies/{sid2}").json()
    assert s2["status"] == "failed" and "gave up after 3 attempts" in s2["error"]


def test_failing_job_records_reason_and_worker_survives(svc, ct_file):
    c = svc.client("alice")
    bad = upload(c, ct_file).json()["id"]
    w = svc.worker("svc_fakes:failing_segmenter")
    assert w.run_once()
    good = upload(c, ct_file).json()["id"]
    w.segmenter = svc.worker().segmenter
    assert w.run_once()
    assert _job(svc, bad).status == "failed" and "simulated crash" in _job(svc, bad).error
    assert _job(svc, good).status == "done"
    stats = svc.client("admin").get("/api/admin/monitoring").json()
    assert [f["study_id"] for f in stats["failures"]] == [bad]


def test_killed_worker_job_resumes_after_restart(svc, ct_file):
    c = svc.client("alice")
    sid = upload(c, ct_file).json()["id"]
    first = _start_worker(svc, SLOW, 2.0, subprocess_env())
    try:
        running = _wait(
            lambda: (
                (j := _job(svc, sid)).status == "running" and j.stage == "segment" and j.fraction > 0 and j
            ),
            60,
            "the job to make progress",
            first,
        )
        assert 0 < running.fraction < 1 and running.attempts == 1
        assert c.get(f"/api/studies/{sid}").json()["stage"] == "segment"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert _job(svc, sid).status == "running"  # orphaned: its lease runs out
    second = _start_worker(svc, "svc_fakes:fake_segmenter", 2.0, subprocess_env())
    try:
        done = _wait(lambda: (j := _job(svc, sid)).status == "done" and j, 60, "the resumed job", second)
    finally:
        second.terminate()
        second.wait(30)
    assert done.attempts == 2 and done.lease_owner is None
    s = c.get(f"/api/studies/{sid}").json()
    assert s["status"] == "done" and s["lesion_count"] == 2 and "labels.nii.gz" in s["downloads"]


def test_eight_concurrent_uploads_all_complete(svc, ct_file):
    clients = [svc.client("alice" if k % 2 else "bob") for k in range(8)]
    results: list = [None] * 8

    def send(k: int) -> None:
        results[k] = upload(clients[k], ct_file, label=f"c{k}")

    workers = [_start_worker(svc, "svc_fakes:fake_segmenter", 20.0, subprocess_env()) for _ in range(2)]
    try:
        threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [202] * 8
        ids = {r.json()["id"] for r in results}
        assert len(ids) == 8

        def all_done():
            with svc.database.session() as s:
                return s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) == 8

        _wait(all_done, 120, "8 jobs done")
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    with svc.database.session() as s:
        jobs = s.scalars(select(Job)).all()
        studies = s.scalars(select(Study)).all()
        assert sorted(j.study_id for j in jobs) == sorted(ids) == sorted(st.id for st in studies)
        assert all(j.attempts == 1 and j.lease_owner is None and j.fraction == 1.0 for j in jobs)
        assert all(st.status == "done" and st.lesion_count == 2 for st in studies)
        assert len({j.finished_at for j in jobs}) >= 1
        assert (
            s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "upload")) == 8
        )
    for st in studies:
        out = svc.config.data_dir / "studies" / st.id / "output"
        assert (out / "labels.nii.gz").exists() and (out / "viewer" / "ct.nii.gz").exists()
    assert len(clients[0].get("/api/studies").json()) == 4  # bob's four
    assert len(svc.client("admin").get("/api/studies").json()) == 8


def test_worker_stops_when_serve_dies(svc, tmp_path):
    """A worker started with --parent-pid runs while its parent lives and exits once it is gone."""
    import json
    import sys

    cfg = ServiceConfig(**{**svc.config.__dict__, "segmenter": "svc_fakes:fake_segmenter"})
    cmd = [*worker_command(cfg, poll_s=0.2), "--parent-pid", "PARENT"]
    env = {**subprocess_env(), DB_URL_ENV: cfg.database_url}
    launcher = (
        "import json, os, subprocess, sys, time; cmd = json.loads(sys.argv[1]); "
        "cmd[cmd.index('PARENT')] = str(os.getpid()); "
        "p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL); "
        "print(p.pid, flush=True); time.sleep(float(sys.argv[2]))"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher, json.dumps(cmd), "6"], env=env, stdout=subprocess.PIPE, text=True
    )
    pid = int(parent.stdout.readline().strip())

    def alive() -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:  # a zombie counts as gone
                return fh.read().split()[2] != "Z"
        except FileNotFoundError:
            return False

    time.sleep(3.0)
    assert alive(), "the worker should run while its parent is alive"
    parent.wait(timeout=30)
    _wait(lambda: not alive(), 30, "the orphaned worker to stop")


def test_stopping_serve_stops_its_workers(tmp_path):
    """SIGTERM to `liverseg serve` (uvicorn re-raises it after its shutdown) must still terminate
    and wait for the worker processes: none may outlive serve, even in the middle of a job."""
    import os
    import socket
    import sys

    import httpx
    from svc_fakes import PASSWORDS

    from liverseg.service import auth as auth_mod
    from liverseg.service.db import Database

    data = tmp_path / "data"
    db = Database(ServiceConfig(data_dir=data).database_url)
    with db.session() as s:
        auth_mod.add_user(s, "alice", PASSWORDS["alice"], "clinician")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "liverseg.cli.serve", "--port", str(port), "--data-dir", str(data)]
    serve = subprocess.Popen(
        [*cmd, "--workers", "1", "--segmenter", SLOW, "--lease-s", "2"],
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(up, 90, "the server", serve)
        c = httpx.Client(base_url=url, timeout=60)
        r = c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]})
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        sid = upload(c, write_ct(tmp_path / "ct.nii.gz")).json()["id"]
        _wait(lambda: _study_status(db, sid) == "running", 60, "the job to start", serve)
        workers = _children_with_parent_pid(serve.pid)
        assert len(workers) == 1
        serve.terminate()
        serve.wait(60)
        assert not os.path.exists(f"/proc/{workers[0]}") or _zombie(workers[0])
        c.close()
    finally:
        if serve.poll() is None:
            serve.kill()
        db.dispose()


def _children_with_parent_pid(parent: int) -> list[str]:
    """Pids of the worker processes started with ``--parent-pid parent``."""
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if b"--parent-pid" in args and args[args.index(b"--parent-pid") + 1 :][:1] == [str(parent).encode()]:
            found.append(pid)
    return found


def _study_status(db, sid: str) -> str | None:
    with db.session() as s:
        study = s.get(Study, sid)
        return study.status if study else None


def _zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] == "Z"
    except FileNotFoundError:
        return True
