"""The model zoo: 2D/2.5D segmentation networks returning logits, their registry and tools.

Every network maps ``(N, in_channels, H, W)`` float32 slices to logits ``(N, out_channels, H, W)``
for any H, W (see :class:`~liverseg.models.blocks.SegmentationNet`). Build them by name::

    from liverseg.models import build_model
    net = build_model("mobileunet", in_channels=5, out_channels=3, width_mult=0.75)
"""

from __future__ import annotations

from liverseg.models.blocks import SegmentationNet
from liverseg.models.export import export_onnx
from liverseg.models.info import count_flops, count_parameters, model_info
from liverseg.models.registry import MODELS, build_model, default_kwargs, model_class

__all__ = [
    "MODELS",
    "SegmentationNet",
    "build_model",
    "count_flops",
    "count_parameters",
    "default_kwargs",
    "export_onnx",
    "model_class",
    "model_info",
]
