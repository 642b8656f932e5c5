"""Accounts, passwords (argon2), server-side sessions, CSRF tokens, login throttling and audit.

Session cookies carry a random token; the database stores only its sha256, so a leaked database
does not leak live sessions. Each session has its own CSRF token, which every state-changing
request must send back in the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.service.config import ServiceConfig
from liverseg.service.db import ROLES, AuditEvent, LoginThrottle, User, UserSession, utcnow

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "LoginResult",
    "add_user",
    "audit",
    "authenticate",
    "create_session",
    "csrf_ok",
    "end_session",
    "hash_password",
    "lookup_session",
    "reset_password",
    "set_disabled",
    "verify_password",
]

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{2,64}$")
_hasher = PasswordHasher()
# A real hash to verify against for unknown users, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (at least :data:`MIN_PASSWORD_LENGTH` characters)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"password must have at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches the argon2 ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------- users
def add_user(db: Session, name: str, password: str, role: str) -> User:
    """Create an account. Raises :class:`InputError` for a bad name, role, or a taken name."""
    if not _NAME_RE.match(name):
        raise InputError(
            f"user name must be 2-64 characters of letters, digits, '.', '_' or '-', got {name!r}"
        )
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if db.scalar(select(User).where(User.name == name)) is not None:
        raise InputError(f"user {name!r} already exists")
    user = User(name=name, password_hash=hash_password(password), role=role, disabled=False)
    db.add(user)
    db.flush()
    audit(db, "user_add", user=None, target=name, detail={"role": role})
    return user


def _get_user(db: Session, name: str) -> User:
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise InputError(f"no user named {name!r}")
    return user


def set_disabled(db: Session, name: str, disabled: bool = True) -> User:
    """Disable (or re-enable) an account; disabling ends all its sessions."""
    user = _get_user(db, name)
    user.disabled = disabled
    if disabled:
        db.execute(delete(UserSession).where(UserSession.user_id == user.id))
    audit(db, "user_disable" if disabled else "user_enable", user=None, target=name)
    return user


def reset_password(db: Session, name: str, password: str) -> User:
    """Set a new password, end the user's sessions and clear their login lockout."""
    user = _get_user(db, name)
    user.password_hash = hash_password(password)
    db.execute(delete(UserSession).where(UserSession.user_id == user.id))
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == f"user:{name}"))
    audit(db, "user_reset", user=None, target=name)
    return user


# ---------------------------------------------------------------------------------- audit
def audit(
    db: Session,
    action: str,
    *,
    user: User | str | None,
    target: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit event (never patient identifiers: study ids only)."""
    name = user.name if isinstance(user, User) else user
    db.add(AuditEvent(at=utcnow(), user_name=name, action=action, target=target, ip=ip, detail=detail or {}))


# ---------------------------------------------------------------------------------- login
@dataclass(frozen=True)
class LoginResult:
    """Outcome of :func:`authenticate`: ``user`` on success, else ``retry_after_s`` when locked."""

    user: User | None
    retry_after_s: float = 0.0


def _lock_remaining(row: LoginThrottle | None, now: datetime) -> float:
    if row is None or row.locked_until is None:
        return 0.0
    return max(0.0, (row.locked_until - now).total_seconds())


def _record_failure(db: Session, key: str, free: int, cfg: ServiceConfig, now: datetime) -> None:
    row = db.get(LoginThrottle, key)
    if row is None:
        row = LoginThrottle(key=key, failures=0)
        db.add(row)
    row.failures = (row.failures or 0) + 1
    row.last_failure_at = now
    if row.failures >= free:
        # exponential backoff: base, 2*base, 4*base, ... capped
        lock = min(cfg.throttle_max_s, cfg.throttle_base_s * 2 ** (row.failures - free))
        row.locked_until = now + timedelta(seconds=lock)


def authenticate(db: Session, name: str, password: str, ip: str, cfg: ServiceConfig) -> LoginResult:
    """Check a login attempt with per-user and per-IP throttling; audit success and failure.

    A locked user or IP gets ``retry_after_s > 0`` without the password being checked.
    """
    now = utcnow()
    user_key, ip_key = f"user:{name[:100]}", f"ip:{ip}"
    wait = max(
        _lock_remaining(db.get(LoginThrottle, user_key), now),
        _lock_remaining(db.get(LoginThrottle, ip_key), now),
    )
    if wait > 0:
        audit(db, "login_throttled", user=name[:64], ip=ip)
        return LoginResult(None, wait)
    user = db.scalar(select(User).where(User.name == name))
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    if ok and user is not None and not user.disabled:
        db.execute(delete(LoginThrottle).where(LoginThrottle.key == user_key))
        audit(db, "login", user=user, ip=ip)
        return LoginResult(user)
    _record_failure(db, user_key, cfg.throttle_free_failures, cfg, now)
    _record_failure(db, ip_key, cfg.throttle_ip_free_failures, cfg, now)
    audit(
        db, "login_failed", user=name[:64], ip=ip, detail={"reason": "disabled" if ok else "bad credentials"}
    )
    log.info("failed login from %s", ip)
    return LoginResult(None)


# ---------------------------------------------------------------------------------- sessions
def create_session(db: Session, user: User, cfg: ServiceConfig) -> tuple[str, UserSession]:
    """Start a session; returns the cookie token (shown once) and the stored row."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = UserSession(
        token_hash=_token_hash(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + timedelta(seconds=cfg.session_ttl_s),
    )
    db.add(row)
    db.execute(delete(UserSession).where(UserSession.expires_at < now))
    return token, row


def lookup_session(db: Session, token: str | None) -> tuple[UserSession, User] | None:
    """The live session and its enabled user for a cookie token, else ``None``."""
    if not token or len(token) > 200:
        return None
    row = db.get(UserSession, _token_hash(token))
    if row is None or row.expires_at < utcnow():
        return None
    user = db.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return row, user


def end_session(db: Session, token: str | None) -> None:
    """Delete the session of a cookie token (logout)."""
    if token:
        db.execute(delete(UserSession).where(UserSession.token_hash == _token_hash(token)))


def csrf_ok(session_row: UserSession, sent: str | None) -> bool:
    """Constant-time comparison of the sent CSRF token with the session's."""
    return bool(sent) and hmac.compare_digest(session_row.csrf_token.encode(), str(sent).encode())
