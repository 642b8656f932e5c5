"""Slice rendering for the browser viewer from the memory-mapped viewer cache.

Planes on the canonical grid (see :mod:`liverseg.service.volumes`), displayed radiologically:

* ``axial``    index along z: rows anterior->posterior, columns patient right->left;
* ``coronal``  index along y: rows superior->inferior, columns right->left;
* ``sagittal`` index along x: rows superior->inferior, columns anterior->posterior.

The CT comes back as a grayscale PNG windowed with (level, width) in HU; the labels as an RGBA
PNG overlay (liver green, tumor red, background transparent; the browser sets the opacity).
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from liverseg.errors import InputError

__all__ = ["PLANES", "StudyVolumes", "ViewerCache", "plane_slice", "render_ct_png", "render_overlay_png"]

PLANES = ("axial", "coronal", "sagittal")
_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
# RGBA per label: 0 transparent, 1 liver, 2 tumor
_LUT = np.array([[0, 0, 0, 0], [40, 200, 90, 255], [235, 50, 50, 255]] + [[0, 0, 0, 0]] * 253, dtype=np.uint8)


@dataclass
class StudyVolumes:
    """The memory-mapped CT (int16 HU) and labels (uint8), both ``(z, y, x)``, with viewer.json."""

    ct: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any]

    def plane_size(self, plane: str) -> int:
        return int(self.ct.shape[_AXIS[check_plane(plane)]])


def check_plane(plane: str) -> str:
    if plane not in PLANES:
        raise InputError(f"plane must be one of {', '.join(PLANES)}, got {plane!r}")
    return plane


def plane_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """2D display slice of a ``(z, y, x)`` array (rows top->bottom, see the module docstring)."""
    axis = _AXIS[check_plane(plane)]
    n = volume.shape[axis]
    if not 0 <= index < n:
        raise InputError(f"{plane} slice index must be in 0..{n - 1}, got {index}")
    if axis == 0:
        return np.asarray(volume[index])
    sl = volume[:, index, :] if axis == 1 else volume[:, :, index]
    return np.asarray(sl)[::-1]  # superior at the top


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_ct_png(slice_hu: np.ndarray, level: float, width: float) -> bytes:
    """Window a 2D HU slice to 8-bit grayscale PNG bytes (``width`` > 0 HU)."""
    if not width > 0:
        raise InputError(f"window width must be > 0 HU, got {width}")
    lo = level - width / 2.0
    scaled = (slice_hu.astype(np.float32) - lo) * (255.0 / width)
    return _png(Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), mode="L"))


def render_overlay_png(slice_labels: np.ndarray) -> bytes:
    """RGBA PNG bytes of a 2D label slice (0 transparent, 1 green, 2 red)."""
    return _png(Image.fromarray(_LUT[slice_labels], mode="RGBA"))


class ViewerCache:
    """Per-process LRU of opened study volumes (memory maps: opening costs no reading)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[str, StudyVolumes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, study_id: str, folder: Path) -> StudyVolumes:
        """The volumes of a study whose viewer cache is in ``folder``; InputError if absent."""
        with self._lock:
            item = self._items.get(study_id)
            if item is not None:
                self._items.move_to_end(study_id)
                return item
        meta_path = folder / "viewer.json"
        if not meta_path.exists():
            raise InputError("this study has no viewer images yet (its job has not finished)")
        item = StudyVolumes(
            ct=np.load(folder / "ct.npy", mmap_mode="r"),
            labels=np.load(folder / "labels.npy", mmap_mode="r"),
            meta=json.loads(meta_path.read_text(encoding="utf-8")),
        )
        with self._lock:
            self._items[study_id] = item
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def forget(self, study_id: str) -> None:
        with self._lock:
            self._items.pop(study_id, None)
