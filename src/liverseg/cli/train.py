"""``liverseg train``: train one stage, or a two-stage cascade, from a YAML config."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["register", "run_train"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a segmentation network (one stage or a cascade) from a YAML config",
        description="Train a 2.5D network on a prepared dataset (or its training cache). Writes best.pt, "
        "last.pt, config.yaml, log.csv, TensorBoard events, curves.png and summary.json into the run "
        "folder. A cascade config trains stage 1 and stage 2 into RUN_DIR/stage1 and RUN_DIR/stage2. "
        "Multi-GPU: torchrun --nproc_per_node N -m liverseg train ...",
    )
    p.add_argument("--config", required=True, type=Path, help="configs/NAME.yaml (stage or cascade)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=3e-4 --set train.epochs=10 "
        "(cascade: prefix stage1./stage2. for one stage only)",
    )
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt exactly")
    p.add_argument("--half-weights", action="store_true", help="store checkpoint weights as fp16 (half size)")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from liverseg.training.cascade import train_cascade
    from liverseg.training.config_io import is_cascade_file, load_cascade, load_config
    from liverseg.training.trainer import train

    out = args.out
    if is_cascade_file(args.config):
        cascade = load_cascade(args.config, args.overrides)
        out = out or Path("runs") / args.config.stem
        summary = train_cascade(cascade, out, resume=args.resume, half_weights=args.half_weights)
        rows = [(k, v) for k, v in summary.items()]
    else:
        config = load_config(args.config, args.overrides)
        out = out or Path("runs") / config.name
        summary = train(config, out, resume=args.resume, half_weights=args.half_weights)
        rows = [("run", summary)]
    if summary and int(os.environ.get("RANK", "0")) == 0:  # torchrun: only rank 0 reports
        for name, s in rows:
            best = s.get("best_metric")
            sys.stdout.write(
                f"{name}: {s.get('stage')} {s.get('model')} stopped={s.get('stopped')} epochs={s.get('epochs_run')} "
                f"best {s.get('monitor')}={'n/a' if best is None else f'{best:.4f}'} -> {s.get('run_dir')}\n"
            )
    if getattr(args, "debug", False):
        sys.stderr.write(json.dumps(summary, indent=2, default=str) + "\n")
    return 0
