"""ResUNet (Zhang, Liu & Wang 2018, "Road extraction by deep residual U-Net"): residual units throughout."""

from __future__ import annotations

import torch
from torch import nn

from liverseg.errors import ConfigError
from liverseg.models.blocks import (
    PreActResidualUnit,
    SegmentationNet,
    channels_at,
    check_int,
    init_weights,
)

__all__ = ["ResUNet"]


class ResUNet(SegmentationNet):
    """Deep residual U-Net: every stage is a pre-activation residual unit; downsampling by stride 2.

    Encoder: a first unit at full resolution (plain first conv), then ``depth - 1`` units with
    stride 2; a stride-2 bridge unit; decoder: ``depth`` x (x2 upsampling, concatenation with the
    encoder map of that resolution, residual unit); BN-ReLU and a 1x1 conv give the logits. ``features=64,
    depth=3`` is the paper's network (64-128-256, bridge 512).

    Args:
        in_channels: input channels (1, or 2k+1 adjacent slices).
        out_channels: classes (logits).
        features: width of the first stage; stage i has ``features * 2**i``.
        depth: number of 2x downsamplings (the input is padded to a multiple of ``2**depth``).
        upsample: ``"nearest"`` (the paper) or ``"bilinear"``.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    description = "ResUNet (Zhang 2018): pre-activation residual units throughout"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        features: int = 64,
        depth: int = 3,
        upsample: str = "nearest",
    ) -> None:
        super().__init__(in_channels, out_channels)
        check_int("features", features)
        check_int("depth", depth, 1, 7)
        if upsample not in ("nearest", "bilinear"):
            raise ConfigError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        self.stride = 2**depth
        ch = channels_at(features, depth)
        self.encoder = nn.ModuleList(
            [PreActResidualUnit(in_channels, ch[0], first=True)]
            + [PreActResidualUnit(ch[i - 1], ch[i], stride=2) for i in range(1, depth)]
        )
        self.bridge = PreActResidualUnit(ch[depth - 1], ch[depth], stride=2)
        self.up = nn.Upsample(
            scale_factor=2.0, mode=upsample, **({"align_corners": False} if upsample == "bilinear" else {})
        )
        self.decoder = nn.ModuleList(
            [PreActResidualUnit(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(depth))]
        )
        # BN-ReLU after the last (pre-activation) unit, as He et al. 2016 do before their classifier:
        # without it the un-normalised residual sum reaches the logits.
        self.final = nn.Sequential(nn.BatchNorm2d(ch[0]), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(ch[0], out_channels, kernel_size=1)
        init_weights(self, head=self.head)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for unit in self.encoder:
            x = unit(x)
            skips.append(x)
        x = self.bridge(x)
        for unit, skip in zip(self.decoder, reversed(skips), strict=True):
            x = unit(torch.cat([self.up(x), skip], dim=1))
        return self.head(self.final(x))
