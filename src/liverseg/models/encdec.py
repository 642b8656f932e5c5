"""The plain encoder-decoder: the U-Net without its skip connections (the control experiment)."""

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

__all__ = ["EncoderDecoder"]


class EncoderDecoder(SegmentationNet):
    """Encoder-decoder without skips: ``depth`` x (2 convs, max-pool), bottleneck, ``depth`` x (up-conv, 2 convs).

    Same stages and widths as :class:`~liverseg.models.unet.UNet` with the same arguments, so the two
    differ only by the skip connections: the control experiment for what the skips buy.

    Args:
        in_channels: input channels (1, or 2k+1 adjacent slices).
        out_channels: classes (logits).
        features: channels of the first stage; stage i has ``features * 2**i``.
        depth: number of 2x downsamplings (the input is padded to a multiple of ``2**depth``).
        dropout: Dropout2d probability after the bottleneck (0 disables it).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    description = "plain encoder-decoder, U-Net without skip connections (control)"

    def __init__(
        self, in_channels: int, out_channels: int, *, features: int = 32, depth: int = 4, dropout: float = 0.2
    ) -> None:
        super().__init__(in_channels, out_channels)
        check_int("features", features)
        check_int("depth", depth, 1, 7)
        dropout = check_float("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        self.stride = 2**depth
        ch = channels_at(features, depth)
        stages: list[nn.Module] = [DoubleConv(in_channels, ch[0])]
        for i in range(1, depth + 1):
            stages += [nn.MaxPool2d(2), DoubleConv(ch[i - 1], ch[i], dropout=dropout if i == depth else 0.0)]
        self.encoder = nn.Sequential(*stages)
        self.decoder = nn.ModuleList([UpBlock(ch[i + 1], 0, ch[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(ch[0], out_channels, kernel_size=1)
        init_weights(self, head=self.head)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        for up in self.decoder:
            x = up(x)
        return self.head(x)
