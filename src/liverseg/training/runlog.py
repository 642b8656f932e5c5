"""Run-folder logging: ``log.csv`` (one row per epoch), TensorBoard events, ``curves.png``.

Only the main process logs (``enabled=False`` elsewhere). On ``--resume`` the existing rows up
to the resumed epoch are kept and the CSV continues.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from liverseg.extras import require
from liverseg.utils import atomic_path, atomic_write_text

__all__ = ["COLUMNS", "RunLogger", "plot_curves"]

log = logging.getLogger(__name__)

COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "lr",
    "dice_liver",
    "dice_tumor",
    "dice_mean",
    "epoch_seconds",
    "val_seconds",
    "elapsed_seconds",
)


class RunLogger:
    """Collects per-epoch rows; writes CSV + TensorBoard as they come, curves at the end."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, resume_epoch: int | None = None) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        if not enabled:
            return
        csv_path = self.run_dir / "log.csv"
        if resume_epoch is not None and csv_path.is_file():
            with open(csv_path, newline="", encoding="utf-8") as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= resume_epoch]
        require("train", "the training log (TensorBoard)")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def log_epoch(self, row: dict[str, Any]) -> None:
        """Append a row (keys from :data:`COLUMNS`; missing ones empty) and rewrite ``log.csv``."""
        if not self.enabled:
            return
        self.rows.append({k: row.get(k, "") for k in COLUMNS})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.run_dir / "log.csv", buf.getvalue())
        if self.writer is not None:
            step = int(row["step"])
            for key in ("train_loss", "lr", "dice_liver", "dice_tumor", "dice_mean"):
                value = row.get(key)
                if isinstance(value, int | float) and math.isfinite(value):
                    tag = f"train/{key}" if key in ("train_loss", "lr") else f"val/{key}"
                    self.writer.add_scalar(tag, value, step)
            self.writer.flush()

    def close(self) -> None:
        """Write ``curves.png`` and close TensorBoard."""
        if not self.enabled:
            return
        if self.writer is not None:
            self.writer.close()
        if self.rows:
            plot_curves(self.rows, self.run_dir / "curves.png")


def _floats(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        try:
            y = float(r.get(key, ""))
        except (TypeError, ValueError):
            continue
        if math.isfinite(y):
            xs.append(float(r["epoch"]))
            ys.append(y)
    return xs, ys


def plot_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """Training loss (left) and validation Dice per class (right) against epoch."""

    matplotlib.use("Agg")

    fig, (ax_l, ax_d) = plt.subplots(1, 2, figsize=(10, 4))
    ax_l.plot(*_floats(rows, "train_loss"), marker="o", ms=3, label="train loss")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("loss")
    ax_l.set_title("training loss")
    for key in ("dice_liver", "dice_tumor", "dice_mean"):
        xs, ys = _floats(rows, key)
        if xs:
            ax_d.plot(xs, ys, marker="o", ms=3, label=key.replace("dice_", "val Dice "))
    ax_d.set_ylim(0, 1)
    ax_d.set_xlabel("epoch")
    ax_d.set_ylabel("Dice (per volume, mean over cases)")
    ax_d.set_title("validation Dice")
    ax_d.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
