"""Lesion-level detection: connected components, overlap matching, size-split recall.

Lesions are the 26-connected components (``cc3d``) of a binary tumor mask. Matching follows the
usual LiTS detection rule, kept deliberately simple:

* a reference lesion is **detected** when at least one predicted tumor voxel overlaps it;
* a predicted lesion is a **true positive** when it overlaps at least one reference lesion,
  otherwise it is a **false positive**.

Lesion precision = true-positive predicted lesions / predicted lesions; lesion recall = detected
reference lesions / reference lesions. Recall is also split by size: reference lesions whose
longest axial diameter (:mod:`liverseg.metrics.diameters`) is >= ``measurable_mm`` (10 mm,
RECIST 1.1 measurable) versus smaller ones.

Empty policy (as the voxel metrics): no reference and no predicted lesion -> precision 1 and
recall 1; otherwise 0/0 is NaN (precision with no predicted lesion, recall with no reference
lesion). The size-split recalls are NaN when the case has no reference lesion of that size.
Across a dataset, sum the counts (``n_detected``, ``n_ref``, ...) rather than averaging the
per-case fractions: :func:`liverseg.metrics.summarize_cases` does.
"""

from __future__ import annotations

from typing import Any

import cc3d
import numpy as np

from liverseg.errors import InputError
from liverseg.metrics._common import SpacingLike, check_pair, check_spacing, ratio, union_bbox
from liverseg.metrics.diameters import longest_axial_diameter_mm

__all__ = ["MEASURABLE_MM", "connected_lesions", "lesion_detection"]

MEASURABLE_MM = 10.0
"""RECIST 1.1: a lesion is measurable when its longest axial diameter is at least 10 mm."""


def connected_lesions(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the connected components of a 3D binary mask.

    Returns:
        ``(labels, n)``: integer array of the mask's shape (0 background, 1..n components, in
        ``cc3d``'s scan order) and the number of components.
    """
    if connectivity not in (6, 18, 26):
        raise InputError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    labels, n = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity, return_N=True
    )
    return labels, int(n)


def _fraction(num: int, den: int, *, both_empty_one: bool, other_empty: bool) -> float:
    if both_empty_one and den == 0 and other_empty:
        return 1.0
    return ratio(num, den)


def lesion_detection(
    pred_mask: np.ndarray,
    ref_mask: np.ndarray,
    spacing_mm: SpacingLike = None,
    *,
    measurable_mm: float = MEASURABLE_MM,
    connectivity: int = 26,
) -> dict[str, Any]:
    """Lesion-wise detection metrics of a predicted versus a reference tumor mask.

    Args:
        pred_mask, ref_mask: binary 3D masks ``(z, y, x)`` of the same shape (axis 0 axial).
        spacing_mm: voxel size in mm ``(z, y, x)``.
        measurable_mm: diameter threshold of the size split (mm).
        connectivity: 6, 18 or 26 (default 26).
    Returns:
        dict with counts ``n_ref``, ``n_pred``, ``n_detected``, ``n_pred_matched``,
        ``n_false_positive``, ``n_ref_measurable``, ``n_detected_measurable``, ``n_ref_small``,
        ``n_detected_small``; fractions ``precision``, ``recall``, ``recall_measurable``,
        ``recall_small``; and ``ref_lesions``: one dict per reference lesion with
        ``volume_ml``, ``longest_axial_diameter_mm``, ``measurable``, ``detected``.
    """
    p, r = check_pair(pred_mask, ref_mask)
    if p.ndim != 3:
        raise InputError(f"lesion detection needs 3D masks (z, y, x), got shape {p.shape}")
    sp = check_spacing(spacing_mm, 3)
    box = union_bbox(p | r)
    ref_lesions: list[dict[str, Any]] = []
    n_pred = n_pred_matched = 0
    if box is not None:
        p, r = p[box], r[box]
        ref_cc, n_ref = connected_lesions(r, connectivity)
        pred_cc, n_pred = connected_lesions(p, connectivity)
        detected = set(np.unique(ref_cc[p & r]).tolist()) - {0}
        n_pred_matched = len(set(np.unique(pred_cc[p & r]).tolist()) - {0})
        if n_ref:
            stats = cc3d.statistics(ref_cc)
            voxel_ml = float(np.prod(sp)) / 1000.0
            for lab in range(1, n_ref + 1):
                bb = stats["bounding_boxes"][lab]
                diameter = longest_axial_diameter_mm(ref_cc[bb] == lab, sp)
                ref_lesions.append(
                    {
                        "volume_ml": float(stats["voxel_counts"][lab]) * voxel_ml,
                        "longest_axial_diameter_mm": diameter,
                        "measurable": bool(diameter >= measurable_mm),
                        "detected": lab in detected,
                    }
                )
    n_ref = len(ref_lesions)
    n_detected = sum(les["detected"] for les in ref_lesions)
    n_ref_meas = sum(les["measurable"] for les in ref_lesions)
    n_det_meas = sum(les["measurable"] and les["detected"] for les in ref_lesions)
    n_ref_small, n_det_small = n_ref - n_ref_meas, n_detected - n_det_meas
    return {
        "n_ref": n_ref,
        "n_pred": n_pred,
        "n_detected": n_detected,
        "n_pred_matched": n_pred_matched,
        "n_false_positive": n_pred - n_pred_matched,
        "precision": _fraction(n_pred_matched, n_pred, both_empty_one=True, other_empty=n_ref == 0),
        "recall": _fraction(n_detected, n_ref, both_empty_one=True, other_empty=n_pred == 0),
        "n_ref_measurable": n_ref_meas,
        "n_detected_measurable": n_det_meas,
        "recall_measurable": ratio(n_det_meas, n_ref_meas),
        "n_ref_small": n_ref_small,
        "n_detected_small": n_det_small,
        "recall_small": ratio(n_det_small, n_ref_small),
        "ref_lesions": ref_lesions,
    }
