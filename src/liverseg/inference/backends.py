"""Execution backends for the 2D stage networks: PyTorch, or ONNX Runtime on CPU.

A backend maps a float32 batch ``(N, C, H, W)`` to class probabilities ``(N, K, H, W)``.
Inputs of different sizes are fine (the networks pad internally to their stride).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
import torch

from liverseg.errors import LiversegError

log = logging.getLogger(__name__)

__all__ = ["Backend", "OnnxBackend", "TorchBackend", "cpu_threads", "resolve_device", "set_cpu_threads"]

_CPU_THREADS: int | None = None  # None: every core of the machine


def set_cpu_threads(n: int | None) -> None:
    """Use ``n`` CPU threads per backend built from now on (None: all cores).

    A cohort worker that was given 2 of a node's 32 cores calls this before loading the model, so
    that several workers on one node do not each start 32 threads. Cached backends keep the
    thread count they were built with.
    """
    global _CPU_THREADS
    if n is not None and n < 1:
        raise LiversegError(f"the number of CPU threads must be >= 1, got {n}")
    _CPU_THREADS = n


def cpu_threads() -> int:
    """CPU threads a new backend uses: :func:`set_cpu_threads`'s value, else all cores."""
    return _CPU_THREADS or max(1, os.cpu_count() or 1)


class Backend(Protocol):
    name: str

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(N, K, H, W)`` float32 for a batch ``(N, C, H, W)``."""
        ...


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LiversegError("--device cuda was requested but no CUDA GPU is available (use --device cpu)")
    if device not in ("cpu", "cuda"):
        raise LiversegError(f"--device must be auto, cpu or cuda, got {device!r}")
    return device


class TorchBackend:
    """Run a ``torch.nn.Module`` in inference mode (fp16 autocast on CUDA)."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.name = f"torch-{device}"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if device == "cpu":
            torch.set_num_threads(cpu_threads())

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            return torch.softmax(logits.float(), dim=1).cpu().numpy()


class OnnxBackend:
    """Run an exported ONNX graph with ONNX Runtime (CPU execution provider)."""

    def __init__(self, onnx_path: Path) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cpu_threads()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.name = "onnxruntime-cpu"

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
