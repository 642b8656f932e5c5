"""Accounts, passwords (argon2), server-side sessions, CSRF tokens, login throttling and audit.

Session cookies carry a random token; the database stores only its sha256, so a leaked database
does not leak live sessions. Each session has its own CSRF token, which every state-changing
request must send back in the ``X-CSRF-Token`` header.

User names are normalised (:func:`normalize_user_name`: surrounding white space removed, lower
case, then 2-64 of ``a-z 0-9 . _ -``), so ``Alice``, ``alice`` and ``alice\n`` are one account,
at creation, at login and in the throttling key. Passwords must pass :func:`check_password`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.service.config import ServiceConfig
from liverseg.service.db import ROLES, AuditEvent, LoginThrottle, User, UserSession, utcnow

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "LoginResult",
    "ViewLog",
    "add_user",
    "audit",
    "authenticate",
    "check_password",
    "create_session",
    "csrf_ok",
    "end_session",
    "hash_password",
    "lookup_session",
    "normalize_user_name",
    "record_view",
    "reset_password",
    "set_disabled",
    "verify_password",
]

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MIN_DISTINCT_CHARACTERS = 5
_NAME_RE = re.compile(r"[a-z0-9._-]{2,64}")
# The most common passwords of 10+ characters once trailing digits and symbols are removed.
_COMMON = frozenset(
    {
        "password",
        "passw0rd",
        "qwertyuiop",
        "qwerty",
        "asdfghjkl",
        "zxcvbnm",
        "1q2w3e4r5t",
        "iloveyou",
        "letmein",
        "welcome",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "liverseg",
        "administrator",
        "changeme",
    }
)
_hasher = PasswordHasher()
# A real hash to verify against for unknown users, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def normalize_user_name(name: str) -> str:
    """The canonical form of a user name: surrounding white space removed, lower case.

    Raises :class:`InputError` unless the result is 2-64 characters of ``a-z 0-9 . _ -`` (no
    control characters, no inner spaces, no look-alike Unicode).
    """
    norm = name.strip().lower()
    if not _NAME_RE.fullmatch(norm):
        raise InputError(
            f"user name must be 2-64 characters of letters, digits, '.', '_' or '-', got {name!r}"
        )
    return norm


def _is_run(text: str) -> bool:
    """True for a straight run of characters: ``0123456789``, ``abcdefghij``, ``9876543210``."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    return len(steps) == 1 and abs(steps.pop()) <= 1


def check_password(password: str, user_name: str | None = None) -> None:
    """Refuse a weak password with :class:`InputError` saying why.

    Rules: :data:`MIN_PASSWORD_LENGTH` to :data:`MAX_PASSWORD_LENGTH` characters, no control
    characters, at least :data:`MIN_DISTINCT_CHARACTERS` different characters (``aaaaaaaaaa`` and
    ``ababababab`` fail), not a straight run (``0123456789``), not the user name with only digits
    or symbols added, and not one of the most common passwords with digits or symbols added.
    """
    n = len(password)
    if n < MIN_PASSWORD_LENGTH:
        raise InputError(f"password must have at least {MIN_PASSWORD_LENGTH} characters, got {n}")
    if n > MAX_PASSWORD_LENGTH:
        raise InputError(f"password must have at most {MAX_PASSWORD_LENGTH} characters, got {n}")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise InputError("password must not contain control characters (tab, newline, ...)")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        raise InputError(
            f"password must use at least {MIN_DISTINCT_CHARACTERS} different characters, got {len(set(password))}"
        )
    lower = password.lower()
    if _is_run(lower):
        raise InputError("password must not be a straight run of characters such as 0123456789")
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lower)
    if user_name and (not core or core == user_name.strip().lower() or user_name.strip().lower() == lower):
        raise InputError("password must not be the user name (with digits or symbols added)")
    if core in _COMMON:
        raise InputError("password is one of the most common passwords; choose another")


def hash_password(password: str, user_name: str | None = None) -> str:
    """Argon2id hash of ``password`` after :func:`check_password`."""
    check_password(password, user_name)
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
def _find_user(db: Session, name: str) -> User | None:
    """The account whose name equals ``name`` ignoring case (names made before normalisation
    may hold capitals)."""
    return db.scalar(select(User).where(func.lower(User.name) == name).order_by(User.id).limit(1))


def add_user(db: Session, name: str, password: str, role: str) -> User:
    """Create an account (name normalised). Raises :class:`InputError` for a bad name, role or
    password, or a name taken in any letter case."""
    name = normalize_user_name(name)
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if _find_user(db, name) is not None:
        raise InputError(f"user {name!r} already exists")
    user = User(name=name, password_hash=hash_password(password, name), role=role, disabled=False)
    db.add(user)
    db.flush()
    audit(db, "user_add", user=None, target=name, detail={"role": role})
    return user


def _get_user(db: Session, name: str) -> User:
    user = _find_user(db, normalize_user_name(name))
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
    user.password_hash = hash_password(password, user.name)
    db.execute(delete(UserSession).where(UserSession.user_id == user.id))
    db.execute(delete(LoginThrottle).where(LoginThrottle.key == f"user:{user.name.lower()}"))
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
    """Count one failure atomically (``failures = failures + 1`` in SQL, so concurrent failed logins
    all count), then set the lockout from the new count."""
    bumped = db.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == key)
        .values(failures=LoginThrottle.failures + 1, last_failure_at=now)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        try:
            with db.begin_nested():
                db.add(LoginThrottle(key=key, failures=1, last_failure_at=now))
        except IntegrityError:  # another request created it meanwhile
            db.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == key)
                .values(failures=LoginThrottle.failures + 1, last_failure_at=now)
            )
    failures = int(db.scalar(select(LoginThrottle.failures).where(LoginThrottle.key == key)) or 0)
    if failures >= free:
        # exponential backoff: base, 2*base, 4*base, ... capped
        lock = min(cfg.throttle_max_s, cfg.throttle_base_s * 2 ** min(failures - free, 30))
        db.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(locked_until=now + timedelta(seconds=lock))
        )


def authenticate(db: Session, name: str, password: str, ip: str, cfg: ServiceConfig) -> LoginResult:
    """Check a login attempt with per-user and per-IP throttling; audit success and failure.

    The name is normalised (case, white space) for the lookup and the throttling key; a name
    that cannot be valid is a failed login like a wrong password. A locked user or IP gets
    ``retry_after_s > 0`` without the password being checked.
    """
    now = utcnow()
    try:
        norm = normalize_user_name(name)
    except InputError:
        norm = name.strip().lower()[:64]
    user_key, ip_key = f"user:{norm[:100]}", f"ip:{ip}"
    wait = max(
        _lock_remaining(db.get(LoginThrottle, user_key), now),
        _lock_remaining(db.get(LoginThrottle, ip_key), now),
    )
    if wait > 0:
        audit(db, "login_throttled", user=norm, ip=ip)
        return LoginResult(None, wait)
    user = _find_user(db, norm) if _NAME_RE.fullmatch(norm) else None
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    if ok and user is not None and not user.disabled:
        db.execute(delete(LoginThrottle).where(LoginThrottle.key == user_key))
        audit(db, "login", user=user, ip=ip)
        return LoginResult(user)
    _record_failure(db, user_key, cfg.throttle_free_failures, cfg, now)
    _record_failure(db, ip_key, cfg.throttle_ip_free_failures, cfg, now)
    audit(db, "login_failed", user=norm, ip=ip, detail={"reason": "disabled" if ok else "bad credentials"})
    log.info("failed login from %s", ip)
    return LoginResult(None)


# ---------------------------------------------------------------------------------- views
class ViewLog:
    """Remembers which session viewed which study when, so the access log gets one
    ``study_view`` event per study view, not one per slice request.

    A view is logged when the session has not touched the study for ``window_s`` seconds (in
    this process). Thread-safe; bounded to ``max_entries`` (the oldest are forgotten).
    """

    def __init__(self, window_s: float = 1800.0, max_entries: int = 10000) -> None:
        self.window_s, self.max_entries = window_s, max_entries
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def should_log(self, session_key: str, study_id: str) -> bool:
        """True (and remembered) when this session's access to the study starts a new view."""
        now = time.monotonic()
        key = (session_key, study_id)
        with self._lock:
            last = self._seen.get(key)
            self._seen[key] = now
            if len(self._seen) > self.max_entries:
                for old in sorted(self._seen, key=self._seen.__getitem__)[: self.max_entries // 10]:
                    del self._seen[old]
        return last is None or now - last > self.window_s


def record_view(views: ViewLog, db: Session, auth: Any, study_id: str, ip: str, route: str) -> None:
    """Audit ``study_view`` of ``study_id`` by the authenticated user when a new view starts.

    ``auth`` is the request's :class:`~liverseg.service.deps.Auth`; ``route`` the route template
    (e.g. ``/api/studies/{study_id}/viewer``) that opened the view.
    """
    if views.should_log(auth.session.token_hash, study_id):
        audit(db, "study_view", user=auth.user, target=f"study:{study_id}", ip=ip, detail={"via": route})


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
