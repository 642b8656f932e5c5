"""Shipped models: weights, versions and model cards bundled with the package.

Each shipped model version is a folder ``<name>/<version>/`` next to this file holding
``model.json``::

    {"name": "liver-cascade", "version": "0.2.0", "default": true,
     "stages": {"liver": "stage1.pt", "tumor": "stage2.pt"},
     "card": "MODEL_CARD.md", "postprocess": {...}, "validation": {...}}

``resolve_model(name_or_path)`` accepts ``default`` (the version marked default), a shipped
model name (its default version, else its newest), ``name@version`` (exactly that version, e.g.
``liver-cascade@0.1.0``), a folder with a ``model.json`` or with ``stage1.pt``/``stage2.pt``
checkpoints written by ``liverseg train``, or a single checkpoint file (a one-stage model applied
to whole slices). This module does not import torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liverseg.errors import InputError

__all__ = ["CATALOG_DIR", "ModelBundle", "list_shipped_models", "resolve_model"]

CATALOG_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelBundle:
    """A resolved model: its stage checkpoints and its description.

    Attributes:
        name: model name (``liver-cascade``) or the checkpoint path for ad-hoc models.
        version: semantic version string.
        stages: ``{"liver": path, "tumor": path}`` for a cascade, or ``{"single": path}``.
        folder: folder the model came from.
        info: the parsed ``model.json`` (postprocess settings, validation, card file...).
    """

    name: str
    version: str
    stages: dict[str, Path]
    folder: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def card_path(self) -> Path | None:
        card = self.info.get("card")
        path = self.folder / card if card else None
        return path if path is not None and path.exists() else None

    def describe(self) -> dict[str, Any]:
        """Name, version and stage files, JSON-serialisable (for reports and the model registry)."""
        return {
            "name": self.name,
            "version": self.version,
            "stages": {k: v.name for k, v in self.stages.items()},
        }


def _load_folder(folder: Path) -> ModelBundle:
    meta_path = folder / "model.json"
    if meta_path.exists():
        try:
            info = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"model.json is not valid JSON ({exc})", meta_path) from exc
        stages = {k: folder / v for k, v in info.get("stages", {}).items()}
        name, version = str(info.get("name", folder.name)), str(info.get("version", "0"))
    else:
        info = {}
        stages = {k: folder / f for k, f in (("liver", "stage1.pt"), ("tumor", "stage2.pt"))}
        stages = {k: p for k, p in stages.items() if p.exists()}
        if not stages:
            stages = {
                k: folder / f"{k}/best.pt" for k in ("stage1", "stage2") if (folder / k / "best.pt").exists()
            }
            stages = {("liver" if k == "stage1" else "tumor"): p for k, p in stages.items()}
        name, version = folder.name, "local"
    missing = [str(p) for p in stages.values() if not p.exists()]
    if not stages or missing:
        raise InputError(
            "expected a model folder with model.json (or stage1.pt and stage2.pt, or a cascade run with "
            f"stage1/best.pt and stage2/best.pt); missing: {missing or 'all stage checkpoints'}",
            folder,
        )
    return ModelBundle(name, version, stages, folder, info)


def _version_key(version: str) -> tuple[int, ...]:
    """``"0.10.1"`` -> ``(0, 10, 1)`` (non-numeric parts sort first)."""
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def _shipped() -> list[ModelBundle]:
    """Every shipped model version, sorted by name then version."""
    bundles = [_load_folder(m.parent) for m in CATALOG_DIR.glob("*/*/model.json")]
    return sorted(bundles, key=lambda b: (b.name, _version_key(b.version)))


def list_shipped_models() -> list[dict[str, Any]]:
    """Every model version bundled with the package: name, version, default flag, card, validation."""
    out = []
    for bundle in _shipped():
        card = bundle.card_path
        out.append(
            {
                **bundle.describe(),
                "default": bool(bundle.info.get("default", False)),
                "status": bundle.info.get("status", "active"),
                "card": card.read_text() if card else "",
                "validation": bundle.info.get("validation", {}),
                "trained": bundle.info.get("trained", {}),
            }
        )
    return out


def resolve_model(name_or_path: str | Path = "default") -> ModelBundle:
    """Find a model by shipped name, folder or checkpoint path (see the module docstring)."""
    key = str(name_or_path)
    shipped = _shipped()
    if key == "default":
        defaults = [b for b in shipped if b.info.get("default")]
        if len(defaults) == 1:
            return defaults[0]
        raise InputError(
            f"expected exactly one shipped model marked default under {CATALOG_DIR}, found "
            f"{len(defaults)}; pass --model NAME@VERSION or a path to a trained model"
        )
    name, _, version = key.partition("@")
    same_name = [b for b in shipped if b.name == name]
    if same_name:
        if version:
            for b in same_name:
                if b.version == version:
                    return b
            raise InputError(
                f"model {name!r} has no version {version!r}; shipped versions: "
                f"{', '.join(b.version for b in same_name)}"
            )
        defaults = [b for b in same_name if b.info.get("default")]
        return defaults[0] if defaults else same_name[-1]
    path = Path(key).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if path.is_file():
        if path.suffix not in (".pt", ".pth"):
            raise InputError(
                f"expected a checkpoint (.pt) written by `liverseg train`, got {path.suffix!r}", path
            )
        return ModelBundle(path.stem, "local", {"single": path}, path.parent, {})
    names = [f"{b.name}@{b.version}" for b in shipped] or ["(none shipped)"]
    raise InputError(
        f"unknown model {key!r}: expected 'default', a shipped model ({', '.join(names)}), "
        "a model folder or a checkpoint file"
    )
