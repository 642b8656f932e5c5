"""Reading and writing training configs: YAML files, ``--set key=value`` overrides, cascades.

A cascade file holds ``cascade: {stage1: liver.yaml, stage2: tumor.yaml}`` (paths relative to the
cascade file); ``liverseg train`` trains both stages in sequence into ``RUN_DIR/stage1`` and
``RUN_DIR/stage2``.
"""

from __future__ import annotations

import contextlib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Union

import yaml

from liverseg.errors import ConfigError, InputError
from liverseg.frozen import field_annotation
from liverseg.training.config import CascadeConfig, TrainConfig
from liverseg.utils import atomic_write_text

__all__ = [
    "apply_overrides",
    "config_from_dict",
    "is_cascade_file",
    "load_cascade",
    "load_config",
    "save_config",
]


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found (expected a YAML file)", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}"
        )
    return data


def _base_types(tp: Any) -> set[Any]:
    """The plain types an annotation accepts: ``Float | None`` -> ``{float, NoneType}``."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        return set().union(*(_base_types(a) for a in typing.get_args(tp)))
    return {typing.get_origin(tp) or tp}


def _parse_value(cls: type, dotted: str, text: str) -> Any:
    """YAML-parse an override value; numbers YAML 1.1 leaves as strings (``1e-3``) become floats."""
    tp = field_annotation(cls, dotted)
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    accepted = _base_types(tp)
    if (
        isinstance(value, str)
        and (float in accepted or Any in accepted)
        and value.strip().lower() not in ("inf", "nan")
    ):
        with contextlib.suppress(ValueError):
            value = float(value)
    # a string field keeps the raw text (``name=007``); a union with str (``window``: a pair or a
    # name) keeps a parsed list, which the other alternative takes
    only_str = accepted - {type(None)} == {str}
    if (
        str in accepted
        and value is not None
        and not isinstance(value, str)
        and (only_str or not isinstance(value, list))
    ):
        value = text
    return value


def apply_overrides(
    data: Mapping[str, Any], overrides: Sequence[str], cls: type | None = None
) -> dict[str, Any]:
    """Apply ``["a.b=3", ...]`` to a raw config dict (values parsed as YAML, keys checked).

    Raises:
        ConfigError: for a malformed item or an unknown key (the type is checked on load).
    """
    cls = cls or TrainConfig
    out: dict[str, Any] = _deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set: expected key=value (e.g. optim.lr=1e-3), got {item!r}")
        dotted, text = item.split("=", 1)
        dotted = dotted.strip()
        value = _parse_value(cls, dotted, text)
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {dotted}: '{part}' is not a section")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """Typed :class:`TrainConfig` from a raw dict plus ``--set`` style overrides."""
    return TrainConfig.from_dict(apply_overrides(data, overrides))


def is_cascade_file(path: str | Path) -> bool:
    """True when the YAML file is a cascade definition (top-level ``cascade`` key)."""
    return "cascade" in _read_yaml(path)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Load one stage's config file, apply overrides, check every key and type."""
    data = _read_yaml(path)
    if "cascade" in data:
        raise ConfigError(f"{path}: this is a cascade config; use load_cascade (liverseg train handles both)")
    try:
        return config_from_dict(data, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{Path(path).name}: {exc}") from exc


def load_cascade(path: str | Path, overrides: Sequence[str] = ()) -> CascadeConfig:
    """Load ``cascade: {stage1: A.yaml, stage2: B.yaml}``; overrides apply to both stages.

    An override may target one stage only with the prefix ``stage1.`` / ``stage2.``.
    """
    data = _read_yaml(path)
    casc = data.get("cascade")
    extra = set(data) - {"cascade"}
    if extra:
        raise ConfigError(f"unknown key '{sorted(extra)[0]}' in cascade file (valid keys: cascade)")
    if not isinstance(casc, dict) or set(casc) != {"stage1", "stage2"}:
        raise ConfigError(f"cascade: expected a mapping with keys stage1 and stage2, got {casc!r}")
    loaded = []
    for key in ("stage1", "stage2"):
        mine = [o.split(".", 1)[1] for o in overrides if o.startswith(f"{key}.")]
        shared = [o for o in overrides if not o.startswith(("stage1.", "stage2."))]
        loaded.append(load_config(Path(path).parent / str(casc[key]), [*shared, *mine]))
    if loaded[0].stage.stage != "liver" or loaded[1].stage.stage != "tumor":
        raise ConfigError(
            "cascade: stage1 must be a 'liver' stage and stage2 a 'tumor' stage, got "
            f"{loaded[0].stage.stage!r} and {loaded[1].stage.stage!r}"
        )
    return CascadeConfig(stage1=loaded[0], stage2=loaded[1])


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically); :func:`load_config` reads it back equal."""
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None)
    return atomic_write_text(path, text)
