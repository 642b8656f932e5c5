"""Hostile HTTP input: oversized bodies, bodies before authentication, echoing 422s, server paths
in messages, 64-bit+ ids, foreign Host headers, forged X-Forwarded-For."""

from __future__ import annotations

import asyncio
import gzip
import json
import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from svc_fakes import PASSWORDS

from liverseg.service.app import create_app
from liverseg.service.config import ServiceConfig
from liverseg.service.db import AuditEvent

PATH_RE = re.compile(r"(?<![\w.])/(tmp|root|home|work|var|usr)/")
EXC_RE = re.compile(r"\b[A-Z]\w*(Error|Exception)\b")


def _login_attempt(c: TestClient, name: str = "alice", forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return c.post(
        "/api/login", json={"name": name, "password": "wrong-password"}, headers=headers
    ).status_code


# ----------------------------------------------------------------------------- body limits
def test_login_body_is_limited_to_kilobytes(svc):
    c = svc.client()
    big = {"name": "alice", "password": "x" * (64 * 1024)}
    r = c.post("/api/login", content=json.dumps(big), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert r.headers["content-security-policy"]  # security headers on middleware answers too

    def chunked():  # no Content-Length: cut off while reading
        yield b'{"name": "alice", "password": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    r = c.post("/api/login", content=chunked(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_json_routes_have_a_small_default_limit(svc):
    c = svc.client("admin")
    r = c.patch(
        "/api/admin/problems/1",
        content=json.dumps({"status": "open", "note": "x" * (2 * 1024 * 1024)}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_validation_errors_never_echo_the_request(svc):
    c = svc.client()
    canary = "canary-" + "z" * 80
    for body in ({"name": canary, "password": canary}, {"name": 5, "password": [canary]}, {"nam": canary}):
        r = c.post("/api/login", json=body)
        assert r.status_code == 422, body
        assert "canary" not in r.text and r.json()["detail"][0]["loc"]
    r = c.post("/api/login", content=b'{"name": "canary-broken', headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "canary" not in r.text


def _asgi_post(app, path: str, body_chunks: int, cookie: str = "", csrf: str = "") -> tuple[int, int]:
    """POST ``body_chunks`` chunks of 1 MiB straight through ASGI; (status, chunks the app read)."""
    pulled = 0
    status = 0
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"multipart/form-data; boundary=xyz"),
        (b"content-length", str(body_chunks * 1024 * 1024).encode()),
    ]
    if cookie:
        headers.append((b"cookie", f"liverseg_session={cookie}".encode()))
    if csrf:
        headers.append((b"x-csrf-token", csrf.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def receive():
        nonlocal pulled
        pulled += 1
        more = pulled < body_chunks
        return {"type": "http.request", "body": b"-" * (1024 * 1024), "more_body": more}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    asyncio.run(app(scope, receive, send))
    return status, pulled


def test_anonymous_bodies_are_refused_before_being_read(svc, done_study):
    status, pulled = _asgi_post(svc.app, f"/api/studies/{done_study}/problems", 3)
    assert (status, pulled) == (401, 0)
    status, pulled = _asgi_post(svc.app, "/api/studies", 3)
    assert (status, pulled) == (401, 0)
    c = svc.client("alice")  # a session without its CSRF token: 403, still unread
    status, pulled = _asgi_post(svc.app, "/api/studies", 3, cookie=c.cookies["liverseg_session"])
    assert (status, pulled) == (403, 0)


# ----------------------------------------------------------------------------- messages
def test_user_facing_errors_hold_no_server_paths_or_exception_names(svc, done_study, tmp_path):
    c = svc.client("alice")
    bad_header = gzip.compress(b"\x00" * 400)  # gzip, but no NIfTI header inside
    files = {"correction": ("fix.nii.gz", bad_header, "application/gzip")}
    r = c.post(f"/api/studies/{done_study}/problems", data={"category": "other"}, files=files)
    assert r.status_code == 422, r.text
    assert not PATH_RE.search(r.text) and not EXC_RE.search(r.text), r.text
    r = c.post("/api/studies", content=bad_header, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 422 and not PATH_RE.search(r.text) and not EXC_RE.search(r.text), r.text


def test_failed_job_shows_no_exception_text_to_the_clinician(svc, ct_file):
    from svc_fakes import upload

    c = svc.client("alice")
    sid = upload(c, ct_file).json()["id"]
    assert svc.run_jobs("svc_fakes:failing_segmenter") == 1
    error = c.get(f"/api/studies/{sid}").json()["error"]
    assert "internal error" in error and "RuntimeError" not in error and "simulated crash" not in error
    failures = svc.client("admin").get("/api/admin/monitoring").json()["failures"]
    assert "simulated crash" in failures[0]["reason"]  # the details stay visible to administrators


def _int_routes():
    from liverseg.service import routes_admin, routes_auth, routes_pages, routes_studies, routes_viewer

    routes = [
        r
        for m in (routes_auth, routes_studies, routes_viewer, routes_admin, routes_pages)
        for r in m.router.routes
    ]
    for route in routes:
        if isinstance(route, APIRoute) and re.search(r"\{\w*id\}", route.path):
            params = {p.name: p for p in route.dependant.path_params}
            if any(p.field_info.annotation is int for p in params.values()):
                for method in route.methods - {"HEAD"}:
                    yield method, route.path, [n for n, p in params.items() if p.field_info.annotation is int]


@pytest.mark.parametrize("number", [2**63, 2**64, 10**30, -(2**64)])
def test_ids_beyond_64_bits_are_404_or_422_never_500(svc, number):
    c = TestClient(svc.app, raise_server_exceptions=False)
    svc.clients.append(c)
    r = c.post("/api/login", json={"name": "admin", "password": PASSWORDS["admin"]})
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    routes = list(_int_routes())
    assert len(routes) >= 3
    for method, path, int_names in routes:
        url = path
        for name in int_names:
            url = url.replace("{" + name + "}", str(number))
        url = re.sub(r"\{[^}]+\}", "abc123", url)
        r = c.request(method, url, json={"status": "open", "note": ""})
        assert r.status_code in (404, 422), (method, url, r.status_code, r.text)


# ----------------------------------------------------------------------------- Host, XFF
def test_only_allowed_host_headers_are_served(svc):
    c = svc.client()
    assert c.get("/healthz").status_code == 200
    assert c.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert c.get("/healthz", headers={"Host": "localhost:8000"}).status_code == 200


def _audit_ips(svc, action: str) -> list[str]:
    with svc.database.session() as s:
        return [
            e.ip
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        ]


def test_forwarded_for_is_ignored_unless_from_a_configured_proxy(svc, tmp_path):
    local = TestClient(svc.app, client=("127.0.0.1", 40000))
    svc.clients.append(local)
    assert _login_attempt(local, forwarded_for="6.6.6.6") == 401
    assert _audit_ips(svc, "login_failed") == ["127.0.0.1"]
    # forged addresses cannot spread failures over many "clients": the peer's IP gets locked
    for k in range(svc.config.throttle_ip_free_failures):
        _login_attempt(local, f"user{k}", forwarded_for=f"10.1.{k}.1")
    assert _login_attempt(local, "someone", forwarded_for="10.9.9.9") == 429

    cfg = ServiceConfig(**{**svc.config.__dict__, "forwarded_allow_ips": ("10.0.0.1",)})
    app = create_app(cfg, svc.database)
    proxy = TestClient(app, client=("10.0.0.1", 40000))
    other = TestClient(app, client=("10.0.0.2", 40000))
    svc.clients += [proxy, other]
    _login_attempt(proxy, "carol", forwarded_for="192.0.2.7")
    _login_attempt(other, "carol", forwarded_for="192.0.2.8")
    assert _audit_ips(svc, "login_failed")[-2:] == ["192.0.2.7", "10.0.0.2"]
