"""Optimisers (Adam, AdamW, SGD with Nesterov momentum) and learning-rate schedules.

Cosine and poly decay are per optimiser step (``LambdaLR`` over ``epochs * steps_per_epoch``
steps), with an optional linear warm-up; ``plateau`` halves the rate when the monitored
validation Dice stops improving (``ReduceLROnPlateau``, mode ``max``) after the same warm-up.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from liverseg.training.config import OptimConfig, ScheduleConfig

__all__ = ["LRSchedule", "build_optimizer"]


def build_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser of a config over ``params`` (a module's parameters)."""
    if isinstance(params, nn.Module):
        params = params.parameters()
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


class LRSchedule:
    """Per-step warm-up + decay, and per-validation plateau reduction; checkpointable."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: ScheduleConfig,
        *,
        base_lr: float,
        total_steps: int,
        steps_per_epoch: int,
    ) -> None:
        self.cfg = cfg
        self.warmup = max(0, round(cfg.warmup_epochs * steps_per_epoch))
        self.total = max(1, int(total_steps))
        floor = min(1.0, cfg.min_lr / base_lr) if base_lr > 0 else 0.0

        def factor(step: int) -> float:
            warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
            if cfg.name in ("constant", "plateau"):
                return warm
            t = min(1.0, max(0.0, (step - self.warmup) / max(1, self.total - self.warmup)))
            # with a wall-clock budget the decay also follows the spent fraction of the budget,
            # so a run stopped by its budget still ends at a low learning rate
            t = max(t, min(1.0, self.time_fraction))
            if cfg.name == "cosine":
                decay = 0.5 * (1.0 + math.cos(math.pi * t))
            else:  # poly
                decay = (1.0 - t) ** cfg.poly_power
            return warm * (floor + (1.0 - floor) * decay)

        self.step_count = 0
        self.time_fraction = 0.0  # set by the trainer when train.budget_minutes is set
        self.lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.plateau = None
        if cfg.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="max",
                factor=cfg.plateau_factor,
                patience=cfg.plateau_patience,
                min_lr=cfg.min_lr,
            )

    def step(self) -> None:
        """After each optimiser step (plateau: only during warm-up, so reductions are kept)."""
        self.step_count += 1
        if self.plateau is None or self.step_count <= self.warmup:
            self.lambda_lr.step()

    def validated(self, metric: float) -> None:
        """After each validation with the monitored metric (higher is better)."""
        if self.plateau is not None and self.step_count >= self.warmup:
            self.plateau.step(metric)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step_count": self.step_count,
            "lambda_lr": self.lambda_lr.state_dict(),
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.lambda_lr.load_state_dict(state["lambda_lr"])
        if self.plateau is not None and state.get("plateau") is not None:
            self.plateau.load_state_dict(state["plateau"])
