"""Follow-up comparison on constructed reports."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import InputError
from liverseg.reporting import compare_reports, comparison_markdown


def _lesion(lid: int, centre, diameter: float, volume: float) -> dict:
    return {
        "id": lid,
        "centroid_lps_mm": list(centre),
        "longest_axial_diameter_mm": diameter,
        "volume_ml": volume,
        "recist_measurable": diameter >= 10.0,
    }


def _report(liver, lesions) -> dict:
    return {
        "liver_centroid_lps_mm": None if liver is None else list(liver),
        "lesions": lesions,
        "tumor_volume_ml": float(sum(les["volume_ml"] for les in lesions)),
    }


BASE = _report(
    (0.0, 0.0, 0.0),
    [
        _lesion(1, (30, 10, 5), 40.0, 20.0),
        _lesion(2, (-20, 15, -10), 25.0, 6.0),
        _lesion(3, (5, -30, 20), 15.0, 1.5),
        _lesion(4, (-5, -5, -25), 6.0, 0.1),  # too small to be a target
    ],
)
SHIFT = np.array([12.0, -30.0, 150.0])  # the patient lies elsewhere in the follow-up scanner


def _follow(lesions, liver=(0.0, 0.0, 0.0)) -> dict:
    moved = [
        {**les, "centroid_lps_mm": (np.asarray(les["centroid_lps_mm"]) + SHIFT).tolist()} for les in lesions
    ]
    return _report(None if liver is None else np.asarray(liver) + SHIFT, moved)


def test_matching_after_liver_alignment_new_and_disappeared():
    follow = _follow(
        [
            _lesion(1, (31, 11, 4), 50.0, 30.0),  # baseline 1 grew
            _lesion(2, (-19, 14, -9), 20.0, 4.0),  # baseline 2 shrank
            _lesion(3, (-5, -6, -24), 7.0, 0.12),  # baseline 4, about the same
            _lesion(4, (0, 40, 40), 12.0, 1.0),  # new
        ]
    )
    c = compare_reports(BASE, follow)
    assert c["alignment_shift_mm"] == pytest.approx(SHIFT.tolist())
    pairs = [(m["baseline_id"], m["followup_id"]) for m in c["matched"]]
    assert pairs == [(1, 1), (2, 2), (4, 3)]
    m1 = c["matched"][0]
    assert m1["diameter_change_mm"] == pytest.approx(10.0) and m1["diameter_change_percent"] == pytest.approx(
        25.0
    )
    assert m1["volume_change_ml"] == pytest.approx(10.0) and m1["volume_change_percent"] == pytest.approx(
        50.0
    )
    assert m1["distance_mm"] == pytest.approx(np.sqrt(3), abs=0.01)
    assert c["new"] == [4] and c["disappeared"] == [3]
    sod = c["sum_of_diameters"]
    assert sod["target_baseline_ids"] == [1, 2]
    assert (sod["baseline_mm"], sod["followup_mm"], sod["change_mm"]) == (65.0, 70.0, 5.0)
    assert sod["category"] == "PD-like"  # a new lesion, although the sum grew only 7.7 %
    assert any("new lesion" in w for w in c["warnings"])
    text = comparison_markdown(c)
    assert "Sum of target diameters" in text and "65.0 mm -> 70.0 mm" in text
    assert "| 1 | 1 | 40.0 -> 50.0 | +10.0 | +25.0 |" in text and "not a medical device" in text


def test_categories():
    shrunk = _follow([_lesion(1, (30, 10, 5), 20.0, 5.0), _lesion(2, (-20, 15, -10), 20.0, 4.0)])
    assert compare_reports(BASE, shrunk)["sum_of_diameters"]["category"] == "PR-like"  # 65 -> 40: -38 %
    stable = _follow([_lesion(1, (30, 10, 5), 42.0, 21.0), _lesion(2, (-20, 15, -10), 26.0, 6.0)])
    assert compare_reports(BASE, stable)["sum_of_diameters"]["category"] == "SD-like"
    gone = _follow([])
    c = compare_reports(BASE, gone)
    assert c["sum_of_diameters"]["category"] == "CR-like" and c["disappeared"] == [1, 2, 3, 4]
    grown = _follow([_lesion(1, (30, 10, 5), 55.0, 40.0), _lesion(2, (-20, 15, -10), 25.0, 6.0)])
    assert compare_reports(BASE, grown)["sum_of_diameters"]["category"] == "PD-like"  # +23 %, +15 mm
    no_targets = _report((0, 0, 0), [_lesion(1, (0, 0, 0), 5.0, 0.05)])
    assert compare_reports(no_targets, no_targets)["sum_of_diameters"]["category"] is None


def test_far_lesions_do_not_match_and_missing_liver_is_flagged():
    follow = _follow([_lesion(1, (30 + 25, 10, 5), 40.0, 20.0)])  # 25 mm away > 20 mm
    c = compare_reports(BASE, follow)
    assert c["matched"] == [] and c["new"] == [1]
    c = compare_reports(BASE, _follow([], liver=None))
    assert c["alignment_shift_mm"] is None and any("liver centroid" in w for w in c["warnings"])
    with pytest.raises(InputError, match="no 'lesions' list"):
        compare_reports({"foo": 1}, BASE)
