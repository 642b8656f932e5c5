"""ASGI middleware of the web application: security headers, per-route body limits, and
authentication before any request body is read.

Order (outermost first, see :func:`liverseg.service.app.create_app`): proxy headers (only from
trusted proxies) -> :class:`SecurityHeadersMiddleware` -> allowed ``Host`` headers ->
:class:`BodyLimitMiddleware` -> :class:`AuthGateMiddleware` -> :class:`CommitBeforeResponseMiddleware`
-> the routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liverseg.service.auth import csrf_ok, lookup_session
from liverseg.service.storage import UploadTooLargeError

__all__ = [
    "CSP",
    "SESSIONS_KEY",
    "AuthGateMiddleware",
    "BodyLimit",
    "BodyLimitMiddleware",
    "CommitBeforeResponseMiddleware",
    "SecurityHeadersMiddleware",
]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BUFFERED_MAX = 1024**2  # bodies of routes limited to this much are read whole before the route
#: ``scope["state"]`` key under which :func:`liverseg.service.deps.get_db` lists the request's sessions.
SESSIONS_KEY = "liverseg_db_sessions"
#: the session cookie and the CSRF header (re-exported by :mod:`liverseg.service.deps`)
COOKIE_NAME = "liverseg_session"
CSRF_HEADER = "X-CSRF-Token"


async def send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer ``{"detail": ...}`` with ``status`` (the request body is never read)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Security headers on every response, including errors answered by other middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for name, value in (
                    ("Content-Security-Policy", CSP),
                    ("X-Content-Type-Options", "nosniff"),
                    ("X-Frame-Options", "DENY"),
                    ("Referrer-Policy", "no-referrer"),
                    ("Cross-Origin-Opener-Policy", "same-origin"),
                    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
                ):
                    h.setdefault(name, value)
                if https:
                    h.setdefault("Strict-Transport-Security", "max-age=31536000")
                if not static:
                    h.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True)
class BodyLimit:
    """The largest request body (bytes) of the routes matching ``method`` and ``path`` (a regex)."""

    method: str
    path: str
    max_bytes: int


class BodyLimitMiddleware:
    """Refuse request bodies over their route's limit with 413, before the route reads them.

    A ``Content-Length`` over the limit is answered at once. A body without one (chunked) is
    read whole first when its limit is small (at most 1 MiB, e.g. the login's few KiB), so the
    route never sees it; for the large upload routes it is counted while the route streams it.
    """

    def __init__(self, app: ASGIApp, limits: Sequence[BodyLimit], default_max_bytes: int) -> None:
        self.app = app
        self.limits = [(lim.method, re.compile(lim.path), lim.max_bytes) for lim in limits]
        self.default = default_max_bytes

    def limit_for(self, method: str, path: str) -> int:
        for m, pattern, max_bytes in self.limits:
            if m == method and pattern.fullmatch(path):
                return max_bytes
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            if not length.isdigit():
                await send_json(send, 400, "invalid Content-Length header")
                return
            if int(length) > limit:
                await send_json(send, 413, f"request body larger than the limit of {limit} bytes")
                return
        if length is None and limit <= _BUFFERED_MAX and scope["method"] in _UNSAFE:
            body, more = bytearray(), True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > limit:
                    await send_json(send, 413, f"request body larger than the limit of {limit} bytes")
                    return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise UploadTooLargeError(f"request body larger than the limit of {limit} bytes")
            return message

        await self.app(scope, counted, send)


class AuthGateMiddleware:
    """A state-changing request (POST/PUT/PATCH/DELETE) needs a live session and its CSRF token
    before a byte of its body is read (401 / 403 otherwise); ``public`` paths are exempt.

    The routes check both again through :func:`liverseg.service.deps.current_user`; this gate
    only makes sure an anonymous client cannot make the server receive, parse or spool a body.
    """

    def __init__(self, app: ASGIApp, database: object, public: Sequence[str]) -> None:
        self.app = app
        self.database = database
        self.public = frozenset(public)

    def _check(self, token: str | None, csrf: str | None) -> int:
        with self.database.request_session() as db:  # type: ignore[attr-defined]
            found = lookup_session(db, token)
            if found is None:
                return 401
            return 0 if csrf_ok(found[0], csrf) else 403

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _UNSAFE or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return

        conn = HTTPConnection(scope)
        status = await run_in_threadpool(
            self._check, conn.cookies.get(COOKIE_NAME), conn.headers.get(CSRF_HEADER)
        )
        if status == 401:
            await send_json(send, 401, "authentication required: log in first")
        elif status == 403:
            await send_json(send, 403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header")
        else:
            await self.app(scope, receive, send)


class CommitBeforeResponseMiddleware:
    """Commit the request's database session(s) before the response starts.

    FastAPI ends a ``yield`` dependency (the session of :func:`liverseg.service.deps.get_db`)
    only after the response is sent, so a client could act on a response (log in, then upload)
    before what it reports is committed. Here the commit happens in the threadpool just before
    the response's first byte; a commit that fails turns the response into a 500. After an
    error the dependency has already rolled back, so nothing is committed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        failed = False

        async def commit_then_send(message: Message) -> None:
            nonlocal failed
            if message["type"] == "http.response.start":
                sessions = (scope.get("state") or {}).get(SESSIONS_KEY) or []
                try:
                    for session in sessions:
                        if session.in_transaction():
                            await run_in_threadpool(session.commit)
                except Exception:
                    failed = True
                    await send_json(send, 500, "the change could not be saved; try again")
                    raise
            if not failed:
                await send(message)

        await self.app(scope, receive, commit_then_send)
