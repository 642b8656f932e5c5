"""FastAPI dependencies: database session, authentication + CSRF, roles, object-level access.

Every route except ``/login``, ``/api/login`` and ``/healthz`` depends on :func:`current_user`,
which also enforces the CSRF token on POST/PUT/PATCH/DELETE, so no state-changing route can
forget it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from liverseg.service.auth import csrf_ok, lookup_session
from liverseg.service.db import ProblemReport, Study, User, UserSession

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "Auth",
    "NotAuthenticated",
    "binary_body",
    "client_ip",
    "current_user",
    "get_db",
    "owned_study",
    "require_admin",
]

COOKIE_NAME = "liverseg_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    """A database session for the request, committed when the route returns without error."""
    with request.app.state.database.session() as s:
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


def owned_study(study_id: str, auth: Auth = Depends(current_user), db: Session = Depends(get_db)) -> Study:
    """The study if the user owns it (or is an admin); 404 otherwise (existence is not revealed)."""
    study = db.get(Study, study_id) if study_id.isalnum() and len(study_id) <= 32 else None
    if study is None or (not auth.is_admin and study.owner_id != auth.user.id):
        raise HTTPException(status_code=404, detail=f"no study {study_id!r} for this user")
    return study


def visible_problem(db: Session, problem_id: int, auth: Auth) -> ProblemReport:
    """A problem report the user may see (own studies' reports, or any for admins); else 404."""
    pr = db.get(ProblemReport, problem_id)
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
