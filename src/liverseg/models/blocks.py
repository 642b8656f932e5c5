"""Building blocks shared by the networks of the model zoo, and their common base class.

Every network is a :class:`SegmentationNet`: it takes ``(N, in_channels, H, W)`` float32 slices
(1 slice, or 2k+1 adjacent slices for 2.5D) and returns logits ``(N, out_channels, H, W)`` for any
``H, W``: the input is zero-padded at the bottom/right to a multiple of the network's total
downsampling factor (``stride``) and the logits are cropped back. Zero is the padding value because
the CT window maps air (what surrounds a body) to 0, and unlike reflect padding it works for inputs
smaller than the stride.

The blocks are written with plain ``torch.nn`` rather than ``monai.networks.blocks``: they are a
few lines each, importing MONAI costs ~3 s at CLI start-up, and every op here must stay exportable
to ONNX (opset 17) with dynamic ``H, W`` -- ``nn.MaxUnpool2d`` for instance is not, hence
:func:`max_unpool2d` below.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from liverseg.errors import ConfigError, InputError

__all__ = [
    "ConvBNAct",
    "DepthwiseSeparableConv",
    "DoubleConv",
    "InvertedResidual",
    "PreActResidualUnit",
    "SegmentationNet",
    "UpBlock",
    "channels_at",
    "check_float",
    "check_int",
    "init_weights",
    "make_divisible",
    "max_unpool2d",
    "pad_to_multiple",
]


# ----------------------------------------------------------------------------- argument checks
def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int in ``[minimum, maximum]``, else raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def check_float(name: str, value: Any, low: float, high: float, *, high_inclusive: bool = True) -> float:
    """Return ``float(value)`` if it is a number in ``[low, high]`` (or ``[low, high)``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    ok = low <= value <= high if high_inclusive else low <= value < high
    if not ok:
        raise ConfigError(f"{name} must be in [{low}, {high}{']' if high_inclusive else ')'}, got {value}")
    return float(value)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor`` (never down by more than 10%).

    The MobileNetV2 rule (Sandler et al. 2018), used by the width multipliers.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def init_weights(module: nn.Module, head: nn.Conv2d | None = None) -> None:
    """He (fan-out) initialisation for convolutions, unit/zero batch-norm, small normal for linear.

    ``head``, the final logits conv, gets LeCun (fan-in, linear) scaling instead, so the initial
    logits have about the spread of the features (std ~1) rather than a few units.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    if head is not None:
        nn.init.kaiming_normal_(head.weight, mode="fan_in", nonlinearity="linear")
        if head.bias is not None:
            nn.init.zeros_(head.bias)


# ----------------------------------------------------------------------------- padding, unpooling
def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad ``x`` (N, C, H, W) at the bottom and right so that H and W are multiples of ``multiple``.

    Written with shape arithmetic only (no branching on tensor values), so it traces to ONNX with
    dynamic H and W.
    """
    h, w = x.shape[-2], x.shape[-1]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h))


def max_unpool2d(values: torch.Tensor, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Place ``values`` (N, C, h, w) at ``indices`` in a zero map shaped like ``like`` (N, C, H, W).

    Same result as ``F.max_unpool2d(values, indices, kernel, output_size=like.shape[-2:])`` with the
    per-plane flat indices that ``F.max_pool2d(..., return_indices=True)`` returns, but built from
    ``scatter`` so that it exports to ONNX (torch's exporter cannot export ``max_unpool2d``).
    """
    flat = torch.zeros_like(like).flatten(2)
    return flat.scatter(2, indices.flatten(2), values.flatten(2)).view_as(like)


# ----------------------------------------------------------------------------- blocks
class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation; ``padding = dilation * (kernel - 1) // 2``.

    Shapes: (N, in_ch, H, W) -> (N, out_ch, H / stride, W / stride).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.ReLU6) else act())
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """The U-Net unit: two (3x3 conv -> BN -> ReLU); optional Dropout2d after them."""

    def __init__(self, in_ch: int, out_ch: int, *, mid_ch: int | None = None, dropout: float = 0.0) -> None:
        mid = out_ch if mid_ch is None else mid_ch
        layers: list[nn.Module] = [ConvBNAct(in_ch, mid), ConvBNAct(mid, out_ch)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Decoder stage: x2 upsampling, concatenation with an optional skip, then a :class:`DoubleConv`.

    Args:
        in_ch: channels of the coarse input.
        skip_ch: channels of the skip connection (0: no skip, the plain encoder-decoder).
        out_ch: output channels.
        mode: ``"transpose"`` (learned 2x2 up-convolution, halving the channels, as in Ronneberger
            et al.) or ``"nearest"``/``"bilinear"`` interpolation.
    Shapes: x (N, in_ch, h, w), skip (N, skip_ch, 2h, 2w) -> (N, out_ch, 2h, 2w).
    """

    def __init__(
        self, in_ch: int, skip_ch: int, out_ch: int, *, mode: str = "transpose", dropout: float = 0.0
    ):
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            up_ch = in_ch // 2
            self.up: nn.Module = nn.ConvTranspose2d(in_ch, up_ch, kernel_size=2, stride=2)
        else:
            up_ch = in_ch
            self.up = nn.Upsample(
                scale_factor=2.0, mode=mode, **({"align_corners": False} if mode == "bilinear" else {})
            )
        self.conv = DoubleConv(up_ch + skip_ch, out_ch, dropout=dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


class PreActResidualUnit(nn.Module):
    """Residual unit with pre-activation (BN -> ReLU -> 3x3 conv, twice) and a projected shortcut.

    The unit of Zhang et al. 2018 ("Road extraction by deep residual U-Net"). ``first=True`` is
    their first encoder unit, whose first layer is a plain conv (no BN/ReLU on the raw input).
    Shapes: (N, in_ch, H, W) -> (N, out_ch, H / stride, W / stride).
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1, first: bool = False) -> None:
        super().__init__()
        pre: list[nn.Module] = [] if first else [nn.BatchNorm2d(in_ch), nn.ReLU(inplace=False)]
        self.body = nn.Sequential(
            *pre,
            nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class DepthwiseSeparableConv(nn.Sequential):
    """3x3 depthwise conv -> BN -> ReLU6 -> 1x1 pointwise conv -> BN -> ReLU6 (Howard et al. 2017)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            ConvBNAct(in_ch, in_ch, 3, groups=in_ch, act=nn.ReLU6),
            ConvBNAct(in_ch, out_ch, 1, act=nn.ReLU6),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection.

    The identity shortcut is used when ``stride == 1`` and ``in_ch == out_ch`` (Sandler et al. 2018).
    Shapes: (N, in_ch, H, W) -> (N, out_ch, H / stride, W / stride).
    """

    def __init__(self, in_ch: int, out_ch: int, *, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = in_ch * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_ch, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),
            ConvBNAct(hidden, out_ch, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


# ----------------------------------------------------------------------------- base class
class SegmentationNet(nn.Module):
    """Base class of every zoo network: checks the input, pads to ``stride``, crops the logits back.

    Subclasses set ``stride`` (the total downsampling factor; an int attribute set in ``__init__``),
    a one-line class attribute ``description`` and implement :meth:`forward_padded`. Constructors
    have the signature ``(in_channels, out_channels, *, ...)``; their keyword defaults are the
    model's default configuration (see :func:`liverseg.models.registry.default_kwargs`).
    """

    description: ClassVar[str] = ""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, out_channels, H, W)`` for slices ``(N, in_channels, H, W)`` of any H, W >= 1."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise InputError(
                f"{type(self).__name__} expects a float tensor (N, {self.in_channels}, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2], x.shape[-1]
        logits = self.forward_padded(pad_to_multiple(x, self.stride))
        return logits[:, :, :h, :w]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits for an input whose H and W are multiples of ``self.stride``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}"


def channels_at(base: int, depth: int) -> list[int]:
    """Stage widths ``[base, 2 base, 4 base, ..., 2**depth base]`` (``depth + 1`` entries)."""
    return [base * 2**i for i in range(depth + 1)]
