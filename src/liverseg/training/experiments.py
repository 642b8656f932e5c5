"""Shared pieces of ``liverseg compare`` and ``liverseg tune``: tables (Markdown, CSV), statistics
over cases, the bar chart, and config variants for a fold / budget."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from liverseg.training.config import TrainConfig
from liverseg.training.config_io import config_from_dict
from liverseg.utils import atomic_path, atomic_write_text

__all__ = ["bar_chart", "fmt", "markdown_table", "mean_std", "variant", "write_csv", "write_markdown"]


def variant(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """``config`` with ``--set`` style overrides applied (types checked)."""
    return config_from_dict(config.to_dict(), overrides)


def mean_std(values: Sequence[float]) -> tuple[float, float, int, int]:
    """``(mean, std (ddof 1; 0 for one value), n used, n excluded)`` over the finite values."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    finite = arr[np.isfinite(arr)]
    excluded = len(values) - finite.size
    if finite.size == 0:
        return math.nan, math.nan, 0, excluded
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return float(finite.mean()), std, int(finite.size), int(excluded)


def fmt(value: Any, digits: int = 3) -> str:
    """Table cell text: floats rounded, NaN/None as ``-``, inf as ``inf``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Rows as CSV (atomically); columns default to the union of keys in first-seen order."""
    cols = list(columns) if columns else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return atomic_write_text(path, buf.getvalue())


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``rows`` (cells via :func:`fmt`)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(
    path: Path, title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], notes: Sequence[str] = ()
) -> Path:
    """``# title``, the table and bullet notes, written atomically."""
    text = f"# {title}\n\n" + markdown_table(rows, columns)
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return atomic_write_text(path, text)


def bar_chart(
    path: Path,
    labels: Sequence[str],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    ylabel: str,
    title: str,
) -> Path:
    """Grouped bars (one group per label, one bar per series) with std error bars, as PNG."""

    matplotlib.use("Agg")

    n, k = len(labels), max(1, len(series))
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * n + 2), 4))
    x = np.arange(n)
    for i, (name, (means, stds)) in enumerate(series.items()):
        m = np.nan_to_num(np.asarray(means, dtype=float))
        s = np.nan_to_num(np.asarray(stds, dtype=float))
        ax.bar(x + (i - (k - 1) / 2) * width, m, width, yerr=s, capsize=3, label=name)
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
