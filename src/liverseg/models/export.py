"""Export a zoo network to ONNX (opset 17, dynamic batch, height and width) for ONNX Runtime."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from liverseg.errors import OutputError
from liverseg.models.blocks import check_int
from liverseg.utils import atomic_path

__all__ = ["ONNX_INPUT", "ONNX_OPSET", "ONNX_OUTPUT", "export_onnx"]

log = logging.getLogger(__name__)

ONNX_OPSET = 17
ONNX_INPUT = "image"  # (N, in_channels, H, W) float32
ONNX_OUTPUT = "logits"  # (N, out_channels, H, W) float32


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    in_channels: int | None = None,
    example_size: tuple[int, int] = (64, 64),
    opset: int = ONNX_OPSET,
) -> Path:
    """Write ``model`` as an ONNX graph taking ``image`` (N, C, H, W) and returning ``logits``.

    Batch, height and width are dynamic: the graph pads to the network's stride and crops back for
    any H, W, like the torch module. The export traces the model in eval mode on the CPU with an
    ``example_size`` input (its training flag and device are restored afterwards) and writes the
    file atomically.

    Uses torch's TorchScript-based exporter (``dynamo=False``): it writes opset 17 directly and
    needs no extra package, whereas the ``torch.export`` exporter needs ``onnxscript`` and cannot
    down-convert these graphs (``Pad``) to opset 17.

    Args:
        model: a zoo network (or any module mapping (N, C, H, W) to (N, K, H, W)).
        path: output ``.onnx`` file.
        in_channels: C; defaults to ``model.in_channels``.
        example_size: (H, W) of the tracing input; any size works.
        opset: ONNX opset version.
    Returns: ``path``.
    Raises: OutputError if the file cannot be written.
    """
    channels = check_int(
        "in_channels", in_channels if in_channels is not None else getattr(model, "in_channels", 0)
    )
    h, w = (check_int("example_size[0]", example_size[0]), check_int("example_size[1]", example_size[1]))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.cpu().eval()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    try:
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter announces its own deprecation; the choice is deliberate (above).
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(
                model,
                (torch.zeros(2, channels, h, w),),
                str(tmp),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_axes={ONNX_INPUT: dynamic, ONNX_OUTPUT: dynamic},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    except OSError as exc:
        raise OutputError(f"cannot write the ONNX model ({exc})", path) from exc
    finally:
        model.to(device).train(was_training)
    log.info("exported %s to %s (opset %d)", type(model).__name__, path, opset)
    return Path(path)
