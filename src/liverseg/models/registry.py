"""The model registry: one explicit dict of every network and :func:`build_model`.

Each entry is a :class:`~liverseg.models.blocks.SegmentationNet` subclass with the constructor
``(in_channels, out_channels, *, ...)``; its keyword defaults are the model's default
configuration (:func:`default_kwargs`), chosen for sensible sizes (U-Net ~8M parameters, MobileUNet
~2M). Checkpoints store ``(name, kwargs)`` and rebuild the network with :func:`build_model`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from liverseg.errors import ConfigError
from liverseg.models.blocks import SegmentationNet
from liverseg.models.encdec import EncoderDecoder
from liverseg.models.mobileunet import MobileUNet
from liverseg.models.resunet import ResUNet
from liverseg.models.segnet import SegNetVGG16
from liverseg.models.unet import UNet
from liverseg.models.unet_resnet import UNetResNet18, UNetResNet34, UNetResNet50

__all__ = ["MODELS", "build_model", "default_kwargs", "model_class"]

MODELS: dict[str, type[SegmentationNet]] = {
    "unet": UNet,
    "unet_resnet18": UNetResNet18,
    "unet_resnet34": UNetResNet34,
    "unet_resnet50": UNetResNet50,
    "segnet_vgg16": SegNetVGG16,
    "mobileunet": MobileUNet,
    "resunet": ResUNet,
    "encdec": EncoderDecoder,
}


def model_class(name: str) -> type[SegmentationNet]:
    """The class registered as ``name``; :class:`ConfigError` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}.{hint}")
    return MODELS[name]


def default_kwargs(name: str) -> dict[str, Any]:
    """The model's keyword arguments and their defaults, e.g. ``{"features": 32, "depth": 4, ...}``."""
    params = inspect.signature(model_class(name)).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(name: str, in_channels: int, out_channels: int, **kwargs: Any) -> SegmentationNet:
    """Build the network ``name`` taking ``in_channels`` slices and returning ``out_channels`` logits.

    Args:
        name: a key of :data:`MODELS`.
        in_channels: 1, or 2k+1 adjacent slices (2.5D).
        out_channels: number of classes (2 for the liver stage, 3 for liver + tumor).
        **kwargs: the model's keyword arguments (see :func:`default_kwargs`); missing ones take
            their defaults.
    Returns: the model in training mode, on the CPU, float32.
    Raises: ConfigError for an unknown name (listing the valid ones), an unknown keyword (listing
        the model's keywords) or an invalid value.
    """
    cls = model_class(name)
    valid = default_kwargs(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"model {name!r} has no argument(s) {', '.join(unknown)}; valid: "
            f"{', '.join(f'{k}={v!r}' for k, v in valid.items()) or '(none)'}"
        )
    return cls(in_channels, out_channels, **kwargs)


def describe(name: str) -> Mapping[str, Any]:
    """``{"name", "description", "default_kwargs"}`` of a registered model."""
    return {
        "name": name,
        "description": model_class(name).description,
        "default_kwargs": default_kwargs(name),
    }
