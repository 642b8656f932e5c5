"""MobileUNet: a MobileNetV2 encoder with a light depthwise-separable U-Net decoder (the CPU model)."""

from __future__ import annotations

import torch
from torch import nn

from liverseg.models.blocks import (
    ConvBNAct,
    DepthwiseSeparableConv,
    InvertedResidual,
    SegmentationNet,
    check_float,
    init_weights,
    make_divisible,
)

__all__ = ["MobileUNet"]

# MobileNetV2 (Sandler et al. 2018, table 2): (expansion t, channels c, repeats n, stride s).
_MOBILENET_V2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Index (into _MOBILENET_V2) of the last group at each stride 2, 4, 8, 16, 32: the skip taps.
_TAPS = (0, 1, 2, 4, 6)
_DECODER = (96, 32, 24, 16, 16)  # decoder widths at strides 16, 8, 4, 2, 1 (times width_mult)


class MobileUNet(SegmentationNet):
    """MobileNetV2 encoder (inverted residuals, stride 32) + a decoder of depthwise-separable convs.

    Decoder stage i upsamples x2 (bilinear), concatenates the encoder map at that stride (none at
    full resolution) and applies one depthwise-separable conv (3x3 depthwise + 1x1 pointwise, BN,
    ReLU6); a 1x1 conv gives the logits. About 1.9M parameters at ``width_mult=1`` and 0.9 GFLOPs
    per 256x256 slice (5 input slices, 3 classes); ``width_mult`` scales every width (MobileNetV2's rule: multiples of 8).

    Args:
        in_channels: input channels (1, or 2k+1 adjacent slices).
        out_channels: classes (logits).
        width_mult: channel multiplier of encoder and decoder (e.g. 0.35, 0.5, 0.75, 1.0, 1.4).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W); H, W padded to multiples of 32.
    """

    description = "MobileNetV2 encoder + depthwise-separable decoder (fast CPU model)"

    def __init__(self, in_channels: int, out_channels: int, *, width_mult: float = 1.0) -> None:
        super().__init__(in_channels, out_channels)
        width_mult = check_float("width_mult", width_mult, 0.05, 4.0)
        self.stride = 32
        stem_ch = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(in_channels, stem_ch, 3, stride=2, act=nn.ReLU6)
        groups: list[nn.Module] = []
        enc_channels: list[int] = []
        prev = stem_ch
        for t, c, n, s in _MOBILENET_V2:
            out = make_divisible(c * width_mult)
            blocks = [
                InvertedResidual(prev if i == 0 else out, out, stride=s if i == 0 else 1, expand_ratio=t)
                for i in range(n)
            ]
            groups.append(nn.Sequential(*blocks))
            enc_channels.append(out)
            prev = out
        self.encoder = nn.ModuleList(groups)
        taps = [enc_channels[i] for i in _TAPS]  # strides 2, 4, 8, 16, 32
        skips = (taps[3], taps[2], taps[1], taps[0], 0)
        dec = [make_divisible(c * width_mult) for c in _DECODER]
        ins = (taps[4], *dec[:-1])
        self.decoder = nn.ModuleList(
            [DepthwiseSeparableConv(i + s, o) for i, s, o in zip(ins, skips, dec, strict=True)]
        )
        self.up = nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
        self.head = nn.Conv2d(dec[-1], out_channels, kernel_size=1)
        init_weights(self, head=self.head)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        taps: list[torch.Tensor] = []
        for i, group in enumerate(self.encoder):
            x = group(x)
            if i in _TAPS:
                taps.append(x)
        skips: list[torch.Tensor | None] = [taps[3], taps[2], taps[1], taps[0], None]
        for stage, skip in zip(self.decoder, skips, strict=True):
            x = self.up(x)
            if skip is not None:
                x = torch.cat([x, skip], dim=1)
            x = stage(x)
        return self.head(x)
