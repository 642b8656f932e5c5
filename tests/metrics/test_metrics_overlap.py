"""Overlap metrics: hand-computed values, the empty-mask policy, input errors, global Dice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liverseg.errors import GeometryError, InputError
from liverseg.metrics import (
    GlobalDice,
    accuracy,
    confusion_counts,
    dice,
    jaccard,
    precision,
    recall,
    rvd,
    sensitivity,
    specificity,
    voe,
)

PRED = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
REF = np.array([0, 1, 1, 1, 1, 0], dtype=bool)
# TP 2, FP 1, FN 2, TN 1 -- |P| 3, |R| 4, |P∪R| 5


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (dice, 2 * 2 / (3 + 4)),
        (jaccard, 2 / 5),
        (voe, 1 - 2 / 5),
        (rvd, (3 - 4) / 4),
        (precision, 2 / 3),
        (recall, 2 / 4),
        (sensitivity, 2 / 4),
        (specificity, 1 / 2),
        (accuracy, 3 / 6),
    ],
)
def test_hand_computed_1d(fn, expected):
    assert fn(PRED, REF) == pytest.approx(expected)


def test_hand_computed_3d_cubes_and_counts():
    pred = np.zeros((4, 4, 4), dtype=np.uint8)
    ref = np.zeros((4, 4, 4), dtype=np.uint8)
    pred[0:2, 0:2, 0:2] = 1  # 8 voxels
    ref[0:2, 0:2, 1:3] = 1  # 8 voxels, 4 shared
    c = confusion_counts(pred, ref)
    assert (c.tp, c.fp, c.fn, c.tn) == (4, 4, 4, 52)
    assert dice(pred, ref, (2.0, 0.5, 0.5)) == pytest.approx(0.5)
    assert jaccard(pred, ref) == pytest.approx(4 / 12)
    assert accuracy(pred, ref) == pytest.approx(56 / 64)
    # spacing does not change overlap metrics
    assert dice(pred, ref, (5.0, 1.0, 0.1)) == dice(pred, ref)


EMPTY = np.zeros((3, 3, 3), dtype=bool)
FULL_ONE = EMPTY.copy()
FULL_ONE[1, 1, 1] = True


@pytest.mark.parametrize(
    ("pred", "ref", "expected"),
    [
        (
            EMPTY,
            EMPTY,
            {
                "dice": 1.0,
                "jaccard": 1.0,
                "voe": 0.0,
                "rvd": 0.0,
                "precision": 1.0,
                "recall": 1.0,
                "specificity": 1.0,
                "accuracy": 1.0,
            },
        ),
        (
            FULL_ONE,
            EMPTY,
            {
                "dice": 0.0,
                "jaccard": 0.0,
                "voe": 1.0,
                "rvd": math.inf,
                "precision": 0.0,
                "recall": math.nan,
                "specificity": 26 / 27,
                "accuracy": 26 / 27,
            },
        ),
        (
            EMPTY,
            FULL_ONE,
            {
                "dice": 0.0,
                "jaccard": 0.0,
                "voe": 1.0,
                "rvd": -1.0,
                "precision": math.nan,
                "recall": 0.0,
                "specificity": 1.0,
                "accuracy": 26 / 27,
            },
        ),
    ],
    ids=["both-empty", "ref-empty", "pred-empty"],
)
def test_empty_mask_policy(pred, ref, expected):
    got = confusion_counts(pred, ref).as_dict()
    assert set(got) == set(expected)
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value), name
    # the functions agree with the counts object
    assert dice(pred, ref) == got["dice"]
    assert rvd(pred, ref) == got["rvd"]


def test_shape_mismatch_is_a_geometry_error():
    with pytest.raises(GeometryError, match=r"pred \(2, 3\) and ref \(3, 2\)"):
        dice(np.zeros((2, 3)), np.zeros((3, 2)))


def test_label_map_is_refused_with_a_hint():
    labels = np.array([[0, 1, 2]])
    with pytest.raises(InputError, match="labels == 2"):
        dice(labels, labels)


def test_bad_spacing_is_refused():
    with pytest.raises(GeometryError, match="spacing_mm must be 3 positive"):
        dice(np.ones((2, 2, 2)), np.ones((2, 2, 2)), (1.0, -1.0, 1.0))
    with pytest.raises(GeometryError):
        dice(np.ones((2, 2, 2)), np.ones((2, 2, 2)), (1.0, 1.0))


def test_global_dice_equals_dice_of_concatenated_cases():
    rng = np.random.default_rng(3)
    preds = [rng.random((5, 6, 7)) > t for t in (0.3, 0.7, 0.95)]
    refs = [rng.random((5, 6, 7)) > t for t in (0.4, 0.6, 0.99)]
    acc = GlobalDice()
    for p, r in zip(preds, refs, strict=True):
        acc.update(p, r)
    expected = dice(np.concatenate(preds), np.concatenate(refs))
    assert acc.aggregate() == pytest.approx(expected)
    assert len(acc) == 3
    # differs from the mean of per-case Dice in general
    assert acc.aggregate() != pytest.approx(np.mean([dice(p, r) for p, r in zip(preds, refs, strict=True)]))
    acc.reset()
    assert math.isnan(acc.aggregate())
    acc.update(EMPTY, EMPTY)
    assert acc.aggregate() == 1.0


def test_global_dice_docstring_example_and_count_check():
    acc = GlobalDice()
    acc.update(np.array([1, 1, 0]), np.array([1, 0, 0]))
    acc.update(np.array([0, 0, 0]), np.array([0, 1, 1]))
    assert acc.aggregate() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="inconsistent"):
        acc.update_counts(5, 3, 4)
