"""The FastAPI application: middleware, error mapping, routers, start-up housekeeping.

``create_app(config)`` builds everything; ``liverseg serve`` runs it with uvicorn. The OpenAPI
document is served at ``/openapi.json`` (authenticated like every other endpoint); the
CDN-based Swagger pages are off.

Middleware, outermost first: ``X-Forwarded-*`` headers taken only from
``config.forwarded_allow_ips`` (uvicorn's ``ProxyHeadersMiddleware``), security headers, the
allowed ``Host`` headers (``config.allowed_hosts``), per-route body limits, authentication
before any request body is read, and the commit of the request's database session before the
response starts (:mod:`liverseg.service.middleware`).

At start: the schema is created if needed, shipped models are registered, data-dir permissions
are made private (0700/0600) and study folders without a database row are removed
(:meth:`~liverseg.service.storage.Storage.sweep_orphans`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.middleware.trustedhost import TrustedHostMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from liverseg import __version__
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
from liverseg.service.auth import ViewLog
from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database, Study
from liverseg.service.deps import Auth, current_user
from liverseg.service.errors import install_error_handlers
from liverseg.service.middleware import (
    AuthGateMiddleware,
    BodyLimit,
    BodyLimitMiddleware,
    CommitBeforeResponseMiddleware,
    SecurityHeadersMiddleware,
)
from liverseg.service.storage import Storage
from liverseg.service.viewer import ViewerCache

__all__ = ["PUBLIC_UNSAFE_PATHS", "body_limits", "create_app"]

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
#: State-changing routes reachable without a session (checked by the route itself).
PUBLIC_UNSAFE_PATHS = ("/api/login",)


def body_limits(config: ServiceConfig) -> list[BodyLimit]:
    """Per-route request body limits; every other route gets ``limits.max_request_bytes``."""
    lim = config.limits
    return [
        BodyLimit("POST", r"/api/login", lim.max_login_bytes),
        BodyLimit("POST", r"/api/studies", lim.max_upload_bytes),
        BodyLimit("POST", r"/api/studies/[^/]+/problems", lim.max_label_bytes + lim.max_request_bytes),
        BodyLimit("POST", r"/api/admin/models", lim.max_label_bytes),
    ]


def create_app(config: ServiceConfig, database: Database | None = None) -> FastAPI:
    """Build the web application for ``config`` (creates the database schema if needed)."""

    database = database or Database(config.database_url)
    app = FastAPI(
        title="liverseg",
        version=__version__,
        description="Liver and liver-tumor segmentation service (research use, not a medical device).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    storage = Storage(config.data_dir)
    app.state.config = config
    app.state.database = database
    app.state.storage = storage
    app.state.viewer_cache = ViewerCache(config.viewer_cache_studies)
    app.state.view_log = ViewLog(config.view_window_s)
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    registry.sync_shipped_models(database)
    storage.harden_permissions()
    with database.session() as s:
        known = s.scalars(select(Study.id)).all()
    storage.sweep_orphans(known, config.orphan_grace_s)

    # added innermost first: the last one added runs first
    app.add_middleware(CommitBeforeResponseMiddleware)
    app.add_middleware(AuthGateMiddleware, database=database, public=PUBLIC_UNSAFE_PATHS)
    app.add_middleware(
        BodyLimitMiddleware, limits=body_limits(config), default_max_bytes=config.limits.max_request_bytes
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.allowed_hosts), www_redirect=False)
    app.add_middleware(SecurityHeadersMiddleware)
    if config.forwarded_allow_ips:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.forwarded_allow_ips))
    install_error_handlers(app)

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
