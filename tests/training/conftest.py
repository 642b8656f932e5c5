"""Fixtures of the training tests: tiny phantom datasets (``liverseg.synth``) and tiny configs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

TINY_MODEL = {"name": "unet", "kwargs": {"features": 8, "depth": 2, "dropout": 0.0}}
PHANTOM_SHAPE = (16, 64, 64)
PHANTOM_SPACING = (5.0, 4.0, 4.0)


def make_phantoms(root: Path, cases: int = 4, *, folds: int | None = 2, seed: int = 0) -> Path:
    """A prepared phantom dataset of ``cases`` cases (one patient each) at ``root``."""
    from liverseg.synth import write_phantom_dataset
    from liverseg.utils import set_progress_enabled

    set_progress_enabled(False)
    write_phantom_dataset(
        root, cases=cases, seed=seed, shape=PHANTOM_SHAPE, spacing=PHANTOM_SPACING, folds=folds
    )
    return root


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-case phantom prepared dataset with 2 patient-level folds (read-only for tests)."""
    return make_phantoms(tmp_path_factory.mktemp("phantoms") / "prepared")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the 2 shared cores are oversubscribed otherwise (much slower)."""
    from liverseg.utils import set_progress_enabled

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    set_progress_enabled(False)
    yield
    torch.set_num_threads(before)


def tiny_config_dict(data_dir: Path | None, cache_dir: Path, **sections: Any) -> dict[str, Any]:
    """A seconds-long CPU config on the phantoms (override sections with keyword dicts)."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "data": {"dir": None if data_dir is None else str(data_dir), "cache_dir": str(cache_dir), "fold": 0},
        "model": dict(TINY_MODEL),
        "stage": {"stage": "single", "context_slices": 1, "spacing_zyx": [None, 4.0, 4.0]},
        "sampling": {"mode": "slice", "size": 64, "liver_fraction": 0.5, "tumor_fraction": 0.25},
        "augment": {"enabled": False},
        "loss": {"name": "dice_ce"},
        "optim": {"name": "adam", "lr": 3e-3},
        "schedule": {"name": "constant"},
        "train": {
            "batch_size": 8,
            "epochs": 2,
            "steps_per_epoch": 3,
            "seed": 0,
            "device": "cpu",
            "num_workers": 0,
            "patience": None,
        },
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


@pytest.fixture
def tiny_config() -> Any:
    """The :func:`tiny_config_dict` builder (importlib mode: tests cannot import conftest)."""
    return tiny_config_dict


@pytest.fixture
def phantom_factory() -> Any:
    """The :func:`make_phantoms` writer."""
    return make_phantoms
