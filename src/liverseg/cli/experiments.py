"""``liverseg compare`` and ``liverseg tune``: network comparison and hyper-parameter search."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run_compare", "run_tune"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="train several networks on the same folds and budget, and tabulate held-out results",
        description="Train each config on the same patient-level folds (dataset.json splits, else "
        "leave-one-patient-out) under the same wall-clock budget, evaluate every held-out case at full "
        "resolution on its original grid and write compare.md/.csv/.png and per-case rows into --out.",
    )
    p.add_argument("--configs", nargs="+", required=True, type=Path, help="stage configs to compare")
    p.add_argument("--folds", type=int, default=None, help="use the first K folds (default all)")
    p.add_argument(
        "--budget-minutes", type=float, default=None, help="wall-clock budget of every training run"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value in every config (e.g. data.dir=work_data/prepared)",
    )
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="output folder")
    p.set_defaults(func=run_compare)

    t = subparsers.add_parser(
        "tune",
        help="grid (or Optuna) search of hyper-parameters on the validation fold",
        description="Train one trial per combination and rank them by best per-volume validation Dice. "
        "Names: batch_size, lr, size, epochs, optimizer, loss, model, schedule, weight_decay, "
        "context_slices, or any dotted config field. Writes results.csv/.md and best_config.yaml.",
    )
    t.add_argument("--config", required=True, type=Path, help="the stage config to tune")
    t.add_argument(
        "--grid",
        nargs="+",
        required=True,
        metavar="NAME=V1,V2",
        help="e.g. batch_size=8,16,32 lr=1e-2,1e-3,1e-4 size=128,256",
    )
    t.add_argument("--budget-minutes", type=float, default=None, help="wall-clock budget per trial")
    t.add_argument(
        "--optuna",
        type=int,
        default=None,
        metavar="N",
        help="N Optuna TPE trials over the grid's values instead of the full grid (needs optuna)",
    )
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value for every trial",
    )
    t.add_argument("--out", type=Path, default=Path("runs/tune"), help="output folder")
    t.set_defaults(func=run_tune)


def run_compare(args: argparse.Namespace) -> int:
    from liverseg.training.compare import SUMMARY_COLUMNS, compare
    from liverseg.training.experiments import markdown_table

    result = compare(
        args.configs, args.out, folds=args.folds, budget_minutes=args.budget_minutes, overrides=args.overrides
    )
    sys.stdout.write(markdown_table(result["summary"], SUMMARY_COLUMNS))
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from liverseg.training.experiments import markdown_table
    from liverseg.training.tune import parse_grid, tune

    grid = parse_grid(args.grid)
    result = tune(
        args.config,
        grid,
        args.out,
        budget_minutes=args.budget_minutes,
        optuna_trials=args.optuna,
        overrides=args.overrides,
    )
    cols = ["trial", *grid, "score", "epochs", "train_seconds", "stopped"]
    sys.stdout.write(markdown_table(result["results"], cols))
    sys.stdout.write(f"best config: {result['best_config']}\n")
    return 0
