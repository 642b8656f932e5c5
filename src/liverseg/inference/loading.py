"""Load a resolved model bundle into a :class:`~liverseg.inference.predictor.Cascade`.

Loaded cascades are cached per (model folder, device, backend) so the web service's workers and
batch runs pay the load cost once. ONNX exports go to the user cache only (:func:`onnx_cache_dir`),
so a read-only installation works.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from liverseg import models
from liverseg.catalog import ModelBundle
from liverseg.inference.backends import OnnxBackend, TorchBackend
from liverseg.inference.predictor import Cascade, StageRunner
from liverseg.models.export import ONNX_OPSET
from liverseg.training.checkpoint import load_checkpoint
from liverseg.utils import sha256_file

log = logging.getLogger(__name__)

__all__ = ["load_cascade", "load_count", "onnx_cache_dir"]


def onnx_cache_dir() -> Path:
    """The user cache of ONNX exports: ``$XDG_CACHE_HOME/liverseg/onnx`` (an absolute
    ``XDG_CACHE_HOME``), else ``~/.cache/liverseg/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "liverseg" / "onnx"


def _onnx_cache_path(checkpoint: Path) -> Path:
    """Where the ONNX export of ``checkpoint`` is kept: the user cache only, keyed by the
    checkpoint's sha256 and the ONNX opset (never beside the weights: an installed package folder
    may be read-only, and a shared one must not be written by whoever runs first)."""

    digest = sha256_file(checkpoint)
    return onnx_cache_dir() / f"{checkpoint.stem}-{digest}-opset{ONNX_OPSET}.onnx"


def _stage_runner(checkpoint: Path, device: str, backend: str, batch_size: int) -> StageRunner:
    loaded = load_checkpoint(checkpoint, device="cpu")
    if backend == "onnx" and device == "cpu":
        onnx_path = _onnx_cache_path(checkpoint)
        if not onnx_path.exists():
            log.info("exporting %s to ONNX (once) at %s", checkpoint.name, onnx_path)
            # written atomically (temporary file + rename): concurrent first runs cannot see a partial graph

            models.export_onnx(loaded.model, onnx_path, in_channels=loaded.spec.in_channels)
        return StageRunner(OnnxBackend(onnx_path), loaded.spec, batch_size=batch_size)
    return StageRunner(TorchBackend(loaded.model, device), loaded.spec, batch_size=batch_size)


@functools.lru_cache(maxsize=4)
def _load_cached(stages: tuple[tuple[str, str], ...], device: str, backend: str) -> Cascade:
    batch = 16 if device == "cuda" else 8
    runners = {name: _stage_runner(Path(path), device, backend, batch) for name, path in stages}
    return Cascade(liver=runners.get("liver"), tumor=runners.get("tumor"), single=runners.get("single"))


def load_cascade(bundle: ModelBundle, device: str = "cpu", backend: str = "torch") -> Cascade:
    """Build (or fetch from the cache) the cascade for ``bundle`` on ``device``.

    Args:
        bundle: from :func:`liverseg.catalog.resolve_model`.
        device: ``cpu`` or ``cuda`` (already resolved).
        backend: ``torch`` or ``onnx`` (ONNX Runtime is used on CPU only).
    """
    stages = tuple(sorted((k, str(v)) for k, v in bundle.stages.items()))
    return _load_cached(stages, device, backend)


def load_count() -> int:
    """How many cascades this process has loaded (cache misses): 1 for a worker that loaded once."""
    return _load_cached.cache_info().misses
