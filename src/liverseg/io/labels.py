"""Label maps: :class:`LabelMap`, uint8 with 0 background, 1 liver, 2 tumor, checked once.

Like TorchIO's ``ScalarImage``/``LabelMap`` split, the type says what a volume holds: a
:class:`LabelMap` is checked when it is built (integer values in its allowed set, stored as
``uint8``), and resampling (:mod:`liverseg.preprocessing.spatial`) and writing
(:func:`liverseg.io.write_volume`) pick nearest-neighbour and ``uint8`` from the type, never from
a flag of the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import InputError
from liverseg.io.volume import Grid, Volume, fmt_triple

__all__ = [
    "LABELS",
    "LabelMap",
    "binary_mask_to_label",
    "check_label_map",
    "decode_confidence",
    "encode_confidence",
]

#: label value -> name, the contract of every label map in the package
LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "tumor"}
#: the values of a 0/255 binary mask, accepted by ``check_label_map(..., allow_binary_255=True)``
BINARY_255 = (0, 255)

_MAX_LISTED = 10


def _values(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return np.unique(array).astype(np.int64)
    if np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize <= 2:
        lo = int(array.min())
        counts = np.bincount(array.ravel().astype(np.int64) - lo)
        return np.nonzero(counts)[0] + lo
    return np.unique(array)


def _fmt_values(values: np.ndarray | list[Any]) -> str:
    values = list(np.asarray(values).tolist())
    shown = ", ".join(f"{v:g}" for v in values[:_MAX_LISTED])
    more = f", ... ({len(values)} distinct values)" if len(values) > _MAX_LISTED else ""
    return "{" + shown + more + "}"


def _fmt_allowed(allowed: tuple[int, ...]) -> str:
    return "{" + ", ".join(f"{v} ({LABELS[v]})" if v in LABELS else str(v) for v in allowed) + "}"


@dataclass(frozen=True, eq=False)
class LabelMap(Volume):
    """A label map: a :class:`Volume` whose ``uint8`` array holds values of ``allowed`` only.

    Built from any integer, bool or integral-float array; the constructor checks the values
    once and stores ``uint8``. Anything else raises :class:`InputError` naming what was
    expected and what was received (the file, when ``metadata["source"]`` says it).

    Attributes:
        allowed: the permitted values, default ``(0, 1, 2)`` (:data:`LABELS`); a 0/255 binary
            mask read with ``allow_binary_255`` has ``(0, 1, 2, 255)`` until the caller maps 255.
    """

    allowed: tuple[int, ...] = (0, 1, 2)

    def __post_init__(self) -> None:
        super().__post_init__()
        allowed = tuple(sorted({int(v) for v in self.allowed}))
        if not allowed or min(allowed) < 0 or max(allowed) > 255:
            raise InputError(f"allowed label values must be within 0..255, got {self.allowed!r}")
        object.__setattr__(self, "allowed", allowed)
        object.__setattr__(self, "array", _checked(self.array, allowed, self.metadata.get("source")))

    @classmethod
    def on(cls, grid: Volume | Grid, array: np.ndarray, **metadata: Any) -> LabelMap:
        """A label map holding ``array`` on the grid of ``grid`` (an image or another label map)."""
        g = grid if isinstance(grid, Grid) else grid.grid
        array = np.asarray(array)
        if tuple(array.shape) != g.shape:
            raise InputError(
                f"expected a label array of shape {g.shape} on the image grid, got {array.shape}"
            )
        base = {} if isinstance(grid, Grid) else dict(grid.metadata)
        return cls(array, g.spacing, g.origin, g.direction, {**base, **metadata})

    @property
    def values(self) -> list[int]:
        """The label values present, ascending."""
        return [int(v) for v in _values(self.array)]

    def __repr__(self) -> str:
        return (
            f"LabelMap(shape={self.shape}, values={self.values}, spacing_zyx={fmt_triple(self.spacing)}, "
            f"origin={fmt_triple(self.origin)})"
        )


def _checked(array: np.ndarray, allowed: tuple[int, ...], path: Any) -> np.ndarray:
    """``array`` as uint8 after checking dtype and values (see :class:`LabelMap`)."""
    kind = array.dtype.kind
    if kind not in "biuf":
        raise InputError(
            f"expected a label map of integers {_fmt_allowed(allowed)}, got dtype {array.dtype}", path
        )
    values = _values(array)
    if kind == "f" and not bool(np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0)):
        fractional = values[~np.isfinite(values) | (np.mod(values, 1) != 0)]
        raise InputError(
            f"expected a label map of integers {_fmt_allowed(allowed)}, got a {array.dtype} array with "
            f"non-integral values such as {_fmt_values(fractional)} (probabilities? threshold or argmax first)",
            path,
        )
    bad = [v for v in values.tolist() if v not in allowed]
    if bad:
        hint = ""
        if set(values.tolist()) <= set(BINARY_255) and 255 not in allowed:
            hint = (
                "; this looks like a 0/255 binary mask: read it with allow_binary_255=True and map "
                "255 to a label explicitly (binary_mask_to_label)"
            )
        raise InputError(
            f"expected a label map with values in {_fmt_allowed(allowed)}, got values {_fmt_values(values)}{hint}",
            path,
        )
    return array if array.dtype == np.uint8 else array.astype(np.uint8)


def check_label_map(
    volume: Volume, *, path: str | Path | None = None, allow_binary_255: bool = False
) -> LabelMap:
    """``volume`` as a :class:`LabelMap` (uint8, values in {0, 1, 2}, checked).

    Args:
        volume: a label map (any integer, bool or integral float dtype).
        path: the file it came from, for the error message (default ``metadata["source"]``).
        allow_binary_255: accept a 0/255 binary mask unchanged (values {0, 255}) so the caller
            can map 255 explicitly (e.g. with :func:`binary_mask_to_label`).

    Raises:
        InputError: naming the values found when any is outside {0, 1, 2} (or non-integral).
    """
    if isinstance(volume, LabelMap) and volume.allowed == (0, 1, 2) and path is None:
        return volume
    allowed = (0, 1, 2, 255) if allow_binary_255 else (0, 1, 2)
    try:
        labels = LabelMap(
            volume.array, volume.spacing, volume.origin, volume.direction, volume.metadata, allowed
        )
    except InputError as exc:
        if path is None:
            raise
        message = str(exc)
        if exc.path is not None and message.startswith(f"{exc.path}: "):
            message = message[len(f"{exc.path}: ") :]
        raise InputError(message, path) from exc
    if allow_binary_255:
        values = labels.values
        if 255 in values and (1 in values or 2 in values):
            raise InputError(
                f"expected either a 0/1/2 label map or a 0/255 binary mask, got values {_fmt_values(values)}",
                path,
            )
    return labels


def binary_mask_to_label(volume: Volume, label: int = 1) -> LabelMap:
    """Map a binary mask (any non-zero value is foreground) to a uint8 map with ``label`` (1 or 2)."""
    if label not in (1, 2):
        raise InputError(f"expected label 1 (liver) or 2 (tumor), got {label}")
    return LabelMap.on(volume, np.where(volume.array != 0, np.uint8(label), np.uint8(0)))


def encode_confidence(confidence: float) -> int:
    """A lesion confidence in [0, 1] as a byte 1..255 of a *confidence map* (0: no candidate there).

    A confidence map is a uint8 volume beside a label map: every voxel of a listed lesion
    candidate holds its encoded confidence (step 1/254), every other voxel 0. One byte per voxel,
    like the label map itself.
    """
    return round(float(np.clip(confidence, 0.0, 1.0)) * 254.0) + 1


def decode_confidence(code: np.ndarray | int) -> np.ndarray:
    """Inverse of :func:`encode_confidence`: confidences in [0, 1], NaN where the code is 0."""
    c = np.asarray(code, dtype=np.float64)
    return np.where(c > 0, (c - 1.0) / 254.0, np.nan)
