"""Reading study volumes and writing the viewer cache (NIfTI files the browser viewer loads as is).

The viewer cache holds the CT (int16 HU, ``scl_slope`` 1) and the label map (uint8, NIfTI
intent "label") on the canonical grid of :func:`liverseg.io.to_canonical` stored in **RAS voxel
order** (array axis 0 inferior->superior, 1 posterior->anterior, 2 patient's left->right) with
the matching NIfTI affine. That is the order NiiVue works in, so its drawing bitmap has the
byte layout of the label file (a painted correction maps back exactly, see
:func:`ras_to_input_labels`). Both are gzip-compressed (level 1: a CT halves, a label map
shrinks a hundredfold) and served straight from disk with ``Content-Encoding: gzip``, which
browsers decompress natively.

``lesions.npz`` holds, per lesion id of the report, the flat RAS indices (uint32) of the
lesion's 6-connected border voxels (the viewer paints them to outline a selected lesion), and
``viewer.json`` the grids, affines, the axial slice numbers and table positions
(:mod:`liverseg.reporting.position`) and the lesions' voxel counts (to check that the ids match
the report's).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cc3d
import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.errors import InputError
from liverseg.io import LabelMap, Volume, read_volume, to_canonical
from liverseg.reporting import canonical_scan
from liverseg.reporting.position import slice_numbering
from liverseg.utils import atomic_path, atomic_write_text

__all__ = [
    "VIEWER_CACHE_VERSION",
    "build_viewer_cache",
    "input_to_ras_mm",
    "input_to_viewer_index",
    "ras_to_input_labels",
    "read_image_volume",
    "read_label_volume",
]

log = logging.getLogger(__name__)
VIEWER_CACHE_VERSION = 3
NIFTI_INTENT_LABEL = 1002
# (i, j, k) of the RAS array -> LPS: x flips, y flips (see _ras_affine); RAS mm = diag(-1,-1,1) LPS
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_image_volume(path: str | Path) -> Volume:
    """The CT of a study (NIfTI file or DICOM zip), float32 HU, input geometry."""
    return read_volume(Path(path), kind="image")


def read_label_volume(path: str | Path) -> LabelMap:
    """A label map file, uint8 with values in {0, 1, 2} (else InputError naming the values)."""
    return read_volume(Path(path), kind="label")  # type: ignore[return-value]


def to_ras_array(canonical: np.ndarray) -> np.ndarray:
    """Canonical ``(z, y, x)`` array -> RAS voxel order (y and x reversed; a view)."""
    return canonical[:, ::-1, ::-1]


def _ras_affine(canon: Volume) -> np.ndarray:
    """NIfTI affine of the RAS-ordered array: (i, j, k, 1) -> RAS mm."""
    _, ny, nx = canon.shape
    ras_to_canon = np.array(  # (i, j, k, 1) -> canonical (z, y, x, 1)
        [[0, 0, 1, 0], [0, -1, 0, ny - 1], [-1, 0, 0, nx - 1], [0, 0, 0, 1]], dtype=float
    )
    return _LPS_TO_RAS @ canon.affine @ ras_to_canon


def _write_nifti(array_ras: np.ndarray, affine: np.ndarray, path: Path, *, label: bool) -> None:
    img = nib.Nifti1Image(np.asarray(array_ras).transpose(2, 1, 0), affine)  # (i, j, k) for nibabel
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_xyzt_units("mm")
    if label:
        img.header.set_intent(NIFTI_INTENT_LABEL)
    with atomic_path(path) as tmp:  # the temporary name keeps ".nii.gz": nibabel gzips (level 1)
        nib.save(img, str(tmp))


def _lesion_borders(scan: Any) -> tuple[dict[str, np.ndarray], dict[int, int]]:
    """Per lesion id: flat RAS indices (uint32) of its 6-connected border voxels; voxel counts."""
    ids = scan.lesion_ids
    _, ny, nx = ids.shape
    borders: dict[str, np.ndarray] = {}
    counts: dict[int, int] = {}
    if scan.n_lesions == 0:
        return borders, counts
    stats = cc3d.statistics(ids)
    six = ndimage.generate_binary_structure(3, 1)
    for lid in range(1, scan.n_lesions + 1):
        bb = stats["bounding_boxes"][lid]
        mask = ids[bb] == lid
        counts[lid] = int(mask.sum())
        padded = np.pad(mask, 1)
        edge = mask & ~ndimage.binary_erosion(padded, six)[1:-1, 1:-1, 1:-1]
        z, y, x = np.nonzero(edge)
        z, y, x = z + bb[0].start, y + bb[1].start, x + bb[2].start
        flat = z.astype(np.int64) * ny * nx + (ny - 1 - y) * nx + (nx - 1 - x)
        borders[str(lid)] = flat.astype(np.uint32)
    return borders, counts


def build_viewer_cache(image: Volume, labels: Volume, out_dir: str | Path) -> dict[str, Any]:
    """Write ``ct.nii.gz``, ``labels.nii.gz``, ``lesions.npz`` and ``viewer.json`` to ``out_dir``.

    Args:
        image: the study CT on the input grid (its metadata gives the DICOM slice order).
        labels: the label map on the same grid.
        out_dir: destination folder (created).

    Returns:
        the ``viewer.json`` content (see the module docstring).
    """
    image.require_same_grid(labels, "label map")
    if int(np.prod(image.shape)) >= 2**32:
        raise InputError(
            f"a volume of {image.shape} voxels is too large for the viewer (2^32 voxels at most)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    canon, _ = to_canonical(image)
    canon_labels, _ = to_canonical(labels)
    affine = _ras_affine(canon)
    ct = np.clip(np.rint(canon.array), -32768, 32767).astype(np.int16)
    _write_nifti(to_ras_array(ct), affine, out / "ct.nii.gz", label=False)
    _write_nifti(to_ras_array(canon_labels.array.astype(np.uint8)), affine, out / "labels.nii.gz", label=True)
    scan = canonical_scan(None, labels)
    borders, counts = _lesion_borders(scan)
    with atomic_path(out / "lesions.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **borders)
    numbering = slice_numbering(scan, image.metadata)
    meta = {
        "version": VIEWER_CACHE_VERSION,
        "shape_zyx": list(canon.shape),
        "spacing_zyx_mm": list(canon.spacing),
        "canonical_affine": canon.affine.tolist(),
        "ras_affine": affine.tolist(),
        "input_affine": image.affine.tolist(),
        "input_geometry": image.geometry(),
        "axial_numbers": numbering.numbers.tolist(),
        "axial_z_mm": [round(float(z), 2) for z in numbering.z_mm],
        "numbering": numbering.describe(),
        "lesion_voxels": {str(k): v for k, v in counts.items()},
        "voxel_ml": canon.voxel_volume_ml,
    }
    atomic_write_text(out / "viewer.json", json.dumps(meta))
    return meta


def input_to_viewer_index(meta: dict[str, Any], index_zyx: Any) -> np.ndarray:
    """Continuous input-grid indices ``(..., 3)`` ``(z, y, x)`` -> continuous RAS array indices
    ``(..., 3)`` in NiiVue's ``(i, j, k)`` order (not clipped)."""
    ras_mm = input_to_ras_mm(meta, index_zyx)
    homog = np.concatenate([ras_mm, np.ones((*ras_mm.shape[:-1], 1))], axis=-1)
    return (homog @ np.linalg.inv(np.asarray(meta["ras_affine"])).T)[..., :3]


def input_to_ras_mm(meta: dict[str, Any], index_zyx: Any) -> np.ndarray:
    """Continuous input-grid indices ``(..., 3)`` -> RAS mm ``(..., 3)`` (NiiVue's world)."""
    idx = np.asarray(index_zyx, dtype=float)
    homog = np.concatenate([idx, np.ones((*idx.shape[:-1], 1))], axis=-1)
    return (homog @ np.asarray(meta["input_affine"]).T @ _LPS_TO_RAS.T)[..., :3]


def ras_to_input_labels(meta: dict[str, Any], ras_bytes: bytes) -> LabelMap:
    """A painted label map (RAS-ordered uint8 bytes, the viewer's drawing) on the study's input grid.

    Raises:
        InputError: wrong byte count or values outside {0, 1, 2}.
    """
    nz, ny, nx = meta["shape_zyx"]
    if len(ras_bytes) != nz * ny * nx:
        raise InputError(
            f"the painted label map must hold {nz * ny * nx} voxels ({nz} x {ny} x {nx}), got {len(ras_bytes)}"
        )
    ras = np.frombuffer(ras_bytes, dtype=np.uint8).reshape(nz, ny, nx)
    canonical = to_ras_array(ras)  # the same flip undoes itself
    geo = meta["input_geometry"]
    spacing, origin, direction = geo["spacing_zyx_mm"], geo["origin_lps_mm"], np.asarray(geo["direction"])
    probe = Volume(np.zeros((1, 1, 1), np.uint8), spacing, origin, direction)
    _, reo = to_canonical(probe)  # the permutation/flip depends on the direction only
    array = reo.to_original_array(canonical)
    if list(array.shape) != list(geo["shape_zyx"]):
        raise InputError(f"painted label map maps to shape {array.shape}, expected {geo['shape_zyx']}")
    try:
        return LabelMap(array, spacing, origin, direction)
    except InputError as exc:
        raise InputError(f"painted labels: {exc}") from exc
