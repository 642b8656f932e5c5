"""The base of liverseg's typed configs and records: frozen pydantic v2 models with one-line errors.

Every typed settings object (the training config, the synthetic-lesion parameters, the dataset
records of ``dataset.json``) is a :class:`FrozenModel`: immutable, unknown keys rejected
(``extra="forbid"``), types checked by pydantic. What liverseg adds is the error contract: a
pydantic ``ValidationError`` becomes one line naming the dotted key, what was expected and what was
received (``optim.lr: expected float, got 'fast' (str)``), raised as
:class:`~liverseg.errors.ConfigError` (or the error class a caller chooses, e.g. ``InputError`` for
a ``dataset.json`` entry).

Scalar types are strict (:data:`Float` accepts ints, :data:`Int` refuses ``8.5`` and ``"8"``,
:data:`Bool` refuses ``"yes"`` and ``1``, :data:`Str` refuses numbers); containers are lax, so a YAML
or JSON list fills a ``tuple`` field. Value checks are ``model_validator(mode="after")`` methods that
raise :class:`FieldError` naming the field they reject.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

from liverseg.errors import ConfigError

__all__ = [
    "Bool",
    "Described",
    "FieldError",
    "Float",
    "FrozenModel",
    "Int",
    "Str",
    "describe_validation_error",
    "field_annotation",
    "plain",
    "type_name",
]

M = TypeVar("M", bound="FrozenModel")

Float = Annotated[float, Strict()]  # ints accepted (stored as float); bools and strings refused
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


@dataclass(frozen=True)
class Described:
    """``Annotated`` metadata naming a type in errors: ``Annotated[tuple[Float, Float],
    Described("a (low, high) pair of numbers")]``."""

    text: str


class FieldError(ValueError):
    """A value check of a model failed: ``field`` (relative to the model) and the reason.

    ``str()`` is ``"<message>, got <value!r>"``; :func:`describe_validation_error` prefixes the
    dotted path of the model and ``field``.
    """

    def __init__(self, field: str, message: str, value: Any = ...) -> None:
        self.field = field
        super().__init__(message if value is ... else f"{message}, got {value!r}")


def check(cond: bool, field: str, message: str, value: Any) -> None:
    """Raise :class:`FieldError` ``(field, message, value)`` unless ``cond``."""
    if not cond:
        raise FieldError(field, message, value)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model_class(tp: Any) -> type[BaseModel] | None:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        found = [m for m in (_model_class(a) for a in typing.get_args(tp)) if m is not None]
        return found[0] if len(found) == 1 else None
    return None


def type_name(tp: Any) -> str:
    """Human-readable name of an annotation (``float | null``, ``list [float, float]``, or the
    :class:`Described` text of an ``Annotated`` type)."""
    if typing.get_origin(tp) is Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, Described):
                return meta.text
    tp = _unwrap(tp)
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
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is not Any:
            return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
        return "mapping"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any value"
    if _model_class(tp) is not None:
        return "mapping (section)"
    return getattr(tp, "__name__", str(tp))


def field_annotation(model: type[BaseModel], dotted: str) -> Any:
    """Annotation of the dotted field ``a.b.c`` of ``model``.

    Raises:
        ConfigError: ``unknown key '<dotted>' (valid keys of <section>: ...)`` when a part does not
            exist; a key under a free-form mapping (``model.kwargs.x``) is ``Any``.
    """
    tp: Any = model
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        cls = _model_class(tp)
        if cls is None:
            base = _unwrap(tp)
            if typing.get_origin(base) in (dict, Mapping) or base in (dict, Mapping):
                return Any
            raise ConfigError(f"unknown key '{dotted}': '{'.'.join(parts[:i])}' is not a section")
        if part not in cls.model_fields:
            prefix = ".".join(parts[:i])
            valid = ", ".join(cls.model_fields)
            raise ConfigError(
                f"unknown key '{dotted}' (valid keys{' of ' + prefix if prefix else ''}: {valid})"
            )
        tp = _field_type(cls, part)
    return tp


def _field_type(model: type[BaseModel], name: str) -> Any:
    """A field's annotation with its ``Annotated`` metadata (pydantic keeps that apart)."""
    info = model.model_fields[name]
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _lookup(data: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return ...
        data = data[part]
    return data


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def describe_validation_error(
    exc: ValidationError, model: type[BaseModel], data: Any = ..., *, where: str = "config", prefix: str = ""
) -> str:
    """One line for the first error of ``exc``: the dotted key, what was expected and what was received.

    Args:
        exc: raised while validating ``data`` as ``model``.
        model: the top-level model class (its field annotations give the expected types).
        data: the input (the received value is read from it at the failing key); ``...`` to use
            the value pydantic reports.
        where: the name used when the whole input is wrong (not a mapping).
        prefix: dotted path of ``model`` inside a larger document (``splits``), put before every key.
    """
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return f"{where}: {exc}"
    err = errors[0]
    loc = list(err["loc"])
    path: list[str] = []
    tp: Any = model
    cls: type[BaseModel] | None = model
    for part in loc:
        if cls is None or not isinstance(part, str) or part not in cls.model_fields:
            break
        path.append(part)
        tp = _field_type(cls, part)
        cls = _model_class(tp)
    dotted = _join(prefix, *path)
    kind = err["type"]
    if kind == "extra_forbidden" and cls is not None and len(loc) == len(path) + 1:
        key = _join(dotted, str(loc[len(path)]))
        valid = ", ".join(cls.model_fields)
        return f"unknown key '{key}' (valid keys{' of ' + dotted if dotted else ''}: {valid})"
    if kind in ("value_error", "assertion_error"):
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            return f"{_join(dotted, cause.field)}: {cause}"
        return f"{dotted or where}: {cause if cause is not None else err['msg']}"
    if kind == "missing" and len(path) == len(loc):
        return f"{dotted}: missing (expected {type_name(tp)})"
    value = _lookup(data, path) if data is not ... else ...
    if value is ...:
        value = err.get("input")
    if not dotted:
        return f"{where}: expected a mapping of settings, got {value!r} ({type(value).__name__})"
    return f"{dotted}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})"


def plain(obj: Any) -> Any:
    """Plain YAML/JSON-safe structure (dicts, lists, scalars) of a model tree: tuples become lists."""
    if isinstance(obj, BaseModel):
        return {name: plain(getattr(obj, name)) for name in type(obj).model_fields}
    if isinstance(obj, tuple | list):
        return [plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    return obj


class FrozenModel(BaseModel):
    """Immutable, unknown keys rejected; a bad value raises :attr:`error_class` with one clear line.

    ``Model(**values)`` (or positional values in field order) and :meth:`from_dict` raise
    :attr:`error_class` (:class:`~liverseg.errors.ConfigError`; the pydantic ``ValidationError`` is
    chained); :meth:`replace` is ``dataclasses.replace`` with validation; :meth:`to_dict` is the
    plain YAML/JSON form that :meth:`from_dict` reads back equal.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)  # schemas built on first use

    error_class: ClassVar[type[Exception]] = ConfigError

    def __init__(self, /, *args: Any, **data: Any) -> None:
        if args:  # positional values fill the fields in declaration order, as a dataclass's do
            names = list(type(self).model_fields)
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes at most {len(names)} values, got {len(args)}")
            twice = [n for n in names[: len(args)] if n in data]
            if twice:
                raise TypeError(f"{type(self).__name__} got {twice[0]!r} both by position and by name")
            data = {**dict(zip(names[: len(args)], args, strict=True)), **data}
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise self.error_class(describe_validation_error(exc, type(self), data)) from exc

    # Nested models are validated by pydantic-core directly, never through this __init__: the
    # error of a nested field then carries its full dotted path (tests/test_frozen.py checks it).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls: type[M], data: Any, *, where: str = "config") -> M:
        """Validate a (YAML/JSON-loaded) mapping; missing keys take their defaults.

        Raises:
            ConfigError: naming the dotted key, what was expected and what was received.
        """
        if data is None:
            data = {}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise cls.error_class(describe_validation_error(exc, cls, data, where=where)) from exc

    def replace(self: M, **changes: Any) -> M:
        """A copy with ``changes`` applied and validated (``dataclasses.replace`` for models)."""
        return type(self)(**{**{k: getattr(self, k) for k in type(self).model_fields}, **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON-safe, tuples as lists) of every value."""
        return plain(self)
