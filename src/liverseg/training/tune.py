"""``liverseg tune``: hyper-parameter search by grid (or Optuna TPE when installed) under a budget.

Each trial trains the config with some overrides on its validation fold and is scored by the best
per-volume validation metric (``train.monitor``). Writes ``results.csv``, ``results.md`` and
``best_config.yaml`` (the winning resolved config) into the output folder.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from liverseg.errors import ConfigError
from liverseg.extras import require
from liverseg.training.config import TrainConfig
from liverseg.training.config_io import load_config, save_config
from liverseg.training.experiments import variant, write_csv, write_markdown
from liverseg.training.trainer import train
from liverseg.utils import atomic_write_text

__all__ = ["ALIASES", "parse_grid", "tune"]

log = logging.getLogger(__name__)

#: Short grid names -> config fields (any dotted field works too).
ALIASES = {
    "batch_size": "train.batch_size",
    "lr": "optim.lr",
    "size": "sampling.size",
    "epochs": "train.epochs",
    "optimizer": "optim.name",
    "loss": "loss.name",
    "model": "model.name",
    "schedule": "schedule.name",
    "weight_decay": "optim.weight_decay",
    "context_slices": "stage.context_slices",
}


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=1e-2,1e-3", "size=128,256"]`` -> ``{"optim.lr": ["1e-2", "1e-3"], "sampling.size": [...]}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid: expected name=v1,v2,... (e.g. lr=1e-3,1e-4), got {item!r}")
        key, values = item.split("=", 1)
        key = ALIASES.get(key.strip(), key.strip())
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not vals:
            raise ConfigError(f"--grid {key}: no values given")
        grid[key] = vals
    if not grid:
        raise ConfigError("--grid: give at least one name=v1,v2,... entry")
    return grid


def _run_trial(
    base: TrainConfig, params: Mapping[str, str], index: int, out_dir: Path, budget_minutes: float | None
) -> dict[str, Any]:
    sets = [f"{k}={v}" for k, v in params.items()]
    sets.append(f"name={base.name}_trial{index:03d}")
    if budget_minutes:
        sets.append(f"train.budget_minutes={budget_minutes}")
    cfg = variant(base, sets)
    summary = train(cfg, out_dir / f"trial_{index:03d}")
    score = summary.get("best_metric")
    return {
        "trial": index,
        **params,
        "score": float("nan") if score is None else float(score),
        "monitor": summary.get("monitor"),
        "epochs": summary.get("epochs_run"),
        "train_seconds": summary.get("train_seconds"),
        "stopped": summary.get("stopped"),
        "_config": cfg,
    }


def tune(
    config_path: str | Path,
    grid: Mapping[str, Sequence[str]],
    out_dir: str | Path,
    *,
    budget_minutes: float | None = None,
    optuna_trials: int | None = None,
    overrides: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Run the search; returns ``{"results": rows (best first), "best": row, "best_config": path}``.

    Every combination is type-checked before the first trial trains (``ConfigError`` naming the field).
    """
    out_dir = Path(out_dir)
    base = load_config(config_path, overrides)
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    for combo in combos:  # fail early on a bad field or value
        variant(base, [f"{k}={v}" for k, v in combo.items()])
    rows: list[dict[str, Any]] = []
    if optuna_trials:
        require("train", "--optuna")
        import optuna

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial: Any) -> float:
            params = {k: trial.suggest_categorical(k, list(grid[k])) for k in keys}
            row = _run_trial(base, params, len(rows), out_dir, budget_minutes)
            rows.append(row)
            return row["score"] if math.isfinite(row["score"]) else -1.0

        study.optimize(objective, n_trials=int(optuna_trials))
    else:
        for i, combo in enumerate(combos):
            log.info("tune: trial %d/%d %s", i + 1, len(combos), combo)
            rows.append(_run_trial(base, combo, i, out_dir, budget_minutes))
    ranked = sorted(rows, key=lambda r: -r["score"] if math.isfinite(r["score"]) else math.inf)
    best = ranked[0]
    # the winning values on the base config (without the trial's name and budget)
    best_path = save_config(variant(base, [f"{k}={best[k]}" for k in keys]), out_dir / "best_config.yaml")
    table = [{k: v for k, v in r.items() if k != "_config"} for r in ranked]
    cols = ["trial", *keys, "score", "monitor", "epochs", "train_seconds", "stopped"]
    write_csv(out_dir / "results.csv", table, cols)
    write_markdown(
        out_dir / "results.md",
        f"Tuning {base.name}",
        table,
        cols,
        [
            f"score: best per-volume validation {best['monitor']} of each trial (higher is better).",
            f"Budget per trial: {budget_minutes} min." if budget_minutes else "Budget: the config's own.",
            f"Best trial {best['trial']}: {', '.join(f'{k}={best[k]}' for k in keys)} -> {best_path.name}.",
        ],
    )
    atomic_write_text(out_dir / "results.json", json.dumps(table, indent=2, default=str) + "\n")
    return {
        "results": table,
        "best": {k: v for k, v in best.items() if k != "_config"},
        "best_config": best_path,
    }
