"""The training loop of one stage: ``train(config, run_dir)``.

Writes into ``run_dir``: ``config.yaml`` (resolved), ``best.pt`` / ``last.pt`` (see
:mod:`liverseg.training.checkpoint`), ``log.csv``, ``tensorboard/``, ``curves.png`` and
``summary.json``. Everything that can be wrong with the config or the data is checked before the
first step (:func:`prepare_run`). ``resume=True`` continues from ``last.pt`` exactly: weights,
optimiser, schedule, grad scaler, RNG states, early-stopping counters and elapsed time.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from liverseg.training import runtime
from liverseg.training.augment_apply import augment_batch
from liverseg.training.checkpoint import save_checkpoint, unwrap_model
from liverseg.training.config import TrainConfig
from liverseg.training.config_io import save_config
from liverseg.training.distributed import (
    DistInfo,
    cleanup,
    init_distributed,
    mean_across,
)
from liverseg.training.evaluation import autocast, monitor_key
from liverseg.training.losses import build_loss
from liverseg.training.optim import LRSchedule, build_optimizer
from liverseg.training.runlog import RunLogger
from liverseg.training.setup import (
    PreparedRun,
    budget_spent,
    make_loader,
    prepare_run,
    validate_distributed,
)
from liverseg.utils import atomic_write_text, progress

__all__ = ["PreparedRun", "prepare_run", "train"]

log = logging.getLogger(__name__)


def train(
    config: TrainConfig, run_dir: str | Path, *, resume: bool = False, half_weights: bool = False
) -> dict[str, Any]:
    """Train one stage into ``run_dir``; returns the summary (also written to ``summary.json``)."""
    run_dir = Path(run_dir)
    cfg = config.train
    device_pref = runtime.resolve_device(cfg)  # raises for cuda without GPU before anything else
    info = init_distributed(device_pref.type == "cuda")
    device = runtime.resolve_device(cfg, info.local_rank)
    try:
        return _train(config, run_dir, info, device, resume=resume, half_weights=half_weights)
    finally:
        cleanup(info)


def _step_timing(seconds: float, steps: int, steps_per_epoch: int) -> dict[str, Any]:
    """Training speed of this run: mean ms per optimiser step and the seconds a full epoch takes.

    A budget-stopped run usually ends inside an epoch, so the epoch time is estimated as
    ``ms_per_step x steps_per_epoch`` rather than averaged over (partial) epochs.
    """
    if steps <= 0:
        return {"ms_per_step": None, "seconds_per_epoch": None}
    per_step = seconds / steps
    return {
        "ms_per_step": round(1000 * per_step, 2),
        "seconds_per_epoch": round(per_step * steps_per_epoch, 3),
        "seconds_per_epoch_note": "mean training step time x steps per epoch; validation excluded",
    }


def _step_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    """The generator of on-device augmentation parameters, a pure function of (seed, rank, step)
    so ``--resume`` replays the same augmentation."""
    return np.random.default_rng([seed, rank, step])


def _train(
    config: TrainConfig,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    *,
    resume: bool,
    half_weights: bool,
) -> dict[str, Any]:
    cfg, spec = config.train, config.spec
    runtime.seed_everything(cfg.seed)
    run = prepare_run(config, run_dir, resume=resume, dist_info=info)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = runtime.amp_dtype(cfg, device)
    channels_last = cfg.channels_last and device.type == "cuda"
    model = run.model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(config.loss, spec.out_channels).to(device)
    optimizer = build_optimizer(model.parameters(), config.optim)
    schedule = LRSchedule(
        optimizer,
        config.schedule,
        base_lr=config.optim.lr,
        total_steps=cfg.epochs * cfg.steps_per_epoch,
        steps_per_epoch=cfg.steps_per_epoch,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    state = {
        "epoch": 0,
        "step": 0,
        "best": -math.inf,
        "best_epoch": -1,
        "bad": 0,
        "elapsed": 0.0,
        "best_metrics": {},
        "best_per_case": {},
    }
    if run.resume_state is not None:
        rs = run.resume_state["training_state"]
        unwrap_model(model).load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in run.resume_state["state_dict"].items()}
        )
        optimizer.load_state_dict(rs["optimizer"])
        schedule.load_state_dict(rs["schedule"])
        scaler.load_state_dict(rs["scaler"])
        runtime.set_rng_state(rs["rng"])
        state.update(rs["loop"])
        log.info("resuming %s at epoch %d", run_dir, state["epoch"])
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    logger = RunLogger(run_dir, enabled=info.is_main, resume_epoch=state["epoch"] - 1 if resume else None)
    loader, sampler = make_loader(run, info, device)
    key = monitor_key(cfg.monitor, spec)
    budget_s = cfg.budget_minutes * 60.0 if cfg.budget_minutes else math.inf
    extra = {
        "model_name": config.model.name,
        "model_kwargs": dict(config.model.kwargs),
        "spec": spec,
        "config": config.to_dict(),
        "dataset_fingerprint": run.cache.fingerprint,
    }
    hw = runtime.hardware(device, info.world_size)
    stop_reason, t_start, last_val = "epochs", time.perf_counter() - state["elapsed"], float("nan")
    epoch_times: list[float] = []  # training steps only (validation excluded)
    first_step = state["step"]  # steps before a --resume are not timed here
    while state["epoch"] < cfg.epochs:
        epoch, t_epoch = state["epoch"], time.perf_counter()
        sampler.set_epoch(epoch)
        model.train()
        total, count, over_budget = torch.zeros((), device=device), 0, False
        bar = (
            progress(loader, desc=f"{config.name} epoch {epoch + 1}/{cfg.epochs}", total=len(loader))
            if info.is_main
            else loader
        )
        for batch in bar:
            x = batch["image"].to(device, non_blocking=True)
            y = batch["label"].to(device, non_blocking=True)
            if config.augment.on_device:
                x, y = augment_batch(x, y, config.augment, _step_rng(cfg.seed, info.rank, state["step"]))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                loss = loss_fn(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.optim.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            scale = scaler.get_scale() if scaler.is_enabled() else None
            scaler.step(optimizer)
            scaler.update()
            if (
                scale is None or scaler.get_scale() >= scale
            ):  # fp16: no schedule step when the step was skipped
                if math.isfinite(budget_s):
                    schedule.time_fraction = (time.perf_counter() - t_start) / budget_s
                schedule.step()
            state["step"] += 1
            total, count = total + loss.detach(), count + 1  # no per-step GPU sync
            if hasattr(bar, "set_postfix") and (count % 10 == 1 or count == len(loader)):
                bar.set_postfix(loss=f"{float(total) / count:.4f}", val=f"{last_val:.3f}")
            over_budget = budget_spent(t_start, budget_s, info, device)
            if over_budget:
                break
        epoch_times.append(time.perf_counter() - t_epoch)
        train_loss = mean_across(float(total) / max(count, 1), info)
        state["epoch"] = epoch + 1
        metrics: dict[str, Any] = {}
        final = over_budget or state["epoch"] >= cfg.epochs
        if run.val_cases and (state["epoch"] % cfg.val_every == 0 or final):
            metrics = validate_distributed(run, model, info, device, amp, channels_last)
            last_val = float(metrics[key])
            schedule.validated(last_val)
            if last_val > state["best"]:
                state.update(
                    best=last_val,
                    best_epoch=epoch,
                    bad=0,
                    best_metrics={k: v for k, v in metrics.items() if k != "per_case"},
                    best_per_case=metrics.get("per_case", {}),
                )
                if info.is_main:
                    save_checkpoint(
                        run_dir / "best.pt",
                        model,
                        metrics=metrics,
                        half_weights=half_weights,
                        epoch=epoch,
                        hardware=hw,
                        split=run.split,
                        **extra,
                    )
            else:
                state["bad"] += 1
        elif not run.val_cases and info.is_main:
            save_checkpoint(
                run_dir / "best.pt",
                model,
                metrics={},
                half_weights=half_weights,
                epoch=epoch,
                hardware=hw,
                split=run.split,
                **extra,
            )
        state["elapsed"] = time.perf_counter() - t_start
        if info.is_main:
            training_state = {
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": runtime.get_rng_state(),
                "loop": dict(state),
            }
            save_checkpoint(
                run_dir / "last.pt",
                model,
                metrics=metrics,
                half_weights=False,
                epoch=epoch,
                hardware=hw,
                split=run.split,
                training_state=training_state,
                **extra,
            )
            logger.log_epoch(
                {
                    "epoch": epoch,
                    "step": state["step"],
                    "train_loss": train_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    "epoch_seconds": round(epoch_times[-1], 3),
                    "val_seconds": round(time.perf_counter() - t_epoch - epoch_times[-1], 3),
                    "elapsed_seconds": round(state["elapsed"], 3),
                    **{k: v for k, v in metrics.items() if k != "per_case"},
                }
            )
            log.info(
                "epoch %d: loss %.4f%s",
                epoch + 1,
                train_loss,
                f", val {key} {last_val:.4f}" if metrics else "",
            )
        if over_budget:
            stop_reason = "budget"
            break
        if cfg.patience is not None and state["bad"] >= cfg.patience:
            stop_reason = "early_stopping"
            break
    logger.close()
    summary = {
        "name": config.name,
        "stage": spec.stage,
        "model": config.model.name,
        "stopped": stop_reason,
        "epochs_run": state["epoch"],
        "steps": state["step"],
        "monitor": key,
        "best_metric": state["best"] if math.isfinite(state["best"]) else None,
        "best_epoch": state["best_epoch"],
        "best_metrics": state["best_metrics"],
        "best_per_case": state.get("best_per_case", {}),
        "train_seconds": round(state["elapsed"], 3),
        **_step_timing(sum(epoch_times), state["step"] - first_step, len(loader)),
        "hardware": hw,
        "split": run.split,
        "dataset_fingerprint": run.cache.fingerprint,
        "run_dir": str(run_dir),
    }
    if info.is_main:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
