"""The classic U-Net (Ronneberger et al. 2015) with batch norm and dropout."""

from __future__ import annotations

import torch
from torch import nn

from liverseg.models.blocks import (
    DoubleConv,
    SegmentationNet,
    UpBlock,
    channels_at,
    check_float,
    check_int,
    init_weights,
)

__all__ = ["UNet"]


class UNet(SegmentationNet):
    """U-Net: ``depth`` x (2 convs, 2x2 max-pool), a bottleneck, ``depth`` x (2x2 up-conv, concat, 2 convs).

    Every 3x3 conv is followed by batch norm and ReLU; ``Dropout2d(dropout)`` follows the deepest
    encoder stage and the bottleneck (as in the original's "drop-out layers at the end of the
    contracting path"). ``features=64, depth=4`` is the original (31M parameters); the default
    ``features=32`` (7.8M) trains on CPU.

    Args:
        in_channels: input channels (1, or 2k+1 adjacent slices).
        out_channels: classes (logits).
        features: channels of the first stage; stage i has ``features * 2**i``.
        depth: number of 2x downsamplings (the input is padded to a multiple of ``2**depth``).
        dropout: Dropout2d probability at the end of the contracting path (0 disables it).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    description = "classic U-Net (Ronneberger 2015) with batch norm and dropout"

    def __init__(
        self, in_channels: int, out_channels: int, *, features: int = 32, depth: int = 4, dropout: float = 0.2
    ) -> None:
        super().__init__(in_channels, out_channels)
        check_int("features", features)
        check_int("depth", depth, 1, 7)
        dropout = check_float("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        self.stride = 2**depth
        ch = channels_at(features, depth)
        self.encoder = nn.ModuleList(
            [DoubleConv(in_channels, ch[0])]
            + [
                DoubleConv(ch[i - 1], ch[i], dropout=dropout if i == depth - 1 else 0.0)
                for i in range(1, depth)
            ]
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(ch[depth - 1], ch[depth], dropout=dropout)
        self.decoder = nn.ModuleList([UpBlock(ch[i + 1], ch[i], ch[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(ch[0], out_channels, kernel_size=1)
        init_weights(self, head=self.head)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.bottleneck(self.pool(x))
        for up, skip in zip(self.decoder, reversed(skips), strict=True):
            x = up(x, skip)
        return self.head(x)
