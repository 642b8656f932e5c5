"""The registry (names, typos, keyword checks) and the size/cost counters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from liverseg.errors import ConfigError
from liverseg.models import MODELS, build_model, count_flops, count_parameters, default_kwargs, model_info

CONTRACT_NAMES = {
    "unet",
    "unet_resnet18",
    "unet_resnet34",
    "unet_resnet50",
    "segnet_vgg16",
    "mobileunet",
    "resunet",
    "encdec",
}


def test_registry_holds_the_agreed_names_and_every_one_has_a_test_config(small_kwargs):
    assert set(MODELS) == CONTRACT_NAMES
    assert set(small_kwargs) == set(MODELS)
    for name, cls in MODELS.items():
        assert cls.description, name
        assert isinstance(build_model(name, 1, 2, **small_kwargs[name]), cls)


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("unet_resnet43", "unet_resnet34"),
        ("mobilenet", "mobileunet"),
        ("segnet", "segnet_vgg16"),
        ("Unet", "unet"),
    ],
)
def test_typo_lists_valid_names_and_suggests_the_closest(typo, suggestion):
    with pytest.raises(ConfigError) as info:
        build_model(typo, 1, 3)
    message = str(info.value)
    assert f"unknown model {typo!r}" in message
    assert all(name in message for name in MODELS)
    assert f"Did you mean {suggestion!r}?" in message


def test_unknown_keyword_names_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        build_model("unet", 1, 3, feature=16)
    message = str(info.value)
    assert "'unet' has no argument(s) feature" in message
    assert "features=32" in message and "depth=4" in message and "dropout=0.2" in message


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "match"),
    [
        ("unet", (0, 3), {}, "in_channels must be >= 1, got 0"),
        ("unet", (1, 3), {"depth": 0}, r"depth must be in \[1, 7\], got 0"),
        ("unet", (1, 3), {"features": 8.0}, "features must be an integer, got 8.0"),
        ("unet", (1, 3), {"dropout": 1.0}, r"dropout must be in \[0.0, 1.0\)"),
        ("mobileunet", (1, 3), {"width_mult": "wide"}, "width_mult must be a number"),
        ("unet_resnet18", (1, 3), {"decoder_channels": (64, 32)}, "decoder_channels must list 5 widths"),
        ("resunet", (1, 3), {"upsample": "cubic"}, "upsample must be 'nearest' or 'bilinear'"),
        ("segnet_vgg16", (1, True), {}, "out_channels must be an integer"),
    ],
)
def test_invalid_values_are_config_errors(name, args, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, *args, **kwargs)


def test_default_kwargs_are_the_constructor_defaults():
    assert default_kwargs("unet") == {"features": 32, "depth": 4, "dropout": 0.2}
    assert default_kwargs("mobileunet") == {"width_mult": 1.0}
    assert default_kwargs("unet_resnet50")["width"] == 64


def test_flop_counter_matches_hand_count():
    conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    assert count_flops(conv, (1, 2, 8, 8)) == 2 * (2 * 9) * 4 * 64  # 2 x MACs
    up = nn.ConvTranspose2d(4, 2, 2, stride=2, bias=False)
    # every input pixel and channel feeds 2 output channels through 2x2 taps
    assert count_flops(up, (1, 4, 8, 8)) == 2 * (4 * 2 * 4) * 64


def _hook_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Independent count: forward hooks on every (transposed) conv, 2 FLOPs per MAC."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            total += 2 * inputs[0].numel() * (module.out_channels // module.groups) * k
        else:
            total += 2 * output.numel() * (module.in_channels // module.groups) * k

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", list(MODELS))
def test_model_info_agrees_with_an_independent_count(name, small_kwargs):
    kwargs = small_kwargs[name]
    info = model_info(name, in_channels=3, size=48, out_channels=2, **kwargs)  # padded to the stride
    model = build_model(name, 3, 2, **kwargs)
    assert info["params"] == count_parameters(model) == sum(p.numel() for p in model.parameters())
    assert info["gflops"] * 1e9 == pytest.approx(_hook_flops(model, torch.rand(1, 3, 48, 48)), rel=1e-12)
    assert info["kwargs"] == {**default_kwargs(name), **kwargs}
    # Convolution cost is proportional to the area at sizes that need no padding.
    small = model_info(name, in_channels=3, size=64, out_channels=2, **kwargs)["gflops"]
    large = model_info(name, in_channels=3, size=128, out_channels=2, **kwargs)["gflops"]
    assert large == pytest.approx(4 * small, rel=1e-12)


def test_model_info_defaults_and_errors():
    info = model_info("mobileunet")
    assert (info["in_channels"], info["out_channels"], info["size"]) == (5, 3, 256)
    assert 1e6 < info["params"] < 3e6 and 0.1 < info["gflops"] < 5
    with pytest.raises(ConfigError, match="size must be >= 1"):
        model_info("mobileunet", size=0)
    with pytest.raises(ConfigError, match="unknown model"):
        model_info("mobile_unet")
