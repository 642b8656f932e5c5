"""Shipped model versions (liverseg.catalog): name, name@version, default, folders, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liverseg import catalog
from liverseg.catalog import list_shipped_models, resolve_model
from liverseg.errors import InputError


def _version(root: Path, name: str, version: str, *, default: bool = False) -> Path:
    folder = root / name / version
    folder.mkdir(parents=True)
    for f in ("stage1.pt", "stage2.pt"):
        (folder / f).write_bytes(b"x")
    info = {
        "name": name,
        "version": version,
        "default": default,
        "stages": {"liver": "stage1.pt", "tumor": "stage2.pt"},
    }
    (folder / "model.json").write_text(json.dumps(info))
    return folder


def test_versions_resolve_by_name_version_and_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "CATALOG_DIR", tmp_path)
    _version(tmp_path, "liver-cascade", "0.1.0")
    _version(tmp_path, "liver-cascade", "0.10.0")
    _version(tmp_path, "liver-cascade", "0.2.0", default=True)
    _version(tmp_path, "other", "1.0.0")
    assert resolve_model("default").version == "0.2.0"
    assert resolve_model("liver-cascade").version == "0.2.0"  # the default version of that name
    assert resolve_model("liver-cascade@0.1.0").version == "0.1.0"
    assert resolve_model("other").version == "1.0.0"  # no default: the newest
    assert [m["version"] for m in list_shipped_models() if m["name"] == "liver-cascade"] == [
        "0.1.0",
        "0.2.0",
        "0.10.0",
    ]
    with pytest.raises(InputError, match=r"no version .9\.9.*0\.1\.0, 0\.2\.0, 0\.10\.0"):
        resolve_model("liver-cascade@9.9")
    with pytest.raises(InputError, match=r"liver-cascade@0\.2\.0"):
        resolve_model("nope")


def test_default_must_be_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "CATALOG_DIR", tmp_path)
    _version(tmp_path, "a", "1", default=True)
    _version(tmp_path, "b", "1", default=True)
    with pytest.raises(InputError, match=r"exactly one shipped model marked default under .*, found 2"):
        resolve_model("default")


def test_the_installed_catalog_has_one_default_and_both_releases() -> None:
    versions = {(m["name"], m["version"]) for m in list_shipped_models()}
    assert ("liver-cascade", "0.1.0") in versions
    default = resolve_model("default")
    assert default.name == "liver-cascade" and default.card_path is not None
    assert all(p.is_file() for p in default.stages.values())
