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
    assert sod["category"] == "PD"  # a new lesion, although the sum grew only 7.7 %
    assert (
        sod["category_name"] == "progressive disease" and sod["reason"] == "1 new lesion(s) in the follow-up"
    )
    assert set(sod["rules"]) == {"CR", "PR", "SD", "PD"} and "20 %" in sod["rules"]["PD"]
    assert any("new lesion" in w for w in c["warnings"])
    text = comparison_markdown(c)
    assert "Sum of target diameters" in text and "65.0 mm -> 70.0 mm" in text
    assert "PD (progressive disease) -- 1 new lesion(s)" in text
    assert "| 1 | 1 | 40.0 -> 50.0 | +10.0 | +25.0 |" in text and "not a medical device" in text


def test_categories():
    shrunk = _follow([_lesion(1, (30, 10, 5), 20.0, 5.0), _lesion(2, (-20, 15, -10), 20.0, 4.0)])
    assert compare_reports(BASE, shrunk)["sum_of_diameters"]["category"] == "PR"  # 65 -> 40: -38 %
    stable = _follow([_lesion(1, (30, 10, 5), 42.0, 21.0), _lesion(2, (-20, 15, -10), 26.0, 6.0)])
    assert compare_reports(BASE, stable)["sum_of_diameters"]["category"] == "SD"
    gone = _follow([])
    c = compare_reports(BASE, gone)
    assert c["sum_of_diameters"]["category"] == "CR" and c["disappeared"] == [1, 2, 3, 4]
    grown = _follow([_lesion(1, (30, 10, 5), 55.0, 40.0), _lesion(2, (-20, 15, -10), 25.0, 6.0)])
    assert compare_reports(BASE, grown)["sum_of_diameters"]["category"] == "PD"  # +23 %, +15 mm
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


def test_possible_lesions_take_no_part_in_matching_or_response():
    """A lesion the model marks possible (below its confidence threshold) is neither a target,
    nor new, nor matched; it is only counted."""
    follow = _follow(
        [
            _lesion(1, (30, 10, 5), 40.0, 20.0),
            _lesion(2, (-20, 15, -10), 25.0, 6.0),
            _lesion(3, (5, -30, 20), 15.0, 1.5),
            _lesion(4, (-5, -5, -25), 6.0, 0.1),
            {**_lesion(5, (0, 40, 40), 30.0, 3.0), "possible": True, "confidence": 0.4},
        ]
    )
    base = {**BASE, "lesions": [*BASE["lesions"], {**_lesion(5, (30, 10, 5), 60.0, 9.0), "possible": True}]}
    c = compare_reports(base, follow)
    assert c["new"] == [] and c["disappeared"] == [] and len(c["matched"]) == 4
    assert c["possible"] == {"baseline": 1, "followup": 1}
    sod = c["sum_of_diameters"]
    assert sod["target_baseline_ids"] == [1, 2] and sod["category"] == "SD"
    assert sod["reason"].startswith("sum +0.0 %")


def test_pd_needs_both_20_percent_and_5_mm():
    small = _report((0, 0, 0), [_lesion(1, (0, 0, 0), 12.0, 0.5)])
    grown = _report((0, 0, 0), [_lesion(1, (0, 0, 0), 16.0, 1.0)])  # +33 % but only +4 mm
    assert compare_reports(small, grown)["sum_of_diameters"]["category"] == "SD"
    grown = _report((0, 0, 0), [_lesion(1, (0, 0, 0), 17.0, 1.0)])  # +42 %, +5 mm
    sod = compare_reports(small, grown)["sum_of_diameters"]
    assert sod["category"] == "PD" and sod["reason"] == "sum +41.7 % and +5.0 mm (>= +20 % and >= +5 mm)"
