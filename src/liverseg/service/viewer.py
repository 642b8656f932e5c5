"""Server side of the browser viewer: the viewer cache's description, lesion borders, and the
lesion table mapped onto the viewer's grid.

The browser viewer (NiiVue, ``static/vendor/``) loads ``ct.nii`` and ``labels.nii`` of the
viewer cache (:mod:`liverseg.service.volumes`) and works in RAS voxel indices ``(i, j, k)`` and
RAS millimetres. :func:`viewer_lesions` gives each report lesion what the viewer needs to go to
it: the RAS voxel to centre on (middle of its longest diameter, on its largest slice), the long
and short axes' ends in RAS mm, a field of view to zoom to, and whether its outline is
available (the label map's lesion of that id has the report's volume).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import InputError
from liverseg.service.volumes import VIEWER_CACHE_VERSION, input_to_ras_mm, input_to_viewer_index

__all__ = ["StudyViewer", "ViewerCache", "viewer_lesions"]

MIN_FOV_MM = 80.0  # the zoomed view around a lesion is at least this wide (context around small ones)
FOV_PER_DIAMETER = 4.0


@dataclass
class StudyViewer:
    """One study's viewer cache: ``viewer.json`` and the lesion borders (loaded on first use)."""

    folder: Path
    meta: dict[str, Any]
    mtime_ns: int
    _borders: Any = field(default=None, repr=False)

    def border(self, lesion_id: int) -> np.ndarray:
        """Flat RAS indices (uint32) of a lesion's border voxels; InputError for an unknown id."""
        if self._borders is None:
            self._borders = np.load(self.folder / "lesions.npz")
        key = str(int(lesion_id))
        if key not in self._borders.files:
            raise InputError(f"no lesion {lesion_id} in this study's label map")
        return np.asarray(self._borders[key], dtype="<u4")


class ViewerCache:
    """Per-process LRU of opened studies' viewer caches, reloaded when ``viewer.json`` changes
    (a re-run rewrites it)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[str, StudyViewer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, study_id: str, folder: Path) -> StudyViewer:
        """The viewer cache in ``folder``; InputError when absent or written by an older liverseg."""
        meta_path = folder / "viewer.json"
        try:
            mtime = meta_path.stat().st_mtime_ns
        except FileNotFoundError:
            raise InputError("this study has no viewer images yet (its job has not finished)") from None
        with self._lock:
            item = self._items.get(study_id)
            if item is not None and item.mtime_ns == mtime:
                self._items.move_to_end(study_id)
                return item
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("version") != VIEWER_CACHE_VERSION:
            raise OutdatedViewerCacheError(
                f"viewer cache version {meta.get('version')}, expected {VIEWER_CACHE_VERSION}"
            )
        item = StudyViewer(folder, meta, mtime)
        with self._lock:
            self._items[study_id] = item
            self._items.move_to_end(study_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def forget(self, study_id: str) -> None:
        with self._lock:
            self._items.pop(study_id, None)


class OutdatedViewerCacheError(InputError):
    """The viewer cache was written by an older liverseg (rebuilt on demand)."""


def _ints(values: np.ndarray, upper: list[int]) -> list[int]:
    return [int(v) for v in np.clip(np.rint(values), 0, np.asarray(upper) - 1)]


def viewer_lesions(report: dict[str, Any], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's lesions (confirmed first, then possible ones) with viewer coordinates.

    Adds per lesion: ``possible`` (default false), ``confidence`` (default None), ``centre_vox``
    (RAS ``[i, j, k]``), ``axes_mm`` (``{"long": [[x,y,z],[x,y,z]], "short": ...}`` in RAS mm, or
    None), ``fov_mm``, ``outline`` (bool) and, for reports older than schema 1.1, the slice
    number and table position of its centre voxel.
    """
    nz, ny, nx = meta["shape_zyx"]
    dims = [nx, ny, nz]
    numbers, z_mm = meta["axial_numbers"], meta["axial_z_mm"]
    voxels, voxel_ml = meta.get("lesion_voxels", {}), float(meta["voxel_ml"])
    out = []
    for lesion in report.get("lesions") or []:
        item = dict(lesion)
        item["possible"] = bool(lesion.get("possible", False))
        item["confidence"] = lesion.get("confidence")
        ends = np.asarray(lesion.get("diameter_endpoints_voxel") or [], dtype=float)
        short = np.asarray(lesion.get("short_axis_endpoints_voxel") or [], dtype=float)
        centre = ends.mean(axis=0) if ends.shape == (2, 3) else np.asarray(lesion["centroid_voxel_zyx"])
        vox = _ints(input_to_viewer_index(meta, centre), dims)
        item["centre_vox"] = vox
        item["axes_mm"] = (
            {
                "long": np.round(input_to_ras_mm(meta, ends), 3).tolist(),
                "short": np.round(input_to_ras_mm(meta, short), 3).tolist()
                if short.shape == (2, 3)
                else None,
            }
            if ends.shape == (2, 3)
            else None
        )
        item["fov_mm"] = max(
            MIN_FOV_MM, FOV_PER_DIAMETER * float(lesion.get("longest_axial_diameter_mm") or 0)
        )
        count = voxels.get(str(lesion["id"]))
        expected = float(lesion.get("volume_ml") or 0.0)
        item["outline"] = bool(
            not item["possible"]
            and count is not None
            and abs(count * voxel_ml - expected) <= max(1e-3, 1e-3 * expected)
        )
        if "largest_slice_number" not in lesion:
            item["largest_slice_number"] = int(numbers[vox[2]])
            item["largest_slice_z_mm"] = float(z_mm[vox[2]])
        out.append(item)
    out.sort(key=lambda les: (les["possible"], les["id"]))
    return out
