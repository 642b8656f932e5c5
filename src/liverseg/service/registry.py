"""Model registry: shipped models from :mod:`liverseg.catalog`, registered models, activation.

What can be registered (raw request body):

* a **zip of a model folder** (``model.json``, ``stage1.pt`` + ``stage2.pt`` or the stages it
  names, and its model card), stored as ``models/<sha256>/``: kind ``cascade`` when it has a
  liver and a tumor stage;
* a **single checkpoint** (``.pt`` of ``liverseg train``) of a one-stage network (stage
  ``single``), stored as ``models/<sha256>.pt``: kind ``single``. A stage-1 or stage-2
  checkpoint alone is refused: it is half of a cascade, not a model.

Exactly one model is ``active`` for new jobs (a partial unique index enforces it) and
:func:`activate` retires the previous one in the same transaction. A model can be activated only
when :func:`activation_problems` is empty: a complete cascade, with a model card, whose
validation gate (:mod:`liverseg.service.gate`) on the bundled sample passed.
"""

from __future__ import annotations

import json
import logging
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from liverseg import catalog
from liverseg.errors import InputError
from liverseg.service.db import MODEL_STATES, Database, ModelVersion
from liverseg.service.storage import Storage, _bad_member_name
from liverseg.training.checkpoint import load_checkpoint

__all__ = [
    "activate",
    "activation_problems",
    "model_card_from_meta",
    "read_checkpoint_meta",
    "register_upload",
    "set_status",
    "sync_shipped_models",
]

log = logging.getLogger(__name__)
MAX_MODEL_FILES = 32
MAX_MODEL_BYTES = 2 * 1024**3


def _shipped_models() -> list[dict[str, Any]]:
    """The catalog's models (looked up on the module at call time, so tests may replace it); a
    damaged catalog raises: the service does not start on a broken installation."""
    return catalog.list_shipped_models()


def _shipped_kind(m: dict[str, Any]) -> str:
    return "cascade" if {"liver", "tumor"} <= set(m.get("stages") or {}) else "single"


def sync_shipped_models(database: Database) -> None:
    """Insert shipped models missing from the registry; activate the default if none is active
    (the shipped default comes with its own validation, see its model card)."""
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
            info = json.loads(
                json.dumps({k: v for k, v in m.items() if k not in ("card", "validation")}, default=str)
            )
            info["kind"] = _shipped_kind(m)
            row = ModelVersion(
                name=name,
                version=version,
                source="shipped",
                path=f"{name}@{version}",
                status="candidate",
                card=str(m.get("card") or ""),
                metrics=dict(m.get("validation") or {}),
                info=info,
            )
            if m.get("default") and not have_active:
                row.status, have_active = "active", True
            s.add(row)
            log.info("registered shipped model %s %s", name, version)


def read_checkpoint_meta(path: Path, what: str = "the file") -> dict[str, Any]:
    """Metadata of a ``liverseg train`` checkpoint (validated by rebuilding its network).

    Raises:
        InputError: one line saying what is wrong, without server paths or library traces.
    """
    try:
        loaded = load_checkpoint(path)
    except InputError as exc:
        reason = str(exc).replace(str(path), path.name).split(" (")[0]
        raise InputError(f"{what} is not a usable liverseg checkpoint: {reason}") from exc
    except Exception as exc:  # torch/pickle errors on foreign files: name the kind only
        raise InputError(f"{what} is not a liverseg checkpoint ({type(exc).__name__})") from exc
    meta = dict(loaded.meta)
    meta["spec"] = loaded.spec.to_dict() if hasattr(loaded.spec, "to_dict") else str(loaded.spec)
    meta["stage"] = loaded.spec.stage
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


def _is_model_folder_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(Path(n).name == "model.json" and n.count("/") <= 1 for n in zf.namelist())


def _extract_model_zip(path: Path, dest: Path) -> Path:
    """Extract a model-folder zip safely into ``dest``; returns the folder holding model.json."""
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_MODEL_FILES:
            raise InputError(f"a model zip may hold at most {MAX_MODEL_FILES} files, got {len(infos)}")
        if sum(i.file_size for i in infos) > MAX_MODEL_BYTES:
            raise InputError(f"a model zip may hold at most {MAX_MODEL_BYTES} bytes uncompressed")
        for info in infos:
            if _bad_member_name(info.filename) or stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(f"zip entry not allowed in a model zip: {info.filename!r}")
        dest.mkdir(parents=True, exist_ok=False)
        for info in infos:
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    found = sorted(dest.rglob("model.json"), key=lambda p: len(p.parts))
    return found[0].parent


def _cascade_row(folder: Path, sha256: str, name: str | None) -> ModelVersion:
    try:
        bundle = catalog.resolve_model(folder)
    except InputError as exc:
        raise InputError(str(exc).replace(str(folder), "the model folder")) from None
    stages = {}
    for stage, ckpt in bundle.stages.items():
        meta = read_checkpoint_meta(ckpt, f"stage {stage!r} ({ckpt.name})")
        stages[stage] = {"file": ckpt.name, "network": meta.get("model_name"), "stage": meta.get("stage")}
    kind = "cascade" if {"liver", "tumor"} <= set(stages) else "incomplete"
    card_path = bundle.card_path
    card = card_path.read_text(encoding="utf-8") if card_path else ""
    return ModelVersion(
        name=(name or bundle.name)[:128],
        version=str(bundle.version)[:64],
        source="registered",
        path=str(folder),
        status="candidate",
        card=card,
        metrics=dict(bundle.info.get("validation") or {}),
        info={"kind": kind, "stages": stages, "card_file": bool(card.strip())},
        sha256=sha256,
    )


def register_upload(
    s: Session, storage: Storage, upload: Path, sha256: str, *, name: str | None = None
) -> ModelVersion:
    """Register an uploaded model (zip of a model folder, or one checkpoint) as a ``candidate``.

    The upload is moved under ``models/``; on any refusal nothing is left behind.
    """
    if _is_model_folder_zip(upload):
        folder = storage.root / "models" / sha256
        if folder.exists():
            raise InputError("this model is already registered (same file)")
        try:
            row = _cascade_row(_extract_model_zip(upload, folder), sha256, name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            upload.unlink(missing_ok=True)
    else:
        final = storage.model_path(sha256)
        if final.exists():
            upload.unlink(missing_ok=True)
            raise InputError("this model is already registered (same file)")
        upload.replace(final)
        try:
            meta = read_checkpoint_meta(final)
            if meta.get("stage") in ("liver", "tumor"):
                which = (
                    "stage 1 (liver)"
                    if meta["stage"] == "liver"
                    else "stage 2 (liver and tumor in the liver box)"
                )
                raise InputError(
                    f"this checkpoint is {which} of a cascade, not a model on its own: register a zip of "
                    "the model folder (model.json, stage1.pt, stage2.pt and its model card)"
                )
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        mname = (name or str(meta.get("name") or meta.get("model_name") or "model"))[:128]
        version = str(meta.get("version") or f"{str(meta.get('created', ''))[:10]}-{sha256[:8]}".lstrip("-"))[
            :64
        ]
        row = ModelVersion(
            name=mname,
            version=version,
            source="registered",
            path=str(final),
            status="candidate",
            card=model_card_from_meta(mname, version, meta),
            metrics=dict(meta.get("metrics") or {}),
            info={**{k: v for k, v in meta.items() if k != "metrics"}, "kind": "single", "card_file": False},
            sha256=sha256,
        )
    if s.scalar(
        select(ModelVersion).where(ModelVersion.name == row.name, ModelVersion.version == row.version)
    ):
        shutil.rmtree(storage.root / "models" / sha256, ignore_errors=True)
        storage.model_path(sha256).unlink(missing_ok=True)
        raise InputError(f"model {row.name} {row.version} is already registered")
    s.add(row)
    s.flush()
    return row


def activation_problems(row: ModelVersion) -> list[str]:
    """Why ``row`` cannot be activated (empty when it can)."""
    info = row.info or {}
    problems = []
    kind = info.get("kind")
    if kind != "cascade":
        what = {"single": "a single-stage checkpoint", "incomplete": "a model folder without both stages"}
        problems.append(
            f"not a complete cascade: it is {what.get(str(kind), 'of unknown kind')} "
            "(a liver stage and a tumor stage are required)"
        )
    if not (row.card or "").strip() or (row.source == "registered" and not info.get("card_file")):
        problems.append("no model card: the model folder must include the card its model.json names")
    gate = info.get("gate") or {}
    if not gate:
        problems.append("the validation gate has not been run on it")
    elif not gate.get("passed"):
        problems.append(f"the validation gate failed: {gate.get('message')}")
    return problems


def activate(s: Session, model_id: int) -> ModelVersion:
    """Make ``model_id`` the one active model (the previous one becomes ``retired``).

    Raises:
        InputError: the model does not exist or :func:`activation_problems` lists a reason.
    """
    row = s.get(ModelVersion, model_id)
    if row is None:
        raise InputError(f"no model with id {model_id}")
    problems = activation_problems(row)
    if problems:
        raise InputError(f"model {row.name} {row.version} cannot be activated: " + "; ".join(problems))
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
