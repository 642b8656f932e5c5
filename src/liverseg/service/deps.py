"""FastAPI dependencies: database session, authentication + CSRF, roles, object-level access.

Every route except ``/login``, ``/api/login`` and ``/healthz`` depends on :func:`current_user`,
which also enforces the CSRF token on POST/PUT/PATCH/DELETE, so no state-changing route can
forget it. Each dependency ends its own short database transaction (the request session starts
the next one on demand). :func:`owned_study` also writes the patient-data access log: one
``study_view`` audit event per session and study (see :class:`~liverseg.service.auth.ViewLog`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from liverseg.service.auth import csrf_ok, lookup_session, record_view
from liverseg.service.db import ProblemReport, Study, User, UserSession
from liverseg.service.middleware import COOKIE_NAME, CSRF_HEADER, SESSIONS_KEY

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "MAX_ID",
    "Auth",
    "IdPath",
    "NotAuthenticated",
    "binary_body",
    "client_ip",
    "current_user",
    "get_db",
    "owned_study",
    "require_admin",
]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_ID = 2**63 - 1  # largest integer a database id column holds (64-bit signed)
#: An integer id in a path: 1..2**63-1, else 422 (a larger number would overflow the database driver).
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


class NotAuthenticated(HTTPException):
    """401; HTML pages turn it into a redirect to /login."""

    def __init__(self) -> None:
        super().__init__(status_code=401, detail="authentication required: log in first")


@dataclass
class Auth:
    """The authenticated user and session of a request."""

    user: User
    session: UserSession

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


def get_db(request: Request) -> Iterator[Session]:
    """A database session for the request (reads never wait; see
    :meth:`~liverseg.service.db.Database.request_session`), committed before the response starts
    (:class:`~liverseg.service.middleware.CommitBeforeResponseMiddleware`), rolled back on error."""
    with request.app.state.database.request_session() as s:
        sessions = getattr(request.state, SESSIONS_KEY, None)
        if sessions is None:
            sessions = []
            setattr(request.state, SESSIONS_KEY, sessions)
        sessions.append(s)
        yield s


def client_ip(request: Request) -> str:
    """The client address (uvicorn resolves X-Forwarded-For only from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def current_user(request: Request, db: Session = Depends(get_db)) -> Auth:
    """The logged-in user; 401 without a live session, 403 on a state change without CSRF token."""
    found = lookup_session(db, request.cookies.get(COOKIE_NAME))
    if found is None:
        raise NotAuthenticated()
    row, user = found
    db.commit()  # a short read transaction: nothing is held while the route runs
    if request.method in UNSAFE_METHODS and not csrf_ok(row, request.headers.get(CSRF_HEADER)):
        raise HTTPException(
            status_code=403, detail=f"missing or wrong CSRF token: send the {CSRF_HEADER} header"
        )
    return Auth(user=user, session=row)


def require_admin(auth: Auth = Depends(current_user)) -> Auth:
    """403 unless the user is an admin."""
    if not auth.is_admin:
        raise HTTPException(status_code=403, detail="administrator role required")
    return auth


def owned_study(
    study_id: str,
    auth: Auth = Depends(current_user),
    db: Session = Depends(get_db),
    request: Request = None,  # type: ignore[assignment]  # injected by FastAPI
) -> Study:
    """The study if the user owns it (or is an admin); 404 otherwise (existence is not revealed).

    Access is logged (``study_view``, once per session and study within the view window) when
    ``request`` is given, which FastAPI always does; the transaction is committed here.
    """
    study = db.get(Study, study_id) if study_id.isalnum() and len(study_id) <= 32 else None
    if study is None or (not auth.is_admin and study.owner_id != auth.user.id):
        raise HTTPException(status_code=404, detail="no such study for this user")
    if request is not None:
        record_view(request.app.state.view_log, db, auth, study.id, client_ip(request), _route(request))
    db.commit()
    return study


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def visible_problem(db: Session, problem_id: int, auth: Auth) -> ProblemReport:
    """A problem report the user may see (own studies' reports, or any for admins); else 404."""
    pr = db.get(ProblemReport, problem_id) if 1 <= problem_id <= MAX_ID else None
    if pr is None:
        raise HTTPException(status_code=404, detail=f"no problem report {problem_id}")
    study = db.get(Study, pr.study_id)
    if not auth.is_admin and (study is None or study.owner_id != auth.user.id):
        raise HTTPException(status_code=404, detail=f"no problem report {problem_id}")
    return pr


def binary_body(description: str) -> dict:
    """OpenAPI ``openapi_extra`` for a route whose request body is one raw file (streamed, not a form)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            "description": description,
        }
    }
