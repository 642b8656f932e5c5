"""Voxel-overlap metrics: Dice, Jaccard, VOE, RVD, precision, recall, specificity, accuracy.

All functions have the signature ``f(pred, ref, spacing_mm=None) -> float`` shared with the
surface metrics; the overlap metrics do not depend on the voxel size, so ``spacing_mm`` is only
checked for validity. ``pred`` and ``ref`` are boolean (or 0/1) arrays of one shape.

Definitions (P = predicted voxels, R = reference voxels, N = all voxels; LiTS conventions,
Bilic et al. 2023). Values are fractions, not percent:

* Dice = 2|P∩R| / (|P| + |R|); Jaccard = |P∩R| / |P∪R|; VOE = 1 - Jaccard
* RVD = (|P| - |R|) / |R| (signed: > 0 over-segmentation, < 0 under-segmentation)
* precision = TP / (TP + FP); recall (sensitivity) = TP / (TP + FN)
* specificity = TN / (TN + FP); accuracy = (TP + TN) / N

Empty-mask policy (see :mod:`liverseg.metrics` for the full text): both masks empty -> the
perfect value (Dice 1, Jaccard 1, VOE 0, RVD 0, precision 1, recall 1); otherwise the formula,
where 0/0 is NaN (undefined, e.g. precision of an empty prediction) and x/0 with x > 0 is +inf
(RVD of a non-empty prediction against an empty reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liverseg.metrics._common import SpacingLike, check_pair, check_spacing, ratio

__all__ = [
    "ConfusionCounts",
    "GlobalDice",
    "accuracy",
    "confusion_counts",
    "dice",
    "jaccard",
    "precision",
    "recall",
    "rvd",
    "sensitivity",
    "specificity",
    "voe",
]


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of one binary comparison; every overlap metric derives from these."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n_pred(self) -> int:
        """Number of predicted foreground voxels ``|P|``."""
        return self.tp + self.fp

    @property
    def n_ref(self) -> int:
        """Number of reference foreground voxels ``|R|``."""
        return self.tp + self.fn

    @property
    def both_empty(self) -> bool:
        return self.n_pred == 0 and self.n_ref == 0

    def dice(self) -> float:
        return 1.0 if self.both_empty else ratio(2 * self.tp, self.n_pred + self.n_ref)

    def jaccard(self) -> float:
        return 1.0 if self.both_empty else ratio(self.tp, self.tp + self.fp + self.fn)

    def voe(self) -> float:
        return 1.0 - self.jaccard()

    def rvd(self) -> float:
        return 0.0 if self.both_empty else ratio(self.n_pred - self.n_ref, self.n_ref)

    def precision(self) -> float:
        return 1.0 if self.both_empty else ratio(self.tp, self.n_pred)

    def recall(self) -> float:
        return 1.0 if self.both_empty else ratio(self.tp, self.n_ref)

    def specificity(self) -> float:
        return ratio(self.tn, self.tn + self.fp)

    def accuracy(self) -> float:
        return ratio(self.tp + self.tn, self.tp + self.fp + self.fn + self.tn)

    def as_dict(self) -> dict[str, float]:
        """All overlap metrics by name (``dice``, ``jaccard``, ``voe``, ``rvd``, ...)."""
        return {
            "dice": self.dice(),
            "jaccard": self.jaccard(),
            "voe": self.voe(),
            "rvd": self.rvd(),
            "precision": self.precision(),
            "recall": self.recall(),
            "specificity": self.specificity(),
            "accuracy": self.accuracy(),
        }


def confusion_counts(pred: np.ndarray, ref: np.ndarray) -> ConfusionCounts:
    """Count TP, FP, FN, TN voxels of two same-shape binary masks."""
    p, r = check_pair(pred, ref)
    tp = int(np.count_nonzero(p & r))
    n_pred = int(np.count_nonzero(p))
    n_ref = int(np.count_nonzero(r))
    fp, fn = n_pred - tp, n_ref - tp
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=int(p.size) - tp - fp - fn)


def _counts(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike) -> ConfusionCounts:
    counts = confusion_counts(pred, ref)
    check_spacing(spacing_mm, np.ndim(pred))
    return counts


def dice(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Dice coefficient 2|P∩R| / (|P| + |R|) in [0, 1]; 1 when both masks are empty."""
    return _counts(pred, ref, spacing_mm).dice()


def jaccard(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Jaccard index |P∩R| / |P∪R| in [0, 1]; 1 when both masks are empty."""
    return _counts(pred, ref, spacing_mm).jaccard()


def voe(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Volumetric overlap error 1 - Jaccard in [0, 1]; 0 when both masks are empty."""
    return _counts(pred, ref, spacing_mm).voe()


def rvd(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Relative volume difference (|P| - |R|) / |R| (signed fraction).

    0 when both are empty; +inf when only the reference is empty; -1 when only the prediction is.
    """
    return _counts(pred, ref, spacing_mm).rvd()


def precision(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Voxel precision TP / (TP + FP); 1 when both empty, NaN when only the prediction is empty."""
    return _counts(pred, ref, spacing_mm).precision()


def recall(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Voxel recall (sensitivity) TP / (TP + FN); 1 when both empty, NaN when only the reference is."""
    return _counts(pred, ref, spacing_mm).recall()


sensitivity = recall


def specificity(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Voxel specificity TN / (TN + FP); NaN only when the reference covers every voxel."""
    return _counts(pred, ref, spacing_mm).specificity()


def accuracy(pred: np.ndarray, ref: np.ndarray, spacing_mm: SpacingLike = None) -> float:
    """Voxel accuracy (TP + TN) / N."""
    return _counts(pred, ref, spacing_mm).accuracy()


class GlobalDice:
    """LiTS "Dice global": one Dice over a whole dataset, accumulated case by case.

    ``2 * sum(|P∩R|) / sum(|P| + |R|)`` over all cases, so large organs weigh more than small
    ones (unlike the mean of per-case Dice). Like MONAI's ``Cumulative`` metrics: call
    :meth:`update` per case (or :meth:`update_counts` with counts from :func:`evaluate_case`),
    then :meth:`aggregate`; :meth:`reset` starts over. With no foreground in any case the
    result is 1.0 (the both-empty rule); with no case at all it is NaN.

    Example:
        >>> acc = GlobalDice()
        >>> acc.update(np.array([1, 1, 0]), np.array([1, 0, 0]))
        >>> acc.update(np.array([0, 0, 0]), np.array([0, 1, 1]))
        >>> acc.aggregate()  # 2 * 1 / ((2 + 1) + (0 + 2))
        0.4
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every case seen so far."""
        self.intersection = 0
        self.total = 0
        self.n_cases = 0

    def update(self, pred: np.ndarray, ref: np.ndarray) -> None:
        """Add one case's binary masks (same shape)."""
        c = confusion_counts(pred, ref)
        self.update_counts(c.tp, c.n_pred, c.n_ref)

    def update_counts(self, intersection: int, n_pred: int, n_ref: int) -> None:
        """Add one case from its voxel counts ``|P∩R|``, ``|P|``, ``|R|``."""
        if min(intersection, n_pred, n_ref) < 0 or intersection > min(n_pred, n_ref):
            raise ValueError(
                f"inconsistent counts: intersection {intersection}, n_pred {n_pred}, n_ref {n_ref}"
            )
        self.intersection += int(intersection)
        self.total += int(n_pred) + int(n_ref)
        self.n_cases += 1

    def aggregate(self) -> float:
        """The global Dice over every case added so far."""
        if self.n_cases == 0:
            return float("nan")
        return 1.0 if self.total == 0 else 2.0 * self.intersection / self.total

    def __len__(self) -> int:
        return self.n_cases
