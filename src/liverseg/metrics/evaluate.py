"""Per-case evaluation of a label map against a reference, and dataset summaries.

:func:`evaluate_case` is the one function training, model comparison and ``liverseg evaluate``
use. Classes follow LiTS: **liver** = label >= 1 (liver including tumor), **tumor** = label == 2.
:func:`summarize_cases` aggregates a list of case results: mean +- std over the finite values of
every metric (NaN/inf are excluded and counted, see the empty-mask policy in
:mod:`liverseg.metrics`), the global Dice per class (LiTS "Dice global") and dataset-level lesion
detection from summed lesion counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from liverseg.errors import GeometryError, InputError
from liverseg.metrics._common import SpacingLike, check_spacing, ratio
from liverseg.metrics.lesions import MEASURABLE_MM, lesion_detection
from liverseg.metrics.overlap import GlobalDice, confusion_counts
from liverseg.metrics.surface import surface_metrics

__all__ = [
    "CLASSES",
    "LESION_SUMMARY_KEYS",
    "SUMMARY_KEYS",
    "evaluate_case",
    "flatten_case",
    "summarize_cases",
]

CLASSES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "liver": lambda labels: labels >= 1,
    "tumor": lambda labels: labels == 2,
}
"""Evaluated classes: name -> function turning a label map into that class's binary mask."""

CLASS_METRICS = (
    "dice",
    "jaccard",
    "voe",
    "rvd",
    "precision",
    "recall",
    "specificity",
    "accuracy",
    "assd",
    "mssd",
    "hd95",
    "pred_volume_ml",
    "ref_volume_ml",
)
LESION_SUMMARY_KEYS = ("precision", "recall", "recall_measurable", "recall_small", "n_false_positive")
SUMMARY_KEYS: tuple[str, ...] = (
    *(f"{c}_{m}" for c in CLASSES for m in CLASS_METRICS),
    *(f"lesion_{k}" for k in LESION_SUMMARY_KEYS),
)
"""Flat metric names (``<class>_<metric>``, ``lesion_<metric>``) that summaries aggregate."""


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise InputError(f"{name} must be a 3D label map (z, y, x), got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 2 or (arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr))):
        raise InputError(
            f"{name} must be a label map with values 0 (background), 1 (liver), 2 (tumor), "
            f"got values in [{lo}, {hi}] with dtype {arr.dtype}"
        )
    return arr


def evaluate_case(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing_mm: SpacingLike,
    *,
    surface: bool = True,
    lesions: bool = True,
    measurable_mm: float = MEASURABLE_MM,
) -> dict[str, Any]:
    """Evaluate one predicted label map against its reference.

    Args:
        pred_labels, ref_labels: label maps ``(z, y, x)`` with values 0/1/2 on the same grid.
        spacing_mm: voxel size ``(z, y, x)`` in mm.
        surface: compute ASSD/MSSD/HD95 (the slowest part; NaN when switched off).
        lesions: compute lesion detection (``result["lesions"]`` is ``None`` when off).
        measurable_mm: RECIST size threshold of the lesion-recall split.
    Returns:
        ``{"liver": {...}, "tumor": {...}, "lesions": {...} | None, "spacing_mm": [...]}`` where each
        class dict has every overlap metric, ``assd``/``mssd``/``hd95`` (mm), the voxel counts
        ``n_pred_voxels``, ``n_ref_voxels``, ``n_intersection`` (for the global Dice), volumes
        ``pred_volume_ml``/``ref_volume_ml`` and the flags ``pred_empty``/``ref_empty``; the
        lesion dict is :func:`liverseg.metrics.lesion_detection`'s.
    """
    pred = _check_labels(pred_labels, "pred_labels")
    ref = _check_labels(ref_labels, "ref_labels")
    if pred.shape != ref.shape:
        raise GeometryError(f"pred_labels shape {pred.shape} does not match ref_labels shape {ref.shape}")
    sp = check_spacing(spacing_mm, 3)
    voxel_ml = float(np.prod(sp)) / 1000.0
    out: dict[str, Any] = {"spacing_mm": list(sp)}
    for name, select in CLASSES.items():
        p, r = select(pred), select(ref)
        counts = confusion_counts(p, r)
        res: dict[str, Any] = counts.as_dict()
        if surface:
            res.update(surface_metrics(p, r, sp))
        else:
            res.update({"assd": math.nan, "mssd": math.nan, "hd95": math.nan})
        res.update(
            {
                "n_pred_voxels": counts.n_pred,
                "n_ref_voxels": counts.n_ref,
                "n_intersection": counts.tp,
                "pred_volume_ml": counts.n_pred * voxel_ml,
                "ref_volume_ml": counts.n_ref * voxel_ml,
                "pred_empty": counts.n_pred == 0,
                "ref_empty": counts.n_ref == 0,
            }
        )
        out[name] = res
    out["lesions"] = (
        lesion_detection(CLASSES["tumor"](pred), CLASSES["tumor"](ref), sp, measurable_mm=measurable_mm)
        if lesions
        else None
    )
    return out


def flatten_case(result: dict[str, Any]) -> dict[str, Any]:
    """One flat row ``{"liver_dice": ..., "tumor_hd95": ..., "lesion_recall": ...}`` (for CSV).

    Scalars only: the per-lesion list ``ref_lesions`` and the spacing are left out; other keys
    of ``result`` that are not class/lesion dicts (e.g. ``"case"``) are copied as they are.
    """
    row: dict[str, Any] = {}
    for key, value in result.items():
        if key in CLASSES:
            row.update({f"{key}_{k}": v for k, v in value.items()})
        elif key == "lesions":
            if value is not None:
                row.update({f"lesion_{k}": v for k, v in value.items() if k != "ref_lesions"})
        elif key != "spacing_mm":
            row[key] = value
    return row


def _stats(values: Sequence[Any]) -> dict[str, float | int]:
    arr = np.asarray([float(v) for v in values if v is not None], dtype=float)
    finite = arr[np.isfinite(arr)]
    n = int(finite.size)
    nan = math.nan
    return {
        "mean": float(finite.mean()) if n else nan,
        "std": float(finite.std(ddof=1)) if n > 1 else nan,
        "median": float(np.median(finite)) if n else nan,
        "min": float(finite.min()) if n else nan,
        "max": float(finite.max()) if n else nan,
        "n": n,
        "n_excluded": len(values) - n,
    }


def summarize_cases(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate :func:`evaluate_case` results over a dataset.

    Returns:
        ``{"n_cases", "metrics": {flat name: {"mean", "std" (sample, ddof=1), "median", "min",
        "max", "n" (finite values used), "n_excluded" (NaN/inf/missing left out)}},
        "global_dice": {class: float}, "lesion_detection": {summed counts, "precision",
        "recall", "recall_measurable", "recall_small", "false_positives_per_case"}}``.
        Non-finite values (one-empty cases, see the empty-mask policy) never enter a mean;
        ``n_excluded`` says how many cases were left out of each statistic.
    """
    rows = [flatten_case(r) for r in results]
    metrics = {
        key: _stats([row.get(key) for row in rows]) for key in SUMMARY_KEYS if any(key in row for row in rows)
    }
    global_dice: dict[str, float] = {}
    for name in CLASSES:
        acc = GlobalDice()
        for r in results:
            c = r[name]
            acc.update_counts(c["n_intersection"], c["n_pred_voxels"], c["n_ref_voxels"])
        global_dice[name] = acc.aggregate()
    lesion_results = [r["lesions"] for r in results if r.get("lesions") is not None]
    detection: dict[str, Any] = {}
    if lesion_results:
        keys = (
            "n_ref",
            "n_pred",
            "n_detected",
            "n_pred_matched",
            "n_false_positive",
            "n_ref_measurable",
            "n_detected_measurable",
            "n_ref_small",
            "n_detected_small",
        )
        detection = {k: int(sum(les[k] for les in lesion_results)) for k in keys}
        both_empty = detection["n_ref"] == 0 and detection["n_pred"] == 0
        detection.update(
            {
                "precision": 1.0 if both_empty else ratio(detection["n_pred_matched"], detection["n_pred"]),
                "recall": 1.0 if both_empty else ratio(detection["n_detected"], detection["n_ref"]),
                "recall_measurable": ratio(detection["n_detected_measurable"], detection["n_ref_measurable"]),
                "recall_small": ratio(detection["n_detected_small"], detection["n_ref_small"]),
                "false_positives_per_case": detection["n_false_positive"] / len(lesion_results),
            }
        )
    return {
        "n_cases": len(results),
        "metrics": metrics,
        "global_dice": global_dice,
        "lesion_detection": detection,
    }
