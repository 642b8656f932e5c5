"""Follow-up comparison of two scan reports of one patient (baseline versus follow-up).

Matching: each report's lesion centroids (LPS mm) are shifted by its liver centroid, which
removes the patient's different position in the two scanners (a translation only: no rotation,
no deformation). Lesions are then paired one-to-one by the Hungarian assignment on centroid
distance (``scipy.optimize.linear_sum_assignment``); a pair farther apart than ``max_distance_mm``
is not a match. Unpaired follow-up lesions are **new**, unpaired baseline lesions
**disappeared**. Each pair gets the change in longest axial diameter and in volume.

Lesions the model marks ``possible`` (below its confidence threshold: not in the label map,
listed after the confirmed ones) take no part in matching or in the response; they are counted
under ``possible``. A lesion without the key is confirmed.

Response: the RECIST 1.1 target-lesion rules, applied to the liver only and to automatic
measurements, so the category is a proposal for the clinician to confirm:

* target lesions = the 2 largest (longest diameter) measurable (>= 10 mm) baseline lesions
  (RECIST 1.1 allows at most 2 target lesions per organ; the liver is one organ);
* baseline sum = their longest diameters; follow-up sum = the diameters of their matched
  follow-up lesions (0 for a disappeared target);
* ``CR``: every target lesion gone (and no new lesion); ``PD``: the sum grew by >= 20 % **and**
  >= 5 mm over the smallest sum on study (the nadir; only two studies are compared, so the nadir
  is the smaller of baseline and follow-up sums, i.e. the baseline here), or a new lesion;
  ``PR``: the sum shrank by >= 30 % from the baseline; ``SD``: none of these. With no target
  lesion the category is ``None``. Lymph nodes, non-target lesions, other organs and the
  confirmation of new lesions are left to the clinician (listed in ``caveats``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from liverseg.errors import InputError

__all__ = ["compare_reports", "comparison_markdown"]

MAX_TARGETS = 2
PR_PERCENT, PD_PERCENT, PD_MM = -30.0, 20.0, 5.0
RESPONSE_NAMES = {
    "CR": "complete response",
    "PR": "partial response",
    "SD": "stable disease",
    "PD": "progressive disease",
}
RESPONSE_RULES = {
    "CR": "CR: all target lesions have disappeared and no new lesion appeared",
    "PR": "PR: the sum of target diameters decreased by at least 30 % from the baseline",
    "PD": "PD: the sum increased by at least 20 % and at least 5 mm over the smallest sum on study "
    "(here the baseline), or a new lesion appeared",
    "SD": "SD: neither enough shrinkage for PR nor enough growth for PD",
}
CAVEATS = (
    "RECIST 1.1 target-lesion rules applied to automatic liver measurements: at most 2 target "
    "lesions (the liver is one organ); lymph nodes, non-target lesions and other organs are not "
    "assessed; a new lesion must be confirmed as unequivocal by the clinician."
)


def _response(
    has_targets: bool, base_sum: float, follow_sum: float, change: float, change_pct: float | None, n_new: int
) -> tuple[str | None, str]:
    """RECIST 1.1 category and the reason in words (see the module docstring)."""
    if not has_targets:
        return None, "no measurable (>= 10 mm) lesion at baseline: no target lesion, no category"
    if n_new:
        return "PD", f"{n_new} new lesion(s) in the follow-up"
    if follow_sum == 0:
        return "CR", "every target lesion has disappeared"
    assert change_pct is not None  # base_sum > 0 because targets are >= 10 mm
    if change_pct >= PD_PERCENT and change >= PD_MM:
        return "PD", f"sum {change_pct:+.1f} % and {change:+.1f} mm (>= +20 % and >= +5 mm)"
    if change_pct <= PR_PERCENT:
        return "PR", f"sum {change_pct:+.1f} % (<= -30 %)"
    return "SD", f"sum {change_pct:+.1f} % ({change:+.1f} mm): between -30 % and the PD threshold"


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
        "change_percent", "category", "category_name", "reason", "rules", "caveats"},
        "possible": {"baseline": n, "followup": n}, "tumor_volume_change_ml", "warnings": [...]}``.
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
    # possible lesions (below the model's confirmation threshold) take no part: only confirmed
    # lesions are paired, summed and counted as new (their centroids likewise)
    b_all, f_all = baseline["lesions"], followup["lesions"]
    b_les, f_les = confirmed_lesions(baseline), confirmed_lesions(followup)
    b_pts = b_pts[[i for i, les in enumerate(b_all) if not les.get("possible", False)]]
    f_aligned = f_aligned[[i for i, les in enumerate(f_all) if not les.get("possible", False)]]
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
    category, reason = _response(bool(targets), base_sum, follow_sum, change, change_pct, len(new))
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
            "category_name": RESPONSE_NAMES.get(category or ""),
            "reason": reason,
            "rules": RESPONSE_RULES,
            "caveats": CAVEATS,
        },
        "possible": {"baseline": len(b_all) - len(b_les), "followup": len(f_all) - len(f_les)},
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
        "Research use, not a medical device. RECIST 1.1 target-lesion rules on automatic liver "
        "measurements: a proposal for the clinician to confirm.",
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
        f"({_f(sod['change_mm'])} mm, {_f(sod['change_percent'])} %): "
        f"{sod['category'] + ' (' + sod['category_name'] + ')' if sod['category'] else 'no target lesion'}"
        f" -- {sod['reason']}",
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
