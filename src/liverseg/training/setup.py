"""Preparing a training run: every check against the data before the first step, the data
loader, distributed validation and the wall-clock budget (used by :mod:`liverseg.training.trainer`)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from liverseg.errors import ConfigError
from liverseg.training import runtime
from liverseg.training.augmentation import build_augmenter
from liverseg.training.cache import CachedCase, StageCache, build_or_open_cache
from liverseg.training.checkpoint import build_network, load_checkpoint_dict, unwrap_model
from liverseg.training.config import TrainConfig
from liverseg.training.config_io import config_from_dict
from liverseg.training.distributed import DistInfo, all_gather_objects, barrier
from liverseg.training.evaluation import summarize, validate
from liverseg.training.folds import resolve_split
from liverseg.training.sampling import EpochSampler, SlabDataset

log = logging.getLogger(__name__)

__all__ = ["PreparedRun", "budget_spent", "make_loader", "prepare_run", "validate_distributed"]

# Settings that may change on --resume (extend a run); anything else must match config.yaml.
_RESUMABLE = (
    "train.epochs",
    "train.budget_minutes",
    "train.patience",
    "train.num_workers",
    "train.val_every",
)


@dataclass
class PreparedRun:
    """Everything checked and loaded before training starts."""

    config: TrainConfig
    cache: StageCache
    train_cases: list[CachedCase]
    val_cases: list[CachedCase]
    model: nn.Module
    resume_state: dict[str, Any] | None = None
    split: dict[str, list[str]] = field(default_factory=dict)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) and k != "kwargs" else {key: v})
    return out


def _check_resume(config: TrainConfig, saved: dict[str, Any]) -> None:
    mine, theirs = _flat(config.to_dict()), _flat(config_from_dict(saved).to_dict())
    diff = [k for k in mine if mine[k] != theirs.get(k) and k not in _RESUMABLE]
    if diff:
        raise ConfigError(
            f"--resume: {diff[0]} is {mine[diff[0]]!r} but the run was started with {theirs.get(diff[0])!r}; "
            f"only {', '.join(_RESUMABLE)} may change when resuming"
        )


def _init_weights(model: torch.nn.Module, config: TrainConfig, spec: Any) -> None:
    """Load ``model.init_from`` weights; the checkpoint must be the same network and stage input."""
    path = Path(str(config.model.init_from))
    if not path.is_file():
        raise ConfigError(f"model.init_from: no checkpoint at {path}")
    data = load_checkpoint_dict(path)
    theirs = (data.get("model_name"), data.get("model_kwargs"), data.get("spec"))
    mine = (config.model.name, dict(config.model.kwargs), spec.to_dict())
    if theirs != mine:
        raise ConfigError(
            f"model.init_from: {path} holds {theirs[0]} {theirs[1]} with stage {theirs[2]}, "
            f"but this run trains {mine[0]} {mine[1]} with stage {mine[2]}"
        )
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    )
    log.info("initialised the network from %s", path)


def prepare_run(
    config: TrainConfig, run_dir: str | Path, *, resume: bool = False, dist_info: DistInfo | None = None
) -> PreparedRun:
    """Check the config against the data and build the network, before any training step.

    Raises:
        ConfigError: a bad field (unknown fold/case/model, no labels, resume mismatch), naming it.
    """
    info = dist_info or DistInfo()
    spec = config.spec
    resume_state = None
    if resume:
        last = Path(run_dir) / "last.pt"
        if not last.is_file():
            raise ConfigError(f"--resume: no {last} to resume from (train without --resume first)")
        resume_state = load_checkpoint_dict(last)
        _check_resume(config, resume_state["config"])
    margin = spec.crop_margin_mm + config.sampling.margin_jitter_mm
    if info.is_main:
        cache = build_or_open_cache(config.data.dir, config.data.cache_dir, spec, margin_mm=margin)
    barrier(info)
    if not info.is_main:
        cache = build_or_open_cache(config.data.dir, config.data.cache_dir, spec, margin_mm=margin)
    train_ids, val_ids = resolve_split(
        splits=cache.splits,
        patients=cache.patients,
        usable=cache.case_ids,
        fold=config.data.fold,
        train_ids=config.data.train_ids,
        val_ids=config.data.val_ids,
    )
    cache.preload([*train_ids, *val_ids])
    if not any(cache.case(c).liver_slices.size for c in train_ids):
        raise ConfigError(
            "data.dir: the training cases have no liver label at all (a dataset without labels?)"
        )
    model = build_network(config.model.name, spec, config.model.kwargs)
    if config.model.init_from and resume_state is None:
        _init_weights(model, config, spec)
    return PreparedRun(
        config,
        cache,
        [cache.case(c) for c in train_ids],
        [cache.case(c) for c in val_ids],
        model,
        resume_state,
        {"train": train_ids, "val": val_ids},
    )


def make_loader(run: PreparedRun, info: DistInfo, device: torch.device) -> tuple[DataLoader, EpochSampler]:
    cfg = run.config
    length = cfg.train.steps_per_epoch * cfg.train.batch_size * info.world_size
    dataset = SlabDataset(
        run.train_cases,
        cfg.spec,
        cfg.sampling,
        length=length,
        seed=cfg.train.seed,
        augment=build_augmenter(cfg.augment, cfg.spec),
    )
    sampler = EpochSampler(length, rank=info.rank, world_size=info.world_size)
    workers = cfg.train.num_workers
    loader = DataLoader(
        dataset,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=False,
        worker_init_fn=runtime.worker_init,
        prefetch_factor=4 if workers > 0 else None,
    )
    return loader, sampler


def validate_distributed(
    run: PreparedRun,
    model: nn.Module,
    info: DistInfo,
    device: torch.device,
    amp: torch.dtype | None,
    channels_last: bool,
) -> dict[str, Any]:
    mine = run.val_cases[info.rank :: info.world_size]
    part = validate(
        unwrap_model(model),
        mine,
        run.config.spec,
        device=device,
        batch_size=run.config.train.val_batch_size,
        amp_dtype=amp,
        channels_last=channels_last,
    )
    per_case: dict[str, dict[str, float]] = {}
    for p in all_gather_objects(part["per_case"], info):
        per_case.update(p)
    return summarize(per_case)


def budget_spent(t_start: float, budget_s: float, info: DistInfo, device: torch.device) -> bool:
    """Wall-clock budget spent? All ranks agree (one all-reduce per step, only with a budget)."""
    if math.isinf(budget_s):
        return False
    late = time.perf_counter() - t_start > budget_s
    if not info.enabled:
        return late

    flag = torch.tensor([1.0 if late else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)
