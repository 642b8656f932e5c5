"""Follow-up vs baseline: who may be compared, and the comparison as the browser shows it.

A comparison is refused (with the reason) unless both studies belong to one patient (equal,
non-empty patient IDs) and the baseline was scanned before the follow-up (both study dates
known, baseline strictly earlier). The lesion-level result is
:func:`liverseg.reporting.compare_reports` (matching, RECIST 1.1 target-lesion response with
its rule); the study-level rows carry readable labels and units, counts as integers.
"""

from __future__ import annotations

import logging
from typing import Any

from liverseg.errors import InputError
from liverseg.reporting import compare_reports
from liverseg.service.db import Study

__all__ = ["SUMMARY_ROWS", "check_follow_up", "compare_study_reports"]

log = logging.getLogger(__name__)
#: report key -> (label, unit, decimals; 0 = an integer count)
SUMMARY_ROWS = {
    "liver_volume_ml": ("Liver volume", "ml", 1),
    "tumor_volume_ml": ("Tumor volume", "ml", 2),
    "tumor_burden_percent": ("Tumor burden", "% of the liver", 2),
    "lesion_count": ("Lesions", "", 0),
}
_LESION_FIELDS = (
    "id",
    "volume_ml",
    "longest_axial_diameter_mm",
    "short_axis_mm",
    "largest_slice_number",
    "largest_slice_z_mm",
    "possible",
    "confidence",
)


def check_follow_up(baseline: Study, followup: Study) -> None:
    """Raise :class:`InputError` (the reason in words) unless ``baseline`` may be compared with
    ``followup``: another study, one patient, an earlier date."""
    if baseline.id == followup.id:
        raise InputError("the baseline must be another study than the follow-up")
    for role, st in (("baseline", baseline), ("follow-up", followup)):
        if not st.patient_id:
            raise InputError(
                f"cannot compare: the {role} study '{st.label}' has no patient ID (a NIfTI upload "
                "needs one entered at upload), so it cannot be shown to be the same patient"
            )
        if st.study_date is None:
            raise InputError(
                f"cannot compare: the {role} study '{st.label}' has no study date, so it cannot be "
                "shown to be earlier or later"
            )
    if baseline.patient_id != followup.patient_id:
        raise InputError(
            f"refused: the baseline belongs to another patient ({baseline.patient_id}, the follow-up "
            f"is {followup.patient_id}); a follow-up compares scans of one patient"
        )
    if not baseline.study_date < followup.study_date:
        raise InputError(
            f"refused: the baseline ({baseline.study_date.isoformat()}) must be scanned before the "
            f"follow-up ({followup.study_date.isoformat()}); choose an earlier study as baseline"
        )


def _summary(baseline: dict[str, Any], followup: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, (label, unit, decimals) in SUMMARY_ROWS.items():
        b, f = baseline.get(key), followup.get(key)
        if decimals == 0:  # a count: integers, also when a report wrote 7.0
            b = int(b) if isinstance(b, (int, float)) else None
            f = int(f) if isinstance(f, (int, float)) else None
        change = f - b if isinstance(b, (int, float)) and isinstance(f, (int, float)) else None
        pct = round(100.0 * change / b, 1) if change is not None and b else None
        rows.append(
            {
                "measure": key,
                "label": label,
                "unit": unit,
                "decimals": decimals,
                "baseline": b,
                "followup": f,
                "change": change,
                "change_percent": pct,
            }
        )
    return rows


def _lesion_brief(lesion: dict[str, Any]) -> dict[str, Any]:
    brief = {k: lesion.get(k) for k in _LESION_FIELDS}
    brief["possible"] = bool(brief["possible"])
    brief["location"] = (lesion.get("location") or {}).get("description")
    return brief


def compare_study_reports(
    baseline: dict[str, Any], followup: dict[str, Any], *, baseline_id: str, followup_id: str
) -> dict[str, Any]:
    """``summary`` rows (readable labels), ``lesions`` (:func:`compare_reports`) and both studies'
    lesion tables (``baseline_lesions`` / ``followup_lesions``) for the side-by-side view."""
    return {
        "baseline_id": baseline_id,
        "followup_id": followup_id,
        "summary": _summary(baseline, followup),
        "lesions": compare_reports(baseline, followup),
        "baseline_lesions": [_lesion_brief(les) for les in baseline.get("lesions") or []],
        "followup_lesions": [_lesion_brief(les) for les in followup.get("lesions") or []],
    }
