"""A torchvision-free ResNet encoder (He et al. 2016) for the U-Net-ResNet family.

Written here because torchvision is not a dependency of the project; the layer layout follows
torchvision's ResNet v1.5 (the stride of a bottleneck sits on its 3x3 conv) so the parameter
counts match the familiar ones (ResNet-18/34/50 features: 11.2M/21.3M/23.5M at 3 input channels).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from liverseg.models.blocks import ConvBNAct, init_weights

__all__ = ["RESNET_LAYOUTS", "BasicBlock", "Bottleneck", "ResNetEncoder"]


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projected) shortcut; ``expansion = 1``."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.body = nn.Sequential(
            ConvBNAct(in_ch, width, 3, stride=stride),
            ConvBNAct(width, out_ch, 3, act=None),
        )
        self.shortcut = _projection(in_ch, out_ch, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand (x4), with a shortcut; ``expansion = 4``."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.body = nn.Sequential(
            ConvBNAct(in_ch, width, 1),
            ConvBNAct(width, width, 3, stride=stride),
            ConvBNAct(width, out_ch, 1, act=None),
        )
        self.shortcut = _projection(in_ch, out_ch, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _projection(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return ConvBNAct(in_ch, out_ch, 1, stride=stride, act=None)


RESNET_LAYOUTS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNetEncoder(nn.Module):
    """ResNet feature extractor returning the five feature maps a U-Net decoder needs.

    The stem (7x7 conv, stride 2) takes ``in_channels`` directly, so 2.5D slabs of 2k+1 slices need
    no adapter. The last batch norm of every residual branch starts at zero (Goyal et al. 2017), so
    each block starts as the identity.

    Args:
        in_channels: input channels.
        layout: ``"resnet18"``, ``"resnet34"`` or ``"resnet50"``.
        width: channels of the stem and of the first stage (64 in the paper).
    Output (for input (N, C, H, W), H and W multiples of 32): a list of 5 tensors at strides
    2, 4, 8, 16, 32 with :attr:`channels` channels.
    """

    def __init__(
        self, in_channels: int, layout: Literal["resnet18", "resnet34", "resnet50"], *, width: int = 64
    ) -> None:
        super().__init__()
        block, layers = RESNET_LAYOUTS[layout]
        self.stem = ConvBNAct(in_channels, width, 7, stride=2)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages: list[nn.Module] = []
        in_ch = width
        for i, n_blocks in enumerate(layers):
            stage_width = width * 2**i
            blocks: list[nn.Module] = []
            for j in range(n_blocks):
                blocks.append(block(in_ch, stage_width, stride=2 if (j == 0 and i > 0) else 1))
                in_ch = stage_width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels: tuple[int, ...] = (width, *(width * 2**i * block.expansion for i in range(4)))
        init_weights(self)
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.body[-1][1].weight)  # the BN of the last ConvBNAct

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = [x]
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
