"""SegNet (Badrinarayanan et al. 2017): a VGG-16-BN encoder and a decoder that unpools with its indices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from liverseg.models.blocks import ConvBNAct, SegmentationNet, check_int, init_weights, max_unpool2d

__all__ = ["SegNetVGG16"]

# VGG-16 configuration D: convs per stage and widths relative to ``features`` (64 in VGG).
_STAGE_CONVS = (2, 2, 3, 3, 3)
_STAGE_MULT = (1, 2, 4, 8, 8)


class SegNetVGG16(SegmentationNet):
    """SegNet: the 13 conv layers of VGG-16-BN, 5 max-pools whose indices drive the decoder's unpooling.

    Each encoder stage is n x (3x3 conv-BN-ReLU) then a 2x2 max-pool that remembers where the
    maxima were; the mirrored decoder stage places its input back at those positions (a sparse
    map, no learned upsampling) and densifies it with n x (3x3 conv-BN-ReLU), the last of which
    reduces to the next stage's width. A 3x3 conv gives the logits. There are no skip connections
    carrying features: only the pooling indices cross from encoder to decoder. A consequence: where
    two values of a pooling window nearly tie, float round-off (another backend, batch norm folded
    into the convolutions) can pick the other one and move a value by one pixel, so backends agree
    on most but not all logits to 1e-4 (ONNX Runtime vs torch: ~0.2% of logits at 256x256).

    Args:
        in_channels: input channels (1, or 2k+1 adjacent slices).
        out_channels: classes (logits).
        features: width of the first stage (64 in VGG-16; stages have 1, 2, 4, 8, 8 x features).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W); H, W padded to multiples of 32.
    """

    description = "SegNet: VGG-16-BN encoder, decoder unpooling with the max-pool indices"

    def __init__(self, in_channels: int, out_channels: int, *, features: int = 64) -> None:
        super().__init__(in_channels, out_channels)
        check_int("features", features)
        self.stride = 32
        widths = [features * m for m in _STAGE_MULT]
        enc: list[nn.Module] = []
        prev = in_channels
        for n, w in zip(_STAGE_CONVS, widths, strict=True):
            enc.append(nn.Sequential(*[ConvBNAct(prev if i == 0 else w, w) for i in range(n)]))
            prev = w
        self.encoder = nn.ModuleList(enc)
        dec: list[nn.Module] = []
        for s in reversed(range(5)):
            w, n = widths[s], _STAGE_CONVS[s]
            out = widths[s - 1] if s > 0 else features
            dec.append(nn.Sequential(*[ConvBNAct(w, w if i < n - 1 else out) for i in range(n)]))
        self.decoder = nn.ModuleList(dec)
        self.head = nn.Conv2d(features, out_channels, kernel_size=3, padding=1)
        init_weights(self, head=self.head)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        pooled: list[tuple[torch.Tensor, torch.Tensor]] = []  # (pre-pool map, indices) per stage
        for stage in self.encoder:
            x = stage(x)
            y, idx = F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)
            pooled.append((x, idx))
            x = y
        for stage, (like, idx) in zip(self.decoder, reversed(pooled), strict=True):
            x = stage(max_unpool2d(x, idx, like))
        return self.head(x)
