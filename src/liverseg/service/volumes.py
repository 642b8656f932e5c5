"""Reading study volumes and writing the viewer cache (memory-mappable ``.npy`` files).

The viewer cache holds the CT (int16 HU) and the label map (uint8) on the *canonical* grid of
:func:`liverseg.io.to_canonical` (axis 0 inferior->superior, 1 anterior->posterior, 2
right->left), so the three planes display in radiological convention whatever the input's
orientation. ``viewer.json`` keeps both affines to map report voxel indices onto that grid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.io import Volume, read_volume, to_canonical
from liverseg.utils import atomic_path, atomic_write_text

__all__ = ["build_viewer_cache", "read_image_volume", "read_label_volume", "to_viewer_index"]

log = logging.getLogger(__name__)
VIEWER_CACHE_VERSION = 1


def read_image_volume(path: str | Path) -> Volume:
    """The CT of a study (NIfTI file or DICOM zip), float32 HU, input geometry."""
    return read_volume(Path(path), kind="image")


def read_label_volume(path: str | Path) -> Volume:
    """A label map file, uint8 with values in {0, 1, 2} (else InputError naming the values)."""
    return read_volume(Path(path), kind="label")


def build_viewer_cache(image: Volume, labels: Volume, out_dir: str | Path) -> dict[str, Any]:
    """Write ``ct.npy`` (int16 HU), ``labels.npy`` (uint8) and ``viewer.json`` to ``out_dir``.

    Args:
        image: the study CT on the input grid.
        labels: the label map on the same grid.
        out_dir: destination folder (created).

    Returns:
        the ``viewer.json`` content: ``shape_zyx``/``spacing_zyx_mm`` of the canonical grid and
        both affines (index (z, y, x) -> LPS mm).
    """
    image.require_same_grid(labels, "label map")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    canon, _ = to_canonical(image)
    canon_labels, _ = to_canonical(labels)
    ct = np.clip(np.rint(canon.array), -32768, 32767).astype(np.int16)
    for name, arr in (("ct.npy", ct), ("labels.npy", canon_labels.array.astype(np.uint8))):
        with atomic_path(out / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr))
    meta = {
        "version": VIEWER_CACHE_VERSION,
        "shape_zyx": list(canon.shape),
        "spacing_zyx_mm": list(canon.spacing),
        "canonical_affine": canon.affine.tolist(),
        "input_affine": image.affine.tolist(),
        "input_geometry": image.geometry(),
    }
    atomic_write_text(out / "viewer.json", json.dumps(meta))
    return meta


def to_viewer_index(meta: dict[str, Any], index_zyx: Any) -> list[int]:
    """Map a voxel index ``(z, y, x)`` of the input grid to the canonical viewer grid (clipped)."""
    idx = np.append(np.asarray(index_zyx, dtype=float), 1.0)
    phys = np.asarray(meta["input_affine"]) @ idx
    inv = np.linalg.inv(np.asarray(meta["canonical_affine"]))
    out = np.rint((inv @ phys)[:3]).astype(int)
    hi = np.asarray(meta["shape_zyx"]) - 1
    return [int(v) for v in np.clip(out, 0, hi)]
