"""evaluate_case (liver = label >= 1, tumor = label 2) and dataset summaries with exclusions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liverseg.errors import GeometryError, InputError
from liverseg.metrics import dice, evaluate_case, flatten_case, summarize_cases

SPACING = (2.0, 0.8, 0.8)


def _case(tumor_pred: bool = True, tumor_ref: bool = True, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((12, 40, 40), dtype=np.uint8)
    ref[2:10, 5:35, 5:35] = 1
    pred = np.zeros_like(ref)
    pred[2:10, 5 + shift : 35, 5:35] = 1
    if tumor_ref:
        ref[4:7, 10:18, 10:18] = 2
    if tumor_pred:
        pred[4:7, 11:18, 10:18] = 2
    return pred, ref


def test_classes_are_liver_including_tumor_and_tumor():
    pred, ref = _case(shift=3)
    res = evaluate_case(pred, ref, SPACING)
    assert res["liver"]["dice"] == pytest.approx(dice(pred >= 1, ref >= 1))
    assert res["tumor"]["dice"] == pytest.approx(dice(pred == 2, ref == 2))
    # a tumor voxel predicted as liver still counts as liver: liver Dice is unaffected by it
    relabelled = np.where(pred == 2, 1, pred).astype(np.uint8)
    assert evaluate_case(relabelled, ref, SPACING, surface=False, lesions=False)["liver"][
        "dice"
    ] == pytest.approx(res["liver"]["dice"])
    assert res["liver"]["n_ref_voxels"] == 8 * 30 * 30
    assert res["liver"]["ref_volume_ml"] == pytest.approx(8 * 30 * 30 * 2.0 * 0.8 * 0.8 / 1000)
    assert res["liver"]["hd95"] == pytest.approx(3 * 0.8)
    assert res["lesions"]["n_detected"] == 1 and res["lesions"]["n_ref"] == 1
    row = flatten_case({"case": "a", **res})
    assert row["case"] == "a" and row["tumor_dice"] == res["tumor"]["dice"]
    assert "lesion_ref_lesions" not in row and row["lesion_recall"] == 1.0


def test_switches_and_input_checks():
    pred, ref = _case()
    res = evaluate_case(pred, ref, SPACING, surface=False, lesions=False)
    assert math.isnan(res["liver"]["assd"]) and res["lesions"] is None
    with pytest.raises(InputError, match=r"values 0 \(background\), 1 \(liver\), 2 \(tumor\)"):
        evaluate_case(pred * 3, ref, SPACING)
    with pytest.raises(GeometryError, match="does not match"):
        evaluate_case(pred[1:], ref, SPACING)
    with pytest.raises(InputError, match="3D"):
        evaluate_case(pred[0], ref[0], SPACING)


def test_summary_excludes_non_finite_and_counts_them():
    cases = [
        evaluate_case(*_case(), SPACING),  # tumor in both
        evaluate_case(*_case(shift=2), SPACING),  # tumor in both
        evaluate_case(*_case(tumor_pred=False), SPACING),  # tumor missed: inf distances
        evaluate_case(*_case(tumor_pred=False, tumor_ref=False), SPACING),  # no tumor at all: perfect
    ]
    s = summarize_cases(cases)
    assert s["n_cases"] == 4
    assd_stats = s["metrics"]["tumor_assd"]
    assert assd_stats["n"] == 3 and assd_stats["n_excluded"] == 1
    finite = [c["tumor"]["assd"] for c in cases if math.isfinite(c["tumor"]["assd"])]
    assert assd_stats["mean"] == pytest.approx(np.mean(finite))
    assert assd_stats["std"] == pytest.approx(np.std(finite, ddof=1))
    # Dice is always finite: the missed tumor counts as 0, the empty case as 1
    assert s["metrics"]["tumor_dice"]["n_excluded"] == 0
    # global Dice from summed counts
    tp = sum(c["tumor"]["n_intersection"] for c in cases)
    tot = sum(c["tumor"]["n_pred_voxels"] + c["tumor"]["n_ref_voxels"] for c in cases)
    assert s["global_dice"]["tumor"] == pytest.approx(2 * tp / tot)
    det = s["lesion_detection"]
    assert (det["n_ref"], det["n_detected"], det["recall"]) == (3, 2, pytest.approx(2 / 3))
    assert det["false_positives_per_case"] == 0.0
