"""Checkpoints: weights + everything needed to reproduce a stage's input and provenance.

A checkpoint is ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    format "liverseg-checkpoint", format_version 1, state_dict (fp32 or fp16 tensors),
    weights_dtype, spec (StageSpec dict), model_name, model_kwargs, config (resolved),
    dataset_fingerprint, metrics, code_version, created (UTC ISO), ...extra (epoch, timings,
    hardware; ``last.pt`` also holds the optimiser/scheduler/RNG state for ``--resume``).

:func:`load_checkpoint` rebuilds the network with ``liverseg.models.build_model`` and returns it in
eval mode with its :class:`StageSpec`; inference uses exactly this and :func:`make_slab`.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from liverseg.errors import InputError
from liverseg.models import build_model
from liverseg.training.slabs import StageSpec, make_slab
from liverseg.utils import atomic_path, code_version

__all__ = [
    "FORMAT",
    "LoadedModel",
    "StageSpec",
    "load_checkpoint",
    "load_checkpoint_dict",
    "make_slab",
    "save_checkpoint",
    "unwrap_model",
]

log = logging.getLogger(__name__)
FORMAT = "liverseg-checkpoint"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode) with its stage spec and metadata."""

    model: nn.Module
    spec: StageSpec
    meta: dict[str, Any]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _state_dict(model: nn.Module, half: bool) -> dict[str, torch.Tensor]:
    sd = unwrap_model(model).state_dict()
    out = {}
    for name, t in sd.items():
        t = t.detach().to("cpu")
        if half and t.is_floating_point():
            t = t.half()
        out[name] = t.contiguous().clone()
    return out


def _plain(obj: Any) -> Any:
    """Checkpoint-safe copy of metadata: builtin scalars, lists, dicts and tensors only."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj)
    if isinstance(obj, str | Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint: {obj!r}")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    spec: StageSpec,
    model_name: str,
    model_kwargs: dict[str, Any],
    config: dict[str, Any],
    dataset_fingerprint: str | None,
    metrics: dict[str, Any],
    half_weights: bool = False,
    **extra: Any,
) -> Path:
    """Write a checkpoint atomically; ``half_weights`` stores floating tensors as fp16 (half size).

    ``extra`` entries (epoch, train_seconds, hardware, training state...) are stored at top level;
    they must be plain Python values or tensors.
    """
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": _state_dict(model, half_weights),
        "weights_dtype": "float16" if half_weights else "float32",
        "spec": spec.to_dict(),
        "model_name": str(model_name),
        "model_kwargs": _plain(dict(model_kwargs)),
        "config": _plain(config),
        "dataset_fingerprint": dataset_fingerprint,
        "metrics": _plain(dict(metrics)),
        "code_version": code_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **{k: v if k == "training_state" else _plain(v) for k, v in extra.items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint_dict(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (CPU tensors), validated to be a liverseg checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found (expected a .pt file written by liverseg train)", path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise InputError(f"cannot read the checkpoint ({type(exc).__name__}: {exc})", path) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"not a liverseg checkpoint (expected format {FORMAT!r}, got {got!r})", path)
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"checkpoint format version {data['format_version']} is newer than this liverseg "
            f"understands ({FORMAT_VERSION}); upgrade liverseg",
            path,
        )
    return data


def build_network(model_name: str, spec: StageSpec, model_kwargs: dict[str, Any]) -> nn.Module:
    """``liverseg.models.build_model(name, 2k+1, len(classes), **kwargs)``."""

    return build_model(model_name, spec.in_channels, spec.out_channels, **dict(model_kwargs))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network of a checkpoint (fp32 weights, eval mode) on ``device``.

    Returns:
        :class:`LoadedModel` with ``.model``, ``.spec`` and ``.meta`` (everything in the file
        except weights and training state).
    """
    data = load_checkpoint_dict(path)
    spec = StageSpec.from_dict(data["spec"])
    model = build_network(data["model_name"], spec, data.get("model_kwargs", {}))
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in data["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(
            f"checkpoint weights do not fit network {data['model_name']!r} with "
            f"{spec.in_channels} input and {spec.out_channels} output channels: {exc}",
            path,
        ) from exc
    model.to(device).eval()
    meta = {k: v for k, v in data.items() if k not in ("state_dict", "training_state")}
    return LoadedModel(model=model, spec=spec, meta=meta)
