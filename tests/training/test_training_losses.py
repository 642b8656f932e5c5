"""Each loss on a hand-checkable case: 2x2 image, known logits, closed-form value."""

from __future__ import annotations

import math

import pytest
import torch

from liverseg.errors import ConfigError
from liverseg.training.config import LossConfig
from liverseg.training.losses import build_loss

ZERO = torch.zeros(1, 2, 2, 2)  # uniform softmax: p = 0.5 for both classes, sigmoid(0) = 0.5
ALL_LIVER = torch.ones(1, 2, 2, dtype=torch.long)


def _loss(name: str, logits: torch.Tensor, target: torch.Tensor, classes: int = 2, **kw: object) -> float:
    return float(build_loss(LossConfig(name=name, **kw), classes)(logits, target))  # type: ignore[arg-type]


def test_cross_entropy() -> None:
    logits = torch.zeros(1, 2, 1, 1)
    logits[0, 1] = math.log(3.0)  # softmax p(liver) = 3 / 4
    target = torch.ones(1, 1, 1, dtype=torch.long)
    assert _loss("ce", logits, target) == pytest.approx(-math.log(0.75), rel=1e-5)
    # class weights: weighted mean over voxels, -(w_t log p_t) / sum w_t -> the same for one voxel
    assert _loss("ce", logits, target, class_weights=(1.0, 5.0)) == pytest.approx(-math.log(0.75), rel=1e-5)


def test_dice_and_dice_ce() -> None:
    # liver channel: p = 0.5 on 4 voxels, all reference -> Dice = 2*2 / (2 + 4) = 2/3
    assert _loss("dice", ZERO, ALL_LIVER) == pytest.approx(1 / 3, abs=1e-4)
    assert _loss("dice_ce", ZERO, ALL_LIVER) == pytest.approx(1 / 3 + math.log(2), abs=1e-4)
    confident = torch.zeros(1, 2, 2, 2)
    confident[:, 1] = 20.0
    assert _loss("dice", confident, ALL_LIVER) == pytest.approx(0.0, abs=1e-4)


def test_weighted_bce_seed_weighting() -> None:
    # liver channel only (background excluded), sigmoid(0) = 0.5: positive voxel 0.9 ln2, negative 0.1 ln2
    target = torch.tensor([[[1, 1], [0, 0]]])
    expected = (2 * 0.9 * math.log(2) + 2 * 0.1 * math.log(2)) / 4
    assert _loss("wbce", ZERO, target) == pytest.approx(expected, rel=1e-5)
    assert _loss("wbce", ZERO, target, bce_weights=(0.5, 0.5)) == pytest.approx(0.5 * math.log(2), rel=1e-5)


def test_focal() -> None:
    # every voxel: p_true = 0.5 -> (1 - 0.5)^2 * ln 2, averaged over the 2 class channels
    assert _loss("focal", ZERO, ALL_LIVER) == pytest.approx(0.25 * math.log(2) / 2, rel=1e-4)
    assert _loss("focal", ZERO, ALL_LIVER, focal_gamma=0.0) == pytest.approx(math.log(2) / 2, rel=1e-4)


def test_tversky() -> None:
    # TP = 2, FP = 0, FN = 2 -> TI = 2 / (2 + 0.3*0 + 0.7*2)
    assert _loss("tversky", ZERO, ALL_LIVER) == pytest.approx(1 - 2 / 3.4, abs=1e-4)
    assert _loss("tversky", ZERO, ALL_LIVER, tversky_alpha=0.5, tversky_beta=0.5) == pytest.approx(
        1 / 3, abs=1e-4
    )


def test_three_classes_and_gradients() -> None:
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    for name in ("ce", "dice", "dice_ce", "wbce", "focal", "tversky"):
        loss = build_loss(LossConfig(name=name), 3)(logits, target)  # type: ignore[arg-type]
        (grad,) = torch.autograd.grad(loss, logits)
        assert loss.ndim == 0 and torch.isfinite(loss) and grad.abs().sum() > 0, name


def test_class_weights_length_checked() -> None:
    with pytest.raises(ConfigError, match=r"loss\.class_weights"):
        build_loss(LossConfig(name="ce", class_weights=(1.0, 2.0)), 3)
