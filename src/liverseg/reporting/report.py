"""The per-scan report: a JSON-ready dict validated against ``report.schema.json`` (version 1.0).

:func:`build_report` gathers the liver volume (liver including tumor, label >= 1), tumor volume,
tumor burden, the lesion table of :func:`liverseg.reporting.measure_lesions` (largest first), the
model, timings, software versions, input geometry and warnings, plus the disclaimer.
:func:`write_report_json` writes it atomically.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import logging
import math
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from scipy import ndimage

from liverseg import __version__
from liverseg.errors import OutputError
from liverseg.io.labels import decode_confidence
from liverseg.io.volume import Volume
from liverseg.reporting.measure import canonical_scan, measure_lesions
from liverseg.reporting.position import LOCATION_METHOD, slice_numbering
from liverseg.utils import atomic_write_text

__all__ = [
    "DISCLAIMER",
    "SCHEMA_VERSION",
    "build_report",
    "load_schema",
    "software_versions",
    "validate_report",
    "write_report_json",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.1"
DISCLAIMER = (
    "Research use, not a medical device. Automatic segmentation and measurements may be wrong; "
    "they must be checked by a qualified clinician and are not a diagnosis."
)
NO_LIVER_WARNING = "no liver was found in the segmentation: volumes and lesion locations are not available"
_PACKAGES = {
    "numpy": "numpy",
    "scipy": "scipy",
    "SimpleITK": "SimpleITK",
    "cc3d": "connected-components-3d",
    "torch": "torch",
    "monai": "monai",
}


def software_versions() -> dict[str, str | None]:
    """Versions of Python, liverseg and the main libraries (``None`` when not installed).

    Read from package metadata (``importlib.metadata``), so nothing heavy (torch) is imported.
    """
    versions: dict[str, str | None] = {"liverseg": __version__, "python": platform.python_version()}
    for key, dist in _PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The report JSON Schema (draft 2020-12) shipped beside this module."""
    return json.loads((Path(__file__).with_name("report.schema.json")).read_text(encoding="utf-8"))


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise :class:`OutputError` when ``report`` does not match ``report.schema.json``."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise OutputError(
            f"the report does not match report.schema.json {SCHEMA_VERSION} at {where}: "
            f"{first.message} ({len(errors)} problem(s))"
        )


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _max_per_lesion(codes: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Largest ``codes`` value within each lesion ``1..n`` of ``ids`` (same shape): shape ``(n,)``.

    Only the lesion voxels are handed to scipy (its per-label reduction sorts what it gets: on the
    whole 512 x 512 x 200 grid that took 4 s of a 12 s segmentation).
    """
    inside = ids > 0
    return np.atleast_1d(ndimage.maximum(codes[inside], labels=ids[inside], index=np.arange(1, n + 1)))


def _lesion_confidence(
    image: Volume, labels: Volume, scan: Any, lesions: list[dict], confidence: Volume | None
) -> list[dict]:
    """Set ``confidence``/``possible`` on ``lesions`` (in place); return the possible lesions."""
    for les in lesions:
        les["confidence"], les["possible"] = None, False
    if confidence is None:
        return []
    labels.require_same_grid(confidence, what="lesion confidence map")
    codes = scan.reorientation.to_canonical_array(np.asarray(confidence.array))
    if scan.n_lesions:
        best = _max_per_lesion(codes, scan.lesion_ids, scan.n_lesions)
        for les, code in zip(lesions, np.atleast_1d(best), strict=True):
            les["confidence"] = round(float(decode_confidence(code)), 3) if code > 0 else None
    lab = np.asarray(labels.array)
    cand = (np.asarray(confidence.array) > 0) & (lab != 2)
    if not cand.any():
        return []
    possible_map = np.where(lab == 2, 1, lab).astype(np.uint8)
    possible_map[cand] = 2
    pscan = canonical_scan(image, labels.with_array(possible_map))
    possible = measure_lesions(image, labels.with_array(possible_map), scan=pscan)
    best = _max_per_lesion(codes, pscan.lesion_ids, pscan.n_lesions)
    for les, code in zip(possible, np.atleast_1d(best), strict=True):
        les["id"] += len(lesions)
        les["confidence"] = round(float(decode_confidence(code)), 3)
        les["possible"] = True
    return possible


def build_report(
    image: Volume,
    labels: Volume,
    *,
    model: dict,
    timings_s: dict,
    input_info: dict,
    warnings: list[str],
    lesion_confidence: Volume | None = None,
) -> dict:
    """Build the report of one scan (see ``report.schema.json`` and docs/contracts.md).

    Args:
        image: the CT (HU) the labels were computed on, same grid as ``labels``.
        labels: label map 0/1/2 (any orientation).
        model: at least ``{"name": str, "version": str}``.
        timings_s: stage -> seconds (non-negative numbers).
        input_info: facts about the input (e.g. ``{"name": "ct.nii.gz"}``); a ``path`` is reduced
            to its file name so reports do not leak folder names. ``identity`` (patient ID,
            accession number, study date, series description, label) is copied as given.
        warnings: messages for the reader; "no liver found" is added when it applies.
        lesion_confidence: the model's confidence map (:func:`liverseg.io.labels.decode_confidence`)
            on the labels' grid, or None for a model without a lesion model. With it, every lesion
            carries its ``confidence``, and candidates below the model's confirmation threshold
            (liver in ``labels``) are listed after the confirmed lesions as ``possible: true``,
            measured the same way but left out of the tumor volume, burden and lesion count.
    Returns:
        the report dict (JSON-serialisable, validated).
    """
    scan = canonical_scan(image, labels)
    liver = scan.liver
    numbering = slice_numbering(scan, image.metadata)
    lesions = measure_lesions(image, labels, scan=scan, numbering=numbering)
    lesions += _lesion_confidence(image, labels, scan, lesions, lesion_confidence)
    confirmed = [les for les in lesions if not les["possible"]]
    tumor_ml = float(np.count_nonzero(labels.array == 2)) * labels.voxel_volume_ml
    liver_ml = float(liver["volume_ml"])
    warnings = [str(w) for w in warnings]
    if not liver["found"] and NO_LIVER_WARNING not in warnings:
        warnings.append(NO_LIVER_WARNING)
    info = dict(input_info)
    if "path" in info:
        info["path"] = Path(str(info["path"])).name
    source = info.get("path") or image.metadata.get("source")
    info.setdefault("name", Path(str(source)).name if source else None)
    info["geometry"] = image.geometry()
    info["axial_axis"] = scan.axial_axis
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "liver_found": bool(liver["found"]),
        "liver_volume_ml": round(liver_ml, 3),
        "tumor_volume_ml": round(tumor_ml, 3),
        "tumor_burden_percent": round(100.0 * tumor_ml / liver_ml, 3) if liver_ml > 0 else 0.0,
        "lesion_count": len(confirmed),
        "possible_lesion_count": len(lesions) - len(confirmed),
        "liver_centroid_lps_mm": None
        if liver["centroid_lps_mm"] is None
        else [round(v, 2) for v in liver["centroid_lps_mm"]],
        "lesions": lesions,
        "slice_numbering": numbering.describe(),
        "location_method": LOCATION_METHOD,
        "model": dict(model),
        "timings_s": dict(timings_s),
        "software": software_versions(),
        "input": info,
        "warnings": warnings,
        "disclaimer": DISCLAIMER,
    }
    report = _json_ready(report)
    validate_report(report)
    return report


def write_report_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``report`` as indented UTF-8 JSON, atomically; returns the path."""
    text = json.dumps(_json_ready(report), indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")
