"""Run-time set-up of a training process: device, mixed precision, seeding and RNG snapshots."""

from __future__ import annotations

import platform
import random
from typing import Any

import numpy as np
import torch

from liverseg.errors import ConfigError
from liverseg.training.config import TrainLoopConfig

__all__ = ["amp_dtype", "get_rng_state", "hardware", "resolve_device", "seed_everything", "set_rng_state"]


def resolve_device(cfg: TrainLoopConfig, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else CPU. ``cuda`` without a GPU is a :class:`ConfigError`."""
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA GPU is available (use auto or cpu)")
    return torch.device("cuda", local_rank)


def amp_dtype(cfg: TrainLoopConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` = bf16 where supported on CUDA, else fp16; None on CPU or ``off``."""
    if device.type != "cuda" or cfg.amp == "off":
        return None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def worker_init(worker_id: int) -> None:
    """DataLoader worker seeding (samples carry their own generators; this covers stray global use)."""
    seed = torch.initial_seed() % (2**32)
    random.seed(seed + worker_id)
    np.random.seed((seed + worker_id) % (2**32))


def get_rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as checkpoint-safe values (lists, tensors)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [list(v) if isinstance(v, tuple) else v for v in random.getstate()],
        "numpy": [
            np_state[0],
            np_state[1].tolist(),
            *[int(v) if isinstance(v, int | np.integer) else float(v) for v in np_state[2:]],
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`get_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32), *npst[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def hardware(device: torch.device, world_size: int = 1) -> dict[str, Any]:
    """Where training ran: device name, count, torch version, host CPU."""
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (platform.processor() or platform.machine())
    )
    return {
        "device": str(device.type),
        "device_name": name,
        "world_size": int(world_size),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": torch.get_num_threads(),
    }
