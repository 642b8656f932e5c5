"""Model registry: shipped models from :mod:`liverseg.catalog`, registered checkpoints, activation.

Exactly one model is ``active`` for new jobs; the database enforces it with a partial unique
index, and :func:`activate` retires the previous active model in the same transaction.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liverseg.errors import InputError
from liverseg.service.db import MODEL_STATES, Database, ModelVersion

__all__ = [
    "activate",
    "model_card_from_meta",
    "read_checkpoint_meta",
    "register_checkpoint",
    "set_status",
    "sync_shipped_models",
]

log = logging.getLogger(__name__)


def _shipped_models() -> list[dict[str, Any]]:
    try:
        from liverseg.catalog import list_shipped_models
    except ImportError:
        return []
    try:
        return list_shipped_models()
    except Exception:  # a broken catalog must not stop the service; it is logged
        log.exception("cannot list the shipped models")
        return []


def sync_shipped_models(database: Database) -> None:
    """Insert shipped models missing from the registry; activate the default if none is active."""
    shipped = _shipped_models()
    if not shipped:
        return
    with database.session() as s:
        have_active = s.scalar(select(ModelVersion.id).where(ModelVersion.status == "active")) is not None
        for m in shipped:
            name, version = str(m.get("name")), str(m.get("version"))
            row = s.scalar(
                select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
            )
            if row is not None:
                if row.source == "shipped" and row.path != f"{name}@{version}":
                    # registries written before versioned shipped models stored the bare name,
                    # which now resolves to that name's default version
                    row.path = f"{name}@{version}"
                continue
            row = ModelVersion(
                name=name,
                version=version,
                source="shipped",
                path=f"{name}@{version}",
                status="candidate",
                card=str(m.get("card") or ""),
                metrics=dict(m.get("validation") or {}),
                info=json.loads(
                    json.dumps({k: v for k, v in m.items() if k not in ("card", "validation")}, default=str)
                ),
            )
            if m.get("default") and not have_active:
                row.status, have_active = "active", True
            s.add(row)
            log.info("registered shipped model %s %s", name, version)


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """Metadata of a ``liverseg train`` checkpoint (validated by rebuilding its network)."""
    from liverseg.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(path)
    meta = dict(loaded.meta)
    meta["spec"] = loaded.spec.to_dict() if hasattr(loaded.spec, "to_dict") else str(loaded.spec)
    return json.loads(json.dumps(meta, default=str))


def model_card_from_meta(name: str, version: str, meta: dict[str, Any]) -> str:
    """A Markdown model card built from checkpoint metadata."""
    lines = [f"# {name} {version}", "", "Registered from a `liverseg train` checkpoint.", ""]
    for key in ("model_name", "model_kwargs", "spec", "dataset_fingerprint", "code_version", "created"):
        if key in meta:
            lines.append(f"- **{key}**: `{json.dumps(meta[key], default=str)}`")
    metrics = meta.get("metrics") or {}
    if metrics:
        lines += ["", "## Validation metrics", ""]
        lines += [f"- {k}: {v}" for k, v in metrics.items()]
    lines += ["", "Research use only; not a medical device."]
    return "\n".join(lines)


def register_checkpoint(s: Session, path: Path, sha256: str, *, name: str | None = None) -> ModelVersion:
    """Add a stored checkpoint as a ``candidate`` model (name/version from its metadata)."""
    meta = read_checkpoint_meta(path)
    name = (name or str(meta.get("name") or meta.get("model_name") or "model"))[:128]
    version = str(meta.get("version") or f"{str(meta.get('created', ''))[:10]}-{sha256[:8]}".lstrip("-"))[:64]
    if s.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)):
        raise InputError(f"model {name} {version} is already registered")
    row = ModelVersion(
        name=name,
        version=version,
        source="registered",
        path=str(path),
        status="candidate",
        card=model_card_from_meta(name, version, meta),
        metrics=dict(meta.get("metrics") or {}),
        info={k: v for k, v in meta.items() if k != "metrics"},
        sha256=sha256,
    )
    s.add(row)
    s.flush()
    return row


def activate(s: Session, model_id: int) -> ModelVersion:
    """Make ``model_id`` the one active model (the previous one becomes ``retired``)."""
    row = s.get(ModelVersion, model_id)
    if row is None:
        raise InputError(f"no model with id {model_id}")
    s.execute(
        update(ModelVersion)
        .where(ModelVersion.status == "active", ModelVersion.id != model_id)
        .values(status="retired")
    )
    row.status = "active"
    try:
        s.flush()
    except IntegrityError as exc:  # a concurrent activation won the race
        raise InputError("another model was activated at the same time; reload and retry") from exc
    return row


def set_status(s: Session, model_id: int, status: str) -> ModelVersion:
    """Set a model's status (``activate`` for ``active``)."""
    if status not in MODEL_STATES:
        raise InputError(f"model status must be one of {', '.join(MODEL_STATES)}, got {status!r}")
    if status == "active":
        return activate(s, model_id)
    row = s.get(ModelVersion, model_id)
    if row is None:
        raise InputError(f"no model with id {model_id}")
    row.status = status
    return row
