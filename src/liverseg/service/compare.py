"""Follow-up vs baseline comparison of two study reports.

Uses :func:`liverseg.reporting.compare_reports` (lesion matching by the reporting stage) when it
is installed; otherwise returns the study-level changes only (liver volume, tumor volume and
burden, lesion count), marked ``"method": "summary"``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["compare_study_reports"]

log = logging.getLogger(__name__)
_FIELDS = ("liver_volume_ml", "tumor_volume_ml", "tumor_burden_percent", "lesion_count")


def _summary(baseline: dict[str, Any], followup: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for key in _FIELDS:
        b, f = baseline.get(key), followup.get(key)
        change = f - b if isinstance(b, (int, float)) and isinstance(f, (int, float)) else None
        pct = (100.0 * change / b) if change is not None and b else None
        rows.append({"measure": key, "baseline": b, "followup": f, "change": change, "change_percent": pct})
    return {"summary": rows}


def compare_study_reports(
    baseline: dict[str, Any], followup: dict[str, Any], *, baseline_id: str, followup_id: str
) -> dict[str, Any]:
    """Comparison dict: ``summary`` rows for the study-level measures, plus the reporting stage's
    lesion-level result under ``lesions`` when :func:`liverseg.reporting.compare_reports` exists."""
    out: dict[str, Any] = {
        "baseline_id": baseline_id,
        "followup_id": followup_id,
        **_summary(baseline, followup),
    }
    try:
        from liverseg.reporting import compare_reports  # type: ignore[attr-defined]
    except ImportError:
        out["method"] = "summary"
        return out
    out["method"] = "compare_reports"
    out["lesions"] = compare_reports(baseline, followup)
    return out
