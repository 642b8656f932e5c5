"""Authentication, sessions, CSRF, throttling, security headers and the ``users`` CLI."""

from __future__ import annotations

import argparse
import io
import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from svc_fakes import PASSWORDS

from liverseg.cli import users as users_cli
from liverseg.service.db import AuditEvent, User, UserSession, utcnow

PUBLIC = {("GET", "/healthz"), ("GET", "/login"), ("POST", "/api/login")}


def _routes(app):
    """Every (method, path) of the app: its own routes and those of the included routers."""
    from liverseg.service import routes_admin, routes_auth, routes_pages, routes_studies, routes_viewer

    routes = list(app.routes)
    for module in (routes_auth, routes_studies, routes_viewer, routes_admin, routes_pages):
        routes += module.router.routes
    for route in routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                if method != "HEAD":
                    yield method, route.path


def _fill(path: str) -> str:
    return re.sub(
        r"\{[^}]+\}", lambda m: "1" if "id}" in m.group(0) and "study" not in m.group(0) else "abc123", path
    )


def test_every_route_but_login_and_health_requires_authentication(svc):
    c = svc.client()
    routes = sorted(set(_routes(svc.app)))
    assert len(routes) >= 25
    for method, path in routes:
        r = c.request(method, _fill(path))
        if (method, path) in PUBLIC:
            assert r.status_code != 401, (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)
    assert c.get("/healthz").json() == {"status": "ok"}


def test_pages_redirect_to_login(svc):
    c = svc.client()
    for page in ("/", "/studies/abc", "/admin/models", "/openapi.json"):
        r = c.get(page, headers={"Accept": "text/html"}, follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, "/login"), page
    assert "login-form" in c.get("/login").text


def test_state_changes_without_csrf_token_are_refused(svc):
    c = svc.client("admin")
    token = c.headers.pop("X-CSRF-Token")
    unsafe = [
        (m, p)
        for m, p in sorted(set(_routes(svc.app)))
        if m in ("POST", "PUT", "PATCH", "DELETE") and (m, p) not in PUBLIC
    ]
    assert len(unsafe) >= 6
    for method, path in unsafe:
        for headers in ({}, {"X-CSRF-Token": "wrong-token"}):
            r = c.request(method, _fill(path), headers=headers)
            assert r.status_code == 403 and "CSRF" in r.json()["detail"], (method, path, r.status_code)
    # with the token the same session works
    assert c.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert c.get("/api/me").status_code == 401


def test_login_sets_strict_httponly_cookie_and_logout_ends_session(svc):
    c = svc.client()
    r = c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]})
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    me = c.get("/api/me").json()
    assert me["name"] == "alice" and me["role"] == "clinician" and me["csrf_token"] == r.json()["csrf_token"]
    assert c.post("/api/logout", headers={"X-CSRF-Token": me["csrf_token"]}).status_code == 204
    assert c.get("/api/me").status_code == 401
    with svc.database.session() as s:  # only the token's hash is stored
        assert s.scalars(select(UserSession)).all() == []


def test_cookie_is_secure_over_https(svc):
    c = TestClient(svc.app, base_url="https://testserver")
    r = c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]})
    assert "secure" in r.headers["set-cookie"].lower()
    assert "strict-transport-security" in r.headers
    c.close()


def test_session_expiry(svc):
    c = svc.client("alice")
    assert c.get("/api/me").status_code == 200
    with svc.database.session() as s:
        s.execute(update(UserSession).values(expires_at=utcnow()))
    assert c.get("/api/me").status_code == 401


def test_wrong_password_and_json_only_login(svc):
    c = svc.client()
    assert c.post("/api/login", json={"name": "alice", "password": "nope-nope-nope"}).status_code == 401
    assert c.post("/api/login", json={"name": "nobody", "password": "nope-nope-nope"}).status_code == 401
    # a cross-site HTML form cannot log a victim in: form-encoded bodies are refused
    r = c.post("/api/login", data={"name": "alice", "password": PASSWORDS["alice"]})
    assert r.status_code == 422
    with svc.database.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count("login_failed") == 2


def test_user_throttling_with_backoff(svc):
    c = svc.client()
    for _ in range(svc.config.throttle_free_failures):
        assert c.post("/api/login", json={"name": "alice", "password": "wrong-password"}).status_code == 401
    r = c.post("/api/login", json={"name": "alice", "password": PASSWORDS["alice"]})  # right password, locked
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= svc.config.throttle_base_s
    # other users from the same address are not locked out
    assert c.post("/api/login", json={"name": "bob", "password": PASSWORDS["bob"]}).status_code == 200
    with svc.database.session() as s:
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "login_throttled")) is not None


def test_ip_throttling(svc):
    c = svc.client()
    for k in range(svc.config.throttle_ip_free_failures):
        assert (
            c.post("/api/login", json={"name": f"guess{k}", "password": "wrong-password"}).status_code == 401
        )
    r = c.post("/api/login", json={"name": "bob", "password": PASSWORDS["bob"]})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_disabled_user_cannot_log_in_and_loses_sessions(svc):
    c = svc.client("bob")
    from liverseg.service.auth import set_disabled

    with svc.database.session() as s:
        set_disabled(s, "bob")
    assert c.get("/api/me").status_code == 401
    assert (
        svc.client().post("/api/login", json={"name": "bob", "password": PASSWORDS["bob"]}).status_code == 401
    )


def test_security_headers(svc):
    c = svc.client("alice")
    for path in ("/login", "/", "/api/me", "/static/style.css"):
        h = c.get(path).headers
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert (
            "script-src 'self'" in h["content-security-policy"]
            and "unsafe-inline" not in h["content-security-policy"]
        )
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"


def test_no_inline_scripts_in_pages(svc):
    c = svc.client("admin")
    for page in ("/", "/admin/models", "/admin/monitoring", "/admin/problems", "/admin/audit", "/login"):
        html = c.get(page).text
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], page
        assert not re.search(r"\son[a-z]+=", html), page


def test_openapi_document_requires_login(svc):
    assert svc.client().get("/openapi.json").status_code == 401
    doc = svc.client("alice").get("/openapi.json").json()
    assert "/api/studies" in doc["paths"] and "/api/admin/models" in doc["paths"]


def test_admin_routes_refuse_clinicians(svc):
    c = svc.client("alice")
    for path in (
        "/api/admin/models",
        "/api/admin/monitoring",
        "/api/admin/problems",
        "/api/admin/audit",
        "/admin/models",
    ):
        assert c.get(path).status_code == 403, path


def _users(argv, monkeypatch, stdin=""):
    parser = argparse.ArgumentParser()
    users_cli.register(parser.add_subparsers())
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    args = parser.parse_args(argv)
    return args.func(args)


def test_users_cli(tmp_path, monkeypatch, capsys):
    d = ["--data-dir", str(tmp_path / "d")]
    assert (
        _users(
            ["users", "add", "carol", "--role", "admin", "--password-stdin", *d],
            monkeypatch,
            "carol-password-1\n",
        )
        == 0
    )
    assert _users(["users", "add", "dave", "--password-stdin", *d], monkeypatch, "dave-password-12\n") == 0
    from liverseg.errors import InputError

    with pytest.raises(InputError, match="at least 10"):
        _users(["users", "add", "eve", "--password-stdin", *d], monkeypatch, "short\n")
    with pytest.raises(InputError, match="already exists"):
        _users(["users", "add", "dave", "--password-stdin", *d], monkeypatch, "dave-password-12\n")
    capsys.readouterr()
    _users(["users", "list", *d], monkeypatch)
    out = capsys.readouterr().out
    assert re.search(r"carol\s+admin\s+active", out) and re.search(r"dave\s+clinician\s+active", out)
    _users(["users", "disable", "dave", *d], monkeypatch)
    _users(["users", "reset", "carol", "--password-stdin", *d], monkeypatch, "carol-password-2\n")
    from liverseg.service.auth import verify_password
    from liverseg.service.config import ServiceConfig
    from liverseg.service.db import Database

    db = Database(ServiceConfig(data_dir=tmp_path / "d").database_url)
    with db.session() as s:
        carol = s.scalar(select(User).where(User.name == "carol"))
        assert carol.password_hash.startswith("$argon2id$")
        assert verify_password(carol.password_hash, "carol-password-2")
        assert not verify_password(carol.password_hash, "carol-password-1")
        assert s.scalar(select(User).where(User.name == "dave")).disabled
        actions = [e.action for e in s.scalars(select(AuditEvent))]
    assert {"user_add", "user_disable", "user_reset"} <= set(actions)
    db.dispose()


def test_no_default_account(tmp_path):
    from liverseg.service.config import ServiceConfig
    from liverseg.service.db import Database

    db = Database(ServiceConfig(data_dir=tmp_path).database_url)
    with db.session() as s:
        assert s.scalars(select(User)).all() == []
    db.dispose()
