"""The FastAPI application: middleware (body limit, security headers), error mapping, routers.

``create_app(config)`` builds everything; ``liverseg serve`` runs it with uvicorn. The OpenAPI
document is served at ``/openapi.json`` (authenticated like every other endpoint); the
CDN-based Swagger pages are off.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liverseg import __version__
from liverseg.errors import LiversegError
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database
from liverseg.service.deps import Auth, current_user
from liverseg.service.storage import Storage, UploadTooLargeError
from liverseg.service.viewer import ViewerCache

__all__ = ["create_app", "public_message"]

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLargeError(f"request body larger than the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than the limit of {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _security_headers(response: Response, request: Request) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.url.scheme == "https":
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.url.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")


MAX_MESSAGE_CHARS = 600


def public_message(exc: Exception, data_root: Path) -> str:
    """A user error's message as a client may see it: one line, no server paths (a file is named
    by its name only, the data folder is ``<data>``), at most :data:`MAX_MESSAGE_CHARS`."""
    msg = str(exc)
    path = getattr(exc, "path", None)
    if isinstance(path, Path):
        msg = msg.replace(str(path), path.name)
    msg = msg.replace(str(data_root), "<data>")
    msg = " ".join(msg.split())
    return msg if len(msg) <= MAX_MESSAGE_CHARS else msg[: MAX_MESSAGE_CHARS - 1] + "…"


def create_app(config: ServiceConfig, database: Database | None = None) -> FastAPI:
    """Build the web application for ``config`` (creates the database schema if needed)."""
    from liverseg.service import (
        registry,
        routes_admin,
        routes_auth,
        routes_lifecycle,
        routes_pacs,
        routes_pages,
        routes_problems,
        routes_studies,
        routes_viewer,
    )

    database = database or Database(config.database_url)
    app = FastAPI(
        title="liverseg",
        version=__version__,
        description="Liver and liver-tumor segmentation service (research use, not a medical device).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.config = config
    app.state.database = database
    app.state.storage = Storage(config.data_dir)
    app.state.viewer_cache = ViewerCache(config.viewer_cache_studies)
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    registry.sync_shipped_models(database)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        _security_headers(response, request)
        return response

    app.add_middleware(BodyLimitMiddleware, max_bytes=config.limits.max_upload_bytes + 1024 * 1024)

    @app.exception_handler(UploadTooLargeError)
    async def _too_large_handler(_request: Request, exc: UploadTooLargeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(LiversegError)
    async def _user_error(_request: Request, exc: LiversegError) -> JSONResponse:
        return JSONResponse({"detail": public_message(exc, app.state.storage.root)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "") and not request.url.path.startswith(
            "/api/"
        )
        if exc.status_code == 401 and wants_html:
            return RedirectResponse("/login", status_code=303)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_auth: Auth = Depends(current_user)) -> JSONResponse:
        return JSONResponse(app.openapi())

    for module in (
        routes_auth,
        routes_studies,
        routes_lifecycle,
        routes_problems,
        routes_viewer,
        routes_admin,
        routes_pacs,
        routes_pages,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app
