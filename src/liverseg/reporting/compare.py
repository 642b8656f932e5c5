"""Follow-up comparison of two scan reports (baseline versus follow-up), RECIST-like.

Matching: each report's lesion centroids (LPS mm) are shifted by its liver centroid, which
removes the patient's different position in the two scanners (a translation only: no rotation,
no deformation). Lesions are then paired one-to-one by the Hungarian assignment on centroid
distance (``scipy.optimize.linear_sum_assignment``); a pair farther apart than ``max_distance_mm``
is not a match. Unpaired follow-up lesions are **new**, unpaired baseline lesions
**disappeared**. Each pair gets the change in longest axial diameter and in volume.

Sum of diameters, kept simple and documented as *RECIST-like*, not RECIST 1.1:

* target lesions = the 2 largest (longest diameter) RECIST-measurable baseline lesions (RECIST 1.1
  allows at most 2 target lesions per organ; the liver is one organ);
* baseline sum = their longest diameters; follow-up sum = the diameters of their matched
  follow-up lesions (0 for a disappeared target);
* category from the change against the baseline (RECIST compares with the nadir, unknown here):
  ``CR``-like: every target gone and no new lesion; ``PD``-like: sum +20 % and +5 mm, or any new
  lesion; ``PR``-like: sum -30 %; otherwise ``SD``-like. Lymph nodes, non-target lesions and the
  confirmation of new lesions are left to the clinician. With no target lesion the category is
  ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from liverseg.errors import InputError

__all__ = ["compare_reports", "comparison_markdown"]

MAX_TARGETS = 2


def _centroids(report: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray | None]:
    lesions = report.get("lesions")
    if lesions is None:
        raise InputError(
            f"the {name} report has no 'lesions' list: expected a liverseg report "
            f"(schema 1.0), got keys {sorted(report)}"
        )
    pts = np.asarray([les["centroid_lps_mm"] for les in lesions], dtype=float).reshape(-1, 3)
    liver = report.get("liver_centroid_lps_mm")
    return pts, None if liver is None else np.asarray(liver, dtype=float)


def _pct(new: float, old: float) -> float | None:
    return None if old == 0 else round(100.0 * (new - old) / old, 1)


def confirmed_lesions(report: dict) -> list[dict]:
    """The report's lesions without the ``possible`` ones (reports before schema 1.1 have none)."""
    return [les for les in report["lesions"] if not les.get("possible", False)]


def compare_reports(baseline: dict, followup: dict, *, max_distance_mm: float = 20.0) -> dict:
    """Compare a follow-up report with its baseline (see the module docstring).

    Args:
        baseline, followup: reports from :func:`liverseg.reporting.build_report`.
        max_distance_mm: largest centroid distance (after liver alignment) of a lesion pair.
    Returns:
        ``{"matched": [{"baseline_id", "followup_id", "distance_mm", "baseline_diameter_mm",
        "followup_diameter_mm", "diameter_change_mm", "diameter_change_percent",
        "baseline_volume_ml", "followup_volume_ml", "volume_change_ml", "volume_change_percent"}],
        "new": [followup ids], "disappeared": [baseline ids], "alignment_shift_mm": [x, y, z] | None,
        "sum_of_diameters": {"target_baseline_ids", "baseline_mm", "followup_mm", "change_mm",
        "change_percent", "category"}, "tumor_volume_change_ml", "warnings": [...]}``.
    """
    b_pts, b_liver = _centroids(baseline, "baseline")
    f_pts, f_liver = _centroids(followup, "follow-up")
    warnings: list[str] = []
    shift = None
    if b_liver is not None and f_liver is not None:
        shift = f_liver - b_liver
        f_aligned = f_pts - shift
    else:
        warnings.append("a liver centroid is missing: lesions were matched without aligning the livers")
        f_aligned = f_pts
    # possible lesions (below the model's confirmation threshold) are not part of the RECIST-style
    # comparison: only confirmed lesions are paired, summed and counted as new
    b_les, f_les = (confirmed_lesions(r) for r in (baseline, followup))
    pairs: list[tuple[int, int, float]] = []
    if len(b_les) and len(f_les):
        dist = np.linalg.norm(b_pts[:, None, :] - f_aligned[None, :, :], axis=2)
        big = 1e6  # forbids pairs beyond the threshold while keeping the assignment feasible
        rows, cols = linear_sum_assignment(np.where(dist <= max_distance_mm, dist, big))
        pairs = [
            (int(i), int(j), float(dist[i, j]))
            for i, j in zip(rows, cols, strict=True)
            if dist[i, j] <= max_distance_mm
        ]
    matched = []
    for i, j, d in sorted(pairs, key=lambda p: b_les[p[0]]["id"]):
        b, f = b_les[i], f_les[j]
        bd, fd = float(b["longest_axial_diameter_mm"]), float(f["longest_axial_diameter_mm"])
        bv, fv = float(b["volume_ml"]), float(f["volume_ml"])
        matched.append(
            {
                "baseline_id": b["id"],
                "followup_id": f["id"],
                "distance_mm": round(d, 2),
                "baseline_diameter_mm": bd,
                "followup_diameter_mm": fd,
                "diameter_change_mm": round(fd - bd, 2),
                "diameter_change_percent": _pct(fd, bd),
                "baseline_volume_ml": bv,
                "followup_volume_ml": fv,
                "volume_change_ml": round(fv - bv, 4),
                "volume_change_percent": _pct(fv, bv),
            }
        )
    paired_b = {b_les[i]["id"] for i, _, _ in pairs}
    paired_f = {f_les[j]["id"] for _, j, _ in pairs}
    new = sorted(les["id"] for les in f_les if les["id"] not in paired_f)
    disappeared = sorted(les["id"] for les in b_les if les["id"] not in paired_b)

    targets = sorted(
        (les for les in b_les if les["recist_measurable"]),
        key=lambda les: -float(les["longest_axial_diameter_mm"]),
    )[:MAX_TARGETS]
    follow_of = {m["baseline_id"]: m["followup_diameter_mm"] for m in matched}
    base_sum = float(sum(les["longest_axial_diameter_mm"] for les in targets))
    follow_sum = float(sum(follow_of.get(les["id"], 0.0) for les in targets))
    change = follow_sum - base_sum
    change_pct = _pct(follow_sum, base_sum)
    category = None
    if targets:
        if follow_sum == 0 and not new:
            category = "CR-like"
        elif new or (change_pct is not None and change_pct >= 20.0 and change >= 5.0):
            category = "PD-like"
        elif change_pct is not None and change_pct <= -30.0:
            category = "PR-like"
        else:
            category = "SD-like"
    if new:
        warnings.append(
            f"{len(new)} new lesion(s) in the follow-up: confirm they are real before calling progression"
        )
    return {
        "matched": matched,
        "new": new,
        "disappeared": disappeared,
        "alignment_shift_mm": None if shift is None else np.round(shift, 2).tolist(),
        "max_distance_mm": max_distance_mm,
        "sum_of_diameters": {
            "target_baseline_ids": [les["id"] for les in targets],
            "baseline_mm": round(base_sum, 2),
            "followup_mm": round(follow_sum, 2),
            "change_mm": round(change, 2),
            "change_percent": change_pct,
            "category": category,
        },
        "tumor_volume_change_ml": round(
            float(followup.get("tumor_volume_ml", 0.0)) - float(baseline.get("tumor_volume_ml", 0.0)), 3
        ),
        "warnings": warnings,
    }


def _f(value: Any, fmt: str = "{:+.1f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """Render :func:`compare_reports`'s result as Markdown (also readable as plain text)."""
    sod = comparison["sum_of_diameters"]
    lines = [
        "# Follow-up comparison",
        "",
        "Research use, not a medical device. RECIST-like summary, not a RECIST 1.1 assessment.",
        "",
    ]
    lines += [
        f"- Matched lesions: {len(comparison['matched'])}; new: {len(comparison['new'])}"
        f"{' (' + ', '.join(f'#{i}' for i in comparison['new']) + ')' if comparison['new'] else ''}; "
        f"disappeared: {len(comparison['disappeared'])}"
        f"{' (' + ', '.join(f'#{i}' for i in comparison['disappeared']) + ')' if comparison['disappeared'] else ''}",
        f"- Tumor volume change: {_f(comparison['tumor_volume_change_ml'], '{:+.2f}')} ml",
        f"- Sum of target diameters (baseline lesions {', '.join(f'#{i}' for i in sod['target_baseline_ids']) or 'none'}):"
        f" {sod['baseline_mm']:.1f} mm -> {sod['followup_mm']:.1f} mm "
        f"({_f(sod['change_mm'])} mm, {_f(sod['change_percent'])} %): {sod['category'] or 'no target lesion'}",
        "",
    ]
    if comparison["matched"]:
        lines += [
            "| baseline # | follow-up # | diameter (mm) | change (mm) | change (%) | volume (ml) | change (%) |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m in comparison["matched"]:
            lines.append(
                f"| {m['baseline_id']} | {m['followup_id']} | {m['baseline_diameter_mm']:.1f} -> "
                f"{m['followup_diameter_mm']:.1f} | {_f(m['diameter_change_mm'])} | {_f(m['diameter_change_percent'])} | "
                f"{m['baseline_volume_ml']:.2f} -> {m['followup_volume_ml']:.2f} | {_f(m['volume_change_percent'])} |"
            )
        lines.append("")
    lines += [f"> {w}" for w in comparison["warnings"]]
    return "\n".join(lines).rstrip() + "\n"
