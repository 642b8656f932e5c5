"""Fixtures of the model-zoo tests: small configurations and realistic batch-norm statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

# Small widths per model so that forward/backward tests run in a fraction of a second. Every
# registered model must have an entry (checked by test_models_registry.py).
SMALL_KWARGS: dict[str, dict[str, Any]] = {
    "unet": {"features": 4, "depth": 3},
    "unet_resnet18": {"width": 4, "decoder_channels": (16, 8, 8, 4, 4)},
    "unet_resnet34": {"width": 4, "decoder_channels": (16, 8, 8, 4, 4)},
    "unet_resnet50": {"width": 4, "decoder_channels": (16, 8, 8, 4, 4)},
    "segnet_vgg16": {"features": 4},
    "mobileunet": {"width_mult": 0.25},
    "resunet": {"features": 4},
    "encdec": {"features": 4, "depth": 3},
}


@pytest.fixture
def small_kwargs() -> dict[str, dict[str, Any]]:
    """Model name -> keyword arguments of a small instance."""
    return SMALL_KWARGS


def _randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters.

    A freshly built network in eval mode has BN = identity, which hides eval-path bugs (and makes
    the zero-initialised residual branches vanish); this makes the eval graph exercise everything.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
    return model


@pytest.fixture
def randomize_norms() -> Callable[..., nn.Module]:
    """Function ``(model, seed=0) -> model`` setting random BN statistics in place."""
    return _randomize_norms


@pytest.fixture(autouse=True)
def _single_thread():
    """Run the (tiny) model tests on one intra-op thread: faster than two for these sizes and
    kinder to a shared machine. The previous setting is restored for the other stages' tests."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
