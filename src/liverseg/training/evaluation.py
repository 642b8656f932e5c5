"""Validation by whole volume: predict every slice, stack, score each case, average over cases.

Dice is computed per volume (never per slice) with :func:`liverseg.metrics.dice` (liver = label
>= 1, tumor = label 2, the package's empty-mask policy), then averaged over the validation cases.
The tumor-stage volume is the cached liver box cropped to the spec margin, as inference sees it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from liverseg.metrics import dice
from liverseg.preprocessing import label_bbox
from liverseg.training.cache import CachedCase
from liverseg.training.slabs import StageSpec, make_slab

__all__ = ["monitor_key", "predict_probabilities", "score_case", "validate", "validation_region"]


def autocast(device: torch.device, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for CUDA with ``amp_dtype`` (None: full precision)."""
    if amp_dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=amp_dtype)


@torch.no_grad()
def predict_probabilities(
    model: nn.Module,
    array_hu: np.ndarray,
    spec: StageSpec,
    *,
    device: torch.device,
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> np.ndarray:
    """Softmax probabilities ``(C, z, y, x)`` float32 of every slice of ``array_hu`` ``(z, y, x)``."""
    was_training, benchmark = model.training, torch.backends.cudnn.benchmark
    model.eval()
    # every validation volume has its own in-plane shape: cuDNN autotuning each one costs more than it saves
    torch.backends.cudnn.benchmark = False
    out = np.empty((spec.out_channels, *array_hu.shape), dtype=np.float32)
    k = spec.context_slices
    nz = array_hu.shape[0]
    try:
        for z0 in range(0, nz, batch_size):
            z1 = min(nz, z0 + batch_size)
            a0, a1 = max(0, z0 - k), min(nz, z1 + k)
            slab = make_slab(array_hu[a0:a1], spec)[z0 - a0 : z1 - a0]
            x = torch.from_numpy(slab).to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                logits = model(x)
            probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
            out[:, z0:z1] = probs.transpose(1, 0, 2, 3)
    finally:
        model.train(was_training)
        torch.backends.cudnn.benchmark = benchmark
    return out


def validation_region(case: CachedCase, spec: StageSpec) -> tuple[slice, slice, slice]:
    """Whole cached volume, or for the tumor stage the liver box plus the spec margin."""
    if spec.stage != "tumor" or case.liver_box is None:
        return tuple(slice(0, n) for n in case.label.shape)  # type: ignore[return-value]

    return label_bbox(case.label >= 1, case.spacing_zyx, spec.crop_margin_mm)


def score_case(pred: np.ndarray, ref: np.ndarray, spec: StageSpec) -> dict[str, float]:
    """Per-volume Dice of liver (>= 1) and, with three classes, tumor (== 2)."""

    out = {"dice_liver": float(dice(pred >= 1, ref >= 1))}
    if spec.out_channels >= 3:
        out["dice_tumor"] = float(dice(pred == 2, ref == 2))
    return out


def monitor_key(monitor: str, spec: StageSpec) -> str:
    """Resolve ``train.monitor: auto``: liver Dice for 2 classes, mean of liver and tumor else."""
    if monitor != "auto":
        return monitor
    return "dice_liver" if spec.out_channels < 3 else "dice_mean"


def validate(
    model: nn.Module,
    cases: Sequence[CachedCase],
    spec: StageSpec,
    *,
    device: torch.device,
    batch_size: int = 16,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, Any]:
    """Per-case and mean Dice over ``cases``.

    Returns:
        ``{"per_case": {case_id: {"dice_liver", "dice_tumor"?}}, "dice_liver": mean,
        "dice_tumor": mean (3 classes), "dice_mean": mean of the class means}``; means are NaN
        without cases.
    """
    per_case: dict[str, dict[str, float]] = {}
    for case in cases:
        region = validation_region(case, spec)
        probs = predict_probabilities(
            model,
            case.image[region],
            spec,
            device=device,
            batch_size=batch_size,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
        )
        pred = probs.argmax(axis=0).astype(np.uint8)
        per_case[case.id] = score_case(pred, case.label[region], spec)
    return summarize(per_case)


def summarize(per_case: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Means over cases of each per-case score plus ``dice_mean`` (mean of the class means)."""
    out: dict[str, Any] = {"per_case": per_case}
    keys = sorted({k for v in per_case.values() for k in v})
    for key in keys or ["dice_liver"]:
        vals = [v[key] for v in per_case.values() if key in v]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    class_keys = [k for k in keys if k in ("dice_liver", "dice_tumor")]
    out["dice_mean"] = float(np.mean([out[k] for k in class_keys])) if class_keys else float("nan")
    return out
