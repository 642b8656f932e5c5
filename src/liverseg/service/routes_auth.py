"""Login, logout, the current user and the health check (the only unauthenticated routes)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.orm import Session

from liverseg.service.auth import audit, authenticate, create_session, end_session
from liverseg.service.deps import COOKIE_NAME, Auth, client_ip, current_user, get_db

router = APIRouter()


class LoginBody(BaseModel):
    """Credentials; JSON only (a cross-site HTML form cannot send JSON, which blocks login CSRF)."""

    name: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    name: str
    role: str
    csrf_token: str


def _set_cookie(request: Request, response: Response, token: str | None) -> None:
    cfg = request.app.state.config
    secure = cfg.secure_cookies or request.url.scheme == "https"
    if token is None:
        response.delete_cookie(COOKIE_NAME, path="/", secure=secure, httponly=True, samesite="strict")
        return
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(cfg.session_ttl_s),
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


@router.get("/healthz", tags=["auth"])
def health(db: Session = Depends(get_db)) -> dict[str, str]:
    """Liveness and database check (no authentication, no data)."""
    db.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request) -> Response:
    return request.app.state.templates.TemplateResponse(request, "login.html", {"user": None})


@router.post(
    "/api/login",
    response_model=Me,
    tags=["auth"],
    responses={401: {"description": "bad credentials"}, 429: {"description": "throttled"}},
)
def login(body: LoginBody, request: Request, db: Session = Depends(get_db)) -> Response:
    """Start a session: sets the HttpOnly session cookie; returns the CSRF token to send back."""
    cfg = request.app.state.config
    result = authenticate(db, body.name, body.password, client_ip(request), cfg)
    if result.retry_after_s > 0:
        db.commit()
        raise HTTPException(
            status_code=429,
            detail="too many failed logins; try again later",
            headers={"Retry-After": str(math.ceil(result.retry_after_s))},
        )
    if result.user is None:
        db.commit()  # keep the failure count even though we answer with an error
        raise HTTPException(status_code=401, detail="wrong user name or password")
    token, row = create_session(db, result.user, cfg)
    response = JSONResponse(
        Me(name=result.user.name, role=result.user.role, csrf_token=row.csrf_token).model_dump()
    )
    _set_cookie(request, response, token)
    return response


@router.post("/api/logout", status_code=204, tags=["auth"])
def logout(request: Request, auth: Auth = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    """End the session (CSRF token required like every state change)."""
    end_session(db, request.cookies.get(COOKIE_NAME))
    audit(db, "logout", user=auth.user, ip=client_ip(request))
    response = Response(status_code=204)
    _set_cookie(request, response, None)
    return response


@router.get("/api/me", response_model=Me, tags=["auth"])
def me(auth: Auth = Depends(current_user)) -> Me:
    """The logged-in user and the session's CSRF token."""
    return Me(name=auth.user.name, role=auth.user.role, csrf_token=auth.session.csrf_token)
