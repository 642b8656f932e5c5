"""U-Net decoders on ResNet-18/34/50 encoders (the "U-Net with a ResNet backbone" of the literature)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from torch import nn

from liverseg.errors import ConfigError
from liverseg.models.blocks import SegmentationNet, UpBlock, check_float, check_int, init_weights
from liverseg.models.resnet import ResNetEncoder

__all__ = ["UNetResNet", "UNetResNet18", "UNetResNet34", "UNetResNet50"]


class UNetResNet(SegmentationNet):
    """ResNet encoder (stride 32) + U-Net decoder of five nearest-upsampling stages.

    Decoder stage i upsamples x2, concatenates the encoder map of the same stride (strides 16, 8,
    4, 2; none at the last stage, which reaches full resolution) and applies two 3x3 conv-BN-ReLU;
    a 3x3 conv gives the logits. This is the layout of segmentation_models_pytorch's ``Unet``.

    Args:
        in_channels: input channels (1, or 2k+1 adjacent slices).
        out_channels: classes (logits).
        layout: the encoder (set by the subclasses).
        width: encoder base width (64 is the standard ResNet).
        decoder_channels: five decoder widths, coarse to fine.
        dropout: Dropout2d probability on the deepest encoder map (0 disables it).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    layout: ClassVar[Literal["resnet18", "resnet34", "resnet50"]] = "resnet34"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: int = 64,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels, out_channels)
        check_int("width", width)
        dropout = check_float("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        dec = tuple(decoder_channels)
        if len(dec) != 5:
            raise ConfigError(
                f"decoder_channels must list 5 widths (coarse to fine), got {decoder_channels!r}"
            )
        for c in dec:
            check_int("decoder_channels[i]", c)
        self.stride = 32
        self.encoder = ResNetEncoder(in_channels, self.layout, width=width)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        enc = self.encoder.channels  # strides 2, 4, 8, 16, 32
        skips = (enc[3], enc[2], enc[1], enc[0], 0)
        ins = (enc[4], *dec[:-1])
        self.decoder = nn.ModuleList(
            [UpBlock(i, s, o, mode="nearest") for i, s, o in zip(ins, skips, dec, strict=True)]
        )
        self.head = nn.Conv2d(dec[-1], out_channels, kernel_size=3, padding=1)
        init_weights(self.decoder)
        init_weights(self.head, head=self.head)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        x = self.dropout(feats[-1])
        skips: list[torch.Tensor | None] = [feats[3], feats[2], feats[1], feats[0], None]
        for up, skip in zip(self.decoder, skips, strict=True):
            x = up(x, skip)
        return self.head(x)


class UNetResNet18(UNetResNet):
    __doc__ = "U-Net decoder on a ResNet-18 encoder (basic blocks 2-2-2-2).\n\n" + (UNetResNet.__doc__ or "")
    layout = "resnet18"
    description = "U-Net decoder on a ResNet-18 encoder (basic blocks)"


class UNetResNet34(UNetResNet):
    __doc__ = "U-Net decoder on a ResNet-34 encoder (basic blocks 3-4-6-3).\n\n" + (UNetResNet.__doc__ or "")
    layout = "resnet34"
    description = "U-Net decoder on a ResNet-34 encoder (basic blocks)"


class UNetResNet50(UNetResNet):
    __doc__ = "U-Net decoder on a ResNet-50 encoder (bottleneck blocks 3-4-6-3).\n\n" + (
        UNetResNet.__doc__ or ""
    )
    layout = "resnet50"
    description = "U-Net decoder on a ResNet-50 encoder (bottleneck blocks)"
