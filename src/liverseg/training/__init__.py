"""Training of the 2.5D liver / tumor networks (``liverseg train``, ``compare``, ``tune``).

Public API:

* config: :class:`TrainConfig` (+ sections), :func:`load_config`, :func:`load_cascade`,
  :func:`save_config`, :func:`apply_overrides`.
* checkpoints (used by inference): :class:`StageSpec`, :func:`save_checkpoint`,
  :func:`load_checkpoint`, :func:`make_slab`.
* training: :func:`train`, :func:`train_cascade`; experiments: :func:`compare`, :func:`tune`.

Heavy modules (torch, MONAI) are imported lazily by attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "liverseg.training.config",
    "CascadeConfig": "liverseg.training.config",
    "load_config": "liverseg.training.config_io",
    "load_cascade": "liverseg.training.config_io",
    "save_config": "liverseg.training.config_io",
    "apply_overrides": "liverseg.training.config_io",
    "StageSpec": "liverseg.training.slabs",
    "make_slab": "liverseg.training.slabs",
    "save_checkpoint": "liverseg.training.checkpoint",
    "load_checkpoint": "liverseg.training.checkpoint",
    "LoadedModel": "liverseg.training.checkpoint",
    "train": "liverseg.training.trainer",
    "train_cascade": "liverseg.training.cascade",
    "compare": "liverseg.training.compare",
    "tune": "liverseg.training.tune",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'liverseg.training' has no attribute {name!r}")
