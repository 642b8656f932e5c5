"""Size and cost of the zoo's networks: parameter counts and FLOPs per slice."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from liverseg.models.blocks import check_int
from liverseg.models.registry import build_model, default_kwargs

__all__ = ["count_flops", "count_parameters", "model_info"]


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape`` (e.g. ``(1, C, H, W)``).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions, transposed convolutions
    and matrix products, 2 FLOPs per multiply-accumulate; normalisation, activations, pooling and
    interpolation are not counted (the usual convention). The pass runs on the model's device in
    eval mode under ``torch.no_grad`` (the model's training flag is restored); a model on the
    ``meta`` device is counted without computing anything.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_info(
    name: str, in_channels: int = 5, size: int = 256, *, out_channels: int = 3, **kwargs: Any
) -> dict[str, Any]:
    """Parameters and GFLOPs per ``size`` x ``size`` slice of the registered model ``name``.

    The network is built on the ``meta`` device, so no memory is allocated and nothing is computed:
    cheap even for the largest models.

    Returns: ``{"name", "params" (int), "gflops" (float, FLOPs / 1e9 for one slice, 2 per MAC),
    "in_channels", "out_channels", "size", "kwargs" (the resolved keyword arguments)}``.
    """
    check_int("size", size)
    with torch.device("meta"):
        model = build_model(name, in_channels, out_channels, **kwargs)
    resolved = {**default_kwargs(name), **kwargs}
    return {
        "name": name,
        "params": count_parameters(model),
        "gflops": count_flops(model, (1, in_channels, size, size)) / 1e9,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "size": size,
        "kwargs": resolved,
    }
