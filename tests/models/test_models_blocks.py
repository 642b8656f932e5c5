"""Building blocks and encoders: unpooling, padding, channel rounding, reference parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liverseg.models import build_model, count_parameters
from liverseg.models.blocks import InvertedResidual, make_divisible, max_unpool2d, pad_to_multiple
from liverseg.models.resnet import ResNetEncoder


def test_max_unpool2d_equals_torch_max_unpool():
    x = torch.randn(2, 3, 10, 14)
    values, indices = F.max_pool2d(x, 2, return_indices=True)
    expected = F.max_unpool2d(values, indices, 2, output_size=x.shape[-2:])
    got = max_unpool2d(values, indices, x)
    assert torch.equal(got, expected)
    assert got.shape == x.shape
    assert int((got != 0).sum()) == values.numel()  # one maximum per window, the rest zero


@pytest.mark.parametrize(
    ("h", "w", "multiple", "expected"),
    [(65, 47, 32, (96, 64)), (64, 64, 32, (64, 64)), (1, 1, 16, (16, 16)), (7, 9, 1, (7, 9))],
)
def test_pad_to_multiple_pads_bottom_right_with_zeros(h, w, multiple, expected):
    x = torch.rand(1, 2, h, w) + 1.0
    padded = pad_to_multiple(x, multiple)
    assert padded.shape[-2:] == expected
    assert torch.equal(padded[..., :h, :w], x)
    assert padded[..., h:, :].abs().sum() == 0 and padded[..., :, w:].abs().sum() == 0


def test_make_divisible_follows_mobilenet_v2():
    assert make_divisible(24 * 1.0) == 24
    assert make_divisible(16 * 0.35) == 8
    assert make_divisible(32 * 0.35) == 16  # 8 would lose more than 10%
    assert make_divisible(320 * 1.4) == 448
    assert make_divisible(3) == 8


@pytest.mark.parametrize(
    ("layout", "torchvision_features"),
    # torchvision resnet18/34/50 parameter counts without the final fully connected layer
    [
        ("resnet18", 11_689_512 - 513_000),
        ("resnet34", 21_797_672 - 513_000),
        ("resnet50", 25_557_032 - 2_049_000),
    ],
)
def test_resnet_encoder_matches_the_reference_architecture(layout, torchvision_features):
    with torch.device("meta"):
        encoder = ResNetEncoder(3, layout)
    assert count_parameters(encoder) == torchvision_features


@pytest.mark.parametrize("layout", ["resnet18", "resnet50"])
def test_resnet_encoder_feature_strides_and_channels(layout):
    encoder = ResNetEncoder(5, layout, width=4).eval()
    with torch.no_grad():
        feats = encoder(torch.rand(1, 5, 64, 96))
    assert [f.shape[-2:] for f in feats] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]
    assert tuple(f.shape[1] for f in feats) == encoder.channels


def test_segnet_encoder_is_vgg16_bn():
    with torch.device("meta"):
        model = build_model("segnet_vgg16", 3, 2)
    # torchvision vgg16_bn features: 14,723,136 parameters, of which 4,224 conv biases we drop
    # (each conv is followed by batch norm, which makes a bias redundant).
    assert count_parameters(model.encoder) == 14_723_136 - 4_224
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 13 and all(c.kernel_size == (3, 3) for c in convs)


def test_mobileunet_encoder_is_mobilenet_v2():
    with torch.device("meta"):
        model = build_model("mobileunet", 3, 2)
    # torchvision mobilenet_v2: 3,504,872 parameters; minus the classifier (1,281,000) and the last
    # 1x1 conv to 1280 channels with its batch norm (412,160), which a segmentation encoder drops.
    encoder = count_parameters(model.stem) + count_parameters(model.encoder)
    assert encoder == 3_504_872 - 1_281_000 - 412_160
    assert sum(isinstance(m, InvertedResidual) for m in model.encoder.modules()) == 17


def test_mobileunet_width_multiplier_scales_the_model():
    sizes = []
    for wm in (0.35, 0.5, 1.0, 1.4):
        with torch.device("meta"):
            sizes.append(count_parameters(build_model("mobileunet", 5, 3, width_mult=wm)))
    assert sizes == sorted(sizes) and sizes[0] < 0.3 * sizes[2]


def test_unet_depth_sets_the_stride_and_the_classic_width_is_31m():
    assert build_model("unet", 1, 2, features=4, depth=2).stride == 4
    with torch.device("meta"):
        classic = build_model("unet", 1, 2, features=64, depth=4)
    assert 31.0e6 < count_parameters(classic) < 31.1e6  # Ronneberger's 31.0M (+ batch norm, - biases)


def test_encdec_has_no_skip_connections():
    model = build_model("encdec", 1, 2, features=4, depth=2).eval()
    unet = build_model("unet", 1, 2, features=4, depth=2)
    # Same stages, but each decoder conv sees only the upsampled path (half the input channels).
    assert model.decoder[0].conv[0][0].in_channels == unet.decoder[0].conv[0][0].in_channels // 2
