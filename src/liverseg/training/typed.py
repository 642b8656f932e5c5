"""Typed loading of frozen dataclasses from plain dicts (YAML/JSON), with field-naming errors.

Written here rather than taken from a library because the project's rules ask for errors that name
the dotted field (``optim.lr: expected float, got 'fast' (str)``) and for strict unknown-key
checks, and the dependency budget excludes pydantic/omegaconf. Supported annotations: ``int``,
``float`` (ints accepted), ``bool`` (strict), ``str``, ``Literal[...]``, ``X | None``,
``tuple[X, ...]``, fixed ``tuple[A, B]``, ``dict[str, Any]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

from liverseg.errors import ConfigError

__all__ = ["field_type", "from_dict", "to_dict", "type_name"]

T = TypeVar("T")


def type_name(tp: Any) -> str:
    """Human-readable name of an annotation (``float | None``, ``tuple[int, ...]``)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return "list [" + ", ".join(type_name(a) for a in args) + "]"
    if origin in (dict, Mapping):
        return "mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping (section)"
    return getattr(tp, "__name__", str(tp))


def _fail(path: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"{path}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})")


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise _fail(path, tp, value)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _fail(path, tp, value)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ConfigError:
                continue
        raise _fail(path, tp, value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _fail(path, tp, value)
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values ({type_name(tp)}), got {list(value)!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _fail(path, tp, value)
        return {str(k): v for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)  # type: ignore[arg-type]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(path, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(path, tp, value)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _fail(path, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(path, tp, value)
    raise ConfigError(f"{path}: unsupported annotation {tp!r}")  # a bug in a config class


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and types recursively.

    Raises:
        ConfigError: naming the dotted field for an unknown key, a wrong type or a bad value
            (a dataclass ``__post_init__`` may raise ``ConfigError`` for value checks).
    """
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r} ({type(data).__name__})")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(
            f"unknown key '{key}' (valid keys{' of ' + path if path else ''}: {', '.join(names)})"
        )
    kwargs = {}
    for name in names:
        if name in data:
            sub = f"{path}.{name}" if path else name
            kwargs[name] = _convert(hints[name], data[name], sub)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Plain YAML-safe structure (dicts, lists, scalars) of a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def field_type(cls: type, dotted: str) -> Any:
    """Annotation of the dotted field ``a.b.c`` of dataclass ``cls``; ConfigError if it does not exist."""
    tp: Any = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
            # free-form mappings (model.kwargs, ...) accept any sub-key
            if typing.get_origin(tp) in (dict, Mapping):
                return Any
            raise ConfigError(f"unknown key '{dotted}': '{'.'.join(parts[:i])}' is not a section")
        hints = _hints(tp)
        if part not in hints:
            prefix = ".".join(parts[:i])
            valid = ", ".join(hints)
            raise ConfigError(
                f"unknown key '{dotted}' (valid keys{' of ' + prefix if prefix else ''}: {valid})"
            )
        tp = hints[part]
    return tp
