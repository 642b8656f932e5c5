"""Label-map validation: liverseg label maps are uint8 with 0 background, 1 liver, 2 tumor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liverseg.errors import InputError
from liverseg.io.volume import Volume

__all__ = ["LABELS", "binary_mask_to_label", "check_label_map", "decode_confidence", "encode_confidence"]

#: label value -> name, the contract of every label map in the package
LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "tumor"}

_MAX_LISTED = 10


def _values(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return np.unique(array).astype(np.int64)
    if np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize <= 2:
        counts = np.bincount(array.ravel().astype(np.int64) - int(array.min()))
        return np.nonzero(counts)[0] + int(array.min())
    return np.unique(array)


def _fmt_values(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:_MAX_LISTED])
    more = f", ... ({len(values)} distinct values)" if len(values) > _MAX_LISTED else ""
    return "{" + shown + more + "}"


def check_label_map(
    volume: Volume, *, path: str | Path | None = None, allow_binary_255: bool = False
) -> Volume:
    """Return ``volume`` with a uint8 array after checking its values are in {0, 1, 2}.

    Args:
        volume: a label map (any integer, bool or integral float dtype).
        path: the file it came from, for the error message.
        allow_binary_255: accept a 0/255 binary mask unchanged (values {0, 255}) so the caller
            can map 255 explicitly (e.g. with :func:`binary_mask_to_label`).

    Raises:
        InputError: naming the values found when any is outside {0, 1, 2} (or non-integral).
    """
    arr = volume.array
    values = _values(arr)
    allowed = {0, 1, 2} | ({255} if allow_binary_255 else set())
    integral = bool(np.all(np.mod(values, 1) == 0)) if values.dtype.kind == "f" else True
    bad = [v for v in values.tolist() if v not in allowed] if integral else values.tolist()
    if bad:
        hint = ""
        if set(values.tolist()) <= {0, 255}:
            hint = (
                "; this looks like a 0/255 binary mask: read it with allow_binary_255=True and map "
                "255 to a label explicitly (binary_mask_to_label)"
            )
        raise InputError(
            f"expected a label map with values in {{0 (background), 1 (liver), 2 (tumor)}}, got "
            f"values {_fmt_values(values)}{hint}",
            path,
        )
    if allow_binary_255 and 255 in values.tolist() and bool(np.isin([1, 2], values).any()):
        raise InputError(
            f"expected either a 0/1/2 label map or a 0/255 binary mask, got values {_fmt_values(values)}",
            path,
        )
    if arr.dtype == np.uint8:
        return volume
    return volume.with_array(arr.astype(np.uint8))


def binary_mask_to_label(volume: Volume, label: int = 1) -> Volume:
    """Map a binary mask (any non-zero value is foreground) to a uint8 map with ``label`` (1 or 2)."""
    if label not in (1, 2):
        raise InputError(f"expected label 1 (liver) or 2 (tumor), got {label}")
    return volume.with_array(np.where(volume.array != 0, np.uint8(label), np.uint8(0)))


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
