"""Study identity: patient ID, accession number, study date, series description; de-identification.

At upload the identity comes from the DICOM header of the series that will be segmented
(:func:`liverseg.io.dicom_series.read_series_identity`); the user's entries (patient ID, study
date; the study name is the label) fill what the header lacks and are all a NIfTI upload has.

With ``liverseg serve --deidentify`` the patient ID and the accession number are replaced by
``anon-`` + the first 16 hex digits of HMAC-SHA256(secret, value) before anything is stored:
the same patient always gets the same pseudonym (follow-up comparison still works), and the
value cannot be recovered without the secret, a random key created in ``<data-dir>/secret.key``
(mode 0600) on first use. Study date and series description are kept (the follow-up needs the
date). The stored upload and the DICOM-SEG still carry the original DICOM header.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from liverseg.errors import InputError

__all__ = [
    "KEY_FILE",
    "merge_identity",
    "parse_user_date",
    "pseudonym",
    "pseudonymise",
    "service_key",
    "study_identity",
]

KEY_FILE = "secret.key"
MAX_ID_CHARS = 128


def service_key(data_dir: str | Path) -> bytes:
    """The service's secret key (32 random bytes), created with mode 0600 on first use."""
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
                fh.flush()
                os.fsync(fh.fileno())
    key = path.read_bytes()
    if len(key) != 32:
        raise InputError(f"expected a 32-byte key in {KEY_FILE}, found {len(key)} bytes", path)
    return key


def pseudonym(key: bytes, value: str) -> str:
    """``anon-`` + 16 hex digits of HMAC-SHA256(key, value)."""
    return "anon-" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def pseudonymise(identity: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``identity`` with patient ID and accession number replaced by pseudonyms (marked)."""
    out = dict(identity)
    for field in ("patient_id", "accession_number"):
        if out.get(field):
            out[field] = pseudonym(key, str(out[field]))
    out["deidentified"] = True
    return out


def parse_user_date(text: str) -> _dt.date | None:
    """A study date typed by the user, ``YYYY-MM-DD``; empty -> None; anything else -> InputError."""
    text = unquote(text or "").strip()
    if not text:
        return None
    try:
        return _dt.date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"study date must be YYYY-MM-DD, got {text!r}") from exc


def clean_text(header_value: str, what: str) -> str | None:
    """A percent-encoded header value as stripped text (``None`` when empty)."""
    text = unquote(header_value or "").strip()
    if len(text) > MAX_ID_CHARS:
        raise InputError(f"{what} must be at most {MAX_ID_CHARS} characters, got {len(text)}")
    return text or None


def merge_identity(from_dicom: dict[str, Any] | None, user: dict[str, Any]) -> dict[str, Any]:
    """The DICOM header's identity, with the user's entries filling only what it lacks."""
    merged = dict(from_dicom or {})
    for key, value in user.items():
        if value is not None and not merged.get(key):
            merged[key] = value
    return merged


def study_identity(from_dicom: dict[str, Any] | None, user: dict[str, Any], config: Any) -> dict[str, Any]:
    """The identity columns of a new study: the DICOM header's identity (``YYYY-MM-DD`` dates),
    the user's entries where it has none, pseudonymised when ``config.deidentify``."""
    identity = merge_identity(from_dicom, user)
    if isinstance(identity.get("study_date"), str):
        identity["study_date"] = _dt.date.fromisoformat(identity["study_date"])
    if config.deidentify:
        identity = pseudonymise(identity, service_key(config.data_dir))
    return {
        "patient_id": identity.get("patient_id"),
        "accession_number": identity.get("accession_number"),
        "study_date": identity.get("study_date"),
        "series_description": (identity.get("series_description") or "")[:200] or None,
        "deidentified": bool(identity.get("deidentified")),
    }
