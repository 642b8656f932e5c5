"""Windowed 8-bit slice exports (JPEG or PNG pictures of CT slices) as an approximate HU volume.

Many public liver datasets circulate as pictures of axial slices rather than as CT volumes: each
slice was windowed to a stated HU range, scaled to 0..255, optionally put into one channel of an
RGB picture and saved as JPEG or PNG, with a label picture beside it. Such a picture cannot give
back the CT, but inside its window it gives back an *approximate* HU value::

    HU = (level - width / 2) + value / 255 * width          for value in 0..255

Everything outside the window is clipped to its ends, JPEG adds compression noise, and no
geometry is stored. :func:`read_slice_export` therefore returns a :class:`Volume` whose metadata
says so (``intensity = "clipped-8bit"``, the window, whether the pictures were lossy), so that no
later step mistakes it for full-quality CT.

Geometry: the pictures are in display orientation (anterior at the top, the patient's right on
the picture's left), so rows run anterior->posterior (+y in LPS) and columns right->left (+x in
LPS); slice indices ``k`` increase from feet to head (+z in LPS). The direction is therefore the
identity, the origin is ``(0, 0, k0 * z)`` and the spacing comes from the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from liverseg.errors import ConfigError, InputError
from liverseg.io.labels import LabelMap
from liverseg.io.volume import Volume

__all__ = [
    "CHANNELS",
    "LOSSY_SUFFIXES",
    "SliceExportSpec",
    "decode_label_values",
    "read_slice_export",
    "regular_step",
]

log = logging.getLogger(__name__)

Channel = Literal["gray", "R", "G", "B"]
#: channel name -> index into an RGB picture (``gray``: the picture must be grey)
CHANNELS: dict[str, int | None] = {"gray": None, "R": 0, "G": 1, "B": 2}
LOSSY_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg")
#: label encodings found in slice exports: pixel value -> liverseg label
_LABEL_ENCODINGS: dict[str, dict[int, int]] = {
    "0/1/2": {0: 0, 1: 1, 2: 2},
    "0/127/255": {0: 0, 127: 1, 255: 2},  # the seed reports' encoding
}


@dataclass(frozen=True)
class SliceExportSpec:
    """How the pictures of one export were made.

    Attributes:
        window_hu: ``(low, high)`` HU that the grey values 0 and 255 stand for.
        channel: which channel holds that window (``gray`` for single-channel pictures).
    """

    window_hu: tuple[float, float]
    channel: Channel = "gray"

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.window_hu)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ConfigError(f"slice export window: expected LOW < HIGH in HU, got {self.window_hu}")
        if self.channel not in CHANNELS:
            raise ConfigError(f"slice export channel: expected one of {list(CHANNELS)}, got {self.channel!r}")
        object.__setattr__(self, "window_hu", (lo, hi))

    def to_hu(self, values: np.ndarray) -> np.ndarray:
        """Grey values 0..255 -> HU (float32), rounded to whole HU (the step is width/255)."""
        lo, hi = self.window_hu
        return np.rint(lo + values.astype(np.float32) * ((hi - lo) / 255.0)).astype(np.float32)


def regular_step(indices: Sequence[int], *, where: Path | str) -> int:
    """The constant step of sorted slice indices (``0, 2, 4, ...`` -> 2).

    Raises:
        InputError: fewer than 2 slices, repeated indices or gaps (names the missing indices).
    """
    idx = np.asarray(sorted(indices), dtype=np.int64)
    if idx.size < 2:
        raise InputError(f"expected at least 2 slices to form a volume, got {idx.size}", where)
    diffs = np.diff(idx)
    if np.any(diffs == 0):
        raise InputError(f"slice index {int(idx[np.argmax(diffs == 0)])} appears twice", where)
    step = int(np.gcd.reduce(diffs))
    if np.any(diffs != step):
        expected = set(range(int(idx[0]), int(idx[-1]) + 1, step))
        missing = sorted(expected - set(idx.tolist()))
        raise InputError(
            f"expected slices every {step} from {idx[0]} to {idx[-1]}, but {len(missing)} are missing "
            f"(e.g. {missing[:5]}); a volume with gaps would get a wrong z geometry",
            where,
        )
    return step


def _read_picture(path: Path, channel: str) -> np.ndarray:
    """One picture as a 2D uint8 array of the requested channel."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img.convert("RGB") if mode in ("RGB", "RGBA", "P", "YCbCr") else img)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"not a readable JPEG/PNG picture ({exc})", path) from exc
    if arr.dtype != np.uint8:
        raise InputError(f"expected an 8-bit picture, got {arr.dtype} (mode {mode})", path)
    if arr.ndim == 2:
        if channel != "gray":
            raise InputError(f"expected an RGB picture to take channel {channel} from, got a grey one", path)
        return arr
    if arr.ndim == 3 and arr.shape[2] >= 3:
        idx = CHANNELS[channel]
        if idx is None:
            if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
                raise InputError(
                    "expected a grey picture (channel 'gray'), got one whose R, G and B differ; "
                    "say which channel holds the HU window (--channel R|G|B)",
                    path,
                )
            return arr[..., 0]
        return arr[..., idx]
    raise InputError(f"expected a grey or RGB picture, got an array of shape {arr.shape}", path)


def _read_label(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            if path.suffix.lower() in LOSSY_SUFFIXES:
                raise InputError("label pictures must be lossless (PNG), got a JPEG", path)
            arr = np.asarray(img.convert("L") if img.mode not in ("L", "P", "I", "I;16") else img)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"not a readable label PNG ({exc})", path) from exc
    if arr.ndim != 2:
        raise InputError(f"expected a single-channel label picture, got shape {arr.shape}", path)
    return arr


def decode_label_values(stack: np.ndarray, *, where: Path | str) -> tuple[np.ndarray, str]:
    """Label pictures -> uint8 0/1/2, choosing the encoding (0/1/2 or 0/127/255) from the values.

    Raises:
        InputError: the values fit neither encoding (lists them).
    """
    values = set(np.unique(stack).tolist())
    for name, table in _LABEL_ENCODINGS.items():
        if values <= set(table):
            lut = np.zeros(max(256, int(stack.max()) + 1), dtype=np.uint8)
            for src, dst in table.items():
                lut[src] = dst
            return lut[stack], name
    raise InputError(
        f"expected label values 0/1/2 or 0/127/255 (background/liver/tumor), got {sorted(values)[:12]}",
        where,
    )


def read_slice_export(
    image_files: Sequence[Path],
    label_files: Sequence[Path],
    slice_indices: Sequence[int],
    spec: SliceExportSpec,
    *,
    spacing_zyx: tuple[float, float, float],
) -> tuple[Volume, Volume]:
    """Read one volume of a slice export.

    Args:
        image_files: one picture per slice, in the order of ``slice_indices``.
        label_files: one label PNG per slice, same order.
        slice_indices: original slice numbers ``k`` (feet->head); they must be regular (every
            ``step``-th slice, no gaps).
        spec: the window and channel of the pictures.
        spacing_zyx: voxel size in mm of the *stored* stack (``z`` = step x original spacing).

    Returns:
        ``(image, label)``: float32 approximate HU ``(z, y, x)`` (clipped to the window) and uint8
        0/1/2 on the same grid, ordered by slice index; ``image.metadata`` records the window,
        channel, lossiness, slice step and first index.

    Raises:
        InputError: unreadable pictures, differing sizes, gaps, unknown label values.
    """
    if not (len(image_files) == len(label_files) == len(slice_indices)):
        raise InputError(
            f"expected one label per picture: {len(image_files)} pictures, {len(label_files)} labels"
        )
    where = Path(image_files[0]).parent if image_files else "slice export"
    step = regular_step(slice_indices, where=where)
    order = np.argsort(np.asarray(slice_indices))
    first = _read_picture(Path(image_files[order[0]]), spec.channel)
    grey = np.empty((len(order), *first.shape), dtype=np.uint8)
    labels = np.empty_like(grey)
    for out_k, src_k in enumerate(order):
        img = first if out_k == 0 else _read_picture(Path(image_files[src_k]), spec.channel)
        lab = _read_label(Path(label_files[src_k]))
        if img.shape != first.shape or lab.shape != first.shape:
            raise InputError(
                f"expected every picture and label to be {first.shape[1]}x{first.shape[0]} pixels, got "
                f"picture {img.shape[1]}x{img.shape[0]} and label {lab.shape[1]}x{lab.shape[0]}",
                image_files[src_k],
            )
        grey[out_k], labels[out_k] = img, lab
    label_arr, encoding = decode_label_values(labels, where=Path(label_files[order[0]]).parent)
    k0 = int(np.asarray(slice_indices)[order[0]])
    lossy = any(Path(f).suffix.lower() in LOSSY_SUFFIXES for f in image_files)
    origin = (0.0, 0.0, k0 * spacing_zyx[0] / step)
    meta = {
        "intensity": "clipped-8bit",
        "window_hu": list(spec.window_hu),
        "channel": spec.channel,
        "lossy": lossy,
        "slice_step": step,
        "first_slice_index": k0,
        "label_encoding": encoding,
    }
    image = Volume(spec.to_hu(grey), spacing_zyx, origin, np.eye(3), metadata=meta)
    label = LabelMap(
        label_arr,
        spacing_zyx,
        origin,
        np.eye(3),
        metadata={"label_encoding": encoding, "first_slice_index": k0},
    )
    return image, label
