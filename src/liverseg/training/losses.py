"""Segmentation losses on logits ``(N, C, H, W)`` and integer targets ``(N, H, W)``.

``ce`` (torch cross-entropy, optional class weights), ``dice`` / ``dice_ce`` / ``focal`` /
``tversky`` (MONAI, softmax over classes, one-hot targets; ``include_background`` applies to the
Dice-type losses, focal always averages over every class channel) and ``wbce``: the seed project's
weighted binary cross-entropy, where every class channel is a sigmoid against its one-hot target
and positive voxels weigh ``bce_weights[1]`` (0.9), negative ones ``bce_weights[0]`` (0.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from liverseg.errors import ConfigError
from liverseg.extras import require
from liverseg.training.config import LossConfig

__all__ = ["WeightedBCELoss", "build_loss"]


class WeightedBCELoss(nn.Module):
    """Voxel-weighted binary cross-entropy per class channel (the seed's 0.9/0.1 weighting).

    ``loss = mean over voxels and channels of -(w_pos * y * log s + w_neg * (1 - y) * log(1 - s))``
    with ``s = sigmoid(logit)`` and ``y`` the one-hot target; the background channel is used only
    when ``include_background``.
    """

    def __init__(
        self, neg_weight: float = 0.1, pos_weight: float = 0.9, include_background: bool = False
    ) -> None:
        super().__init__()
        self.neg_weight, self.pos_weight, self.include_background = (
            float(neg_weight),
            float(pos_weight),
            include_background,
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target.long(), logits.shape[1]).movedim(-1, 1).to(logits.dtype)
        if not self.include_background and logits.shape[1] > 1:
            logits, onehot = logits[:, 1:], onehot[:, 1:]
        weight = onehot * self.pos_weight + (1.0 - onehot) * self.neg_weight
        return F.binary_cross_entropy_with_logits(logits, onehot, weight=weight)


class _WithChannelTarget(nn.Module):
    """Adapts MONAI losses (targets ``(N, 1, H, W)``) to integer targets ``(N, H, W)``."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target.long().unsqueeze(1))


def build_loss(cfg: LossConfig, num_classes: int) -> nn.Module:
    """The loss module of a config: ``loss(logits (N,C,H,W) float, target (N,H,W) int) -> scalar``."""
    weights = None
    if cfg.class_weights is not None:
        if len(cfg.class_weights) != num_classes:
            raise ConfigError(
                f"loss.class_weights: expected {num_classes} weights (one per class), got {list(cfg.class_weights)}"
            )
        weights = torch.tensor(cfg.class_weights, dtype=torch.float32)
    if cfg.name == "ce":
        return nn.CrossEntropyLoss(weight=weights)
    if cfg.name == "wbce":
        return WeightedBCELoss(cfg.bce_weights[0], cfg.bce_weights[1], cfg.include_background)
    require("train", f"the {cfg.name!r} loss")
    from monai.losses import DiceCELoss, DiceLoss, FocalLoss, TverskyLoss

    incl = cfg.include_background
    if cfg.name == "dice":
        loss: nn.Module = DiceLoss(include_background=incl, to_onehot_y=True, softmax=True, weight=weights)
    elif cfg.name == "dice_ce":
        loss = DiceCELoss(include_background=incl, to_onehot_y=True, softmax=True, weight=weights)
    elif cfg.name == "focal":
        # MONAI drops the background channel *before* its softmax when include_background=False,
        # which makes a 2-class softmax degenerate (p = 1, loss 0): always keep it for focal.
        loss = FocalLoss(
            include_background=True, to_onehot_y=True, use_softmax=True, gamma=cfg.focal_gamma, weight=weights
        )
    elif cfg.name == "tversky":
        loss = TverskyLoss(
            include_background=incl,
            to_onehot_y=True,
            softmax=True,
            alpha=cfg.tversky_alpha,
            beta=cfg.tversky_beta,
        )
    else:  # pragma: no cover - LossConfig's Literal prevents this
        raise ConfigError(f"loss.name: unknown loss {cfg.name!r}")
    return _WithChannelTarget(loss)
