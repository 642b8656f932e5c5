"""Shared output helpers of the experiment scripts (tables and result files)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: '-' for missing or non-finite values, fixed digits for floats."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def case_scores(res: dict[str, Any], has_tumor: bool) -> dict[str, Any]:
    """The per-case columns of a validation table from a ``liverseg.metrics.evaluate_case`` result;
    tumor and lesion-recall values are ``None`` for a case without tumor in its reference."""
    les = res.get("lesions") or {}
    return {
        "liver_dice": res["liver"]["dice"],
        "liver_assd_mm": res["liver"].get("assd"),
        "tumor_dice": res["tumor"]["dice"] if has_tumor else None,
        "lesion_recall": les.get("recall") if has_tumor else None,
        "lesion_recall_ge10mm": les.get("recall_measurable") if has_tumor else None,
        "false_positive_lesions": les.get("n_false_positive"),
        "ref_lesions": les.get("n_ref"),
    }


def score_cells(r: dict[str, Any]) -> str:
    """Markdown cells of :func:`case_scores`' columns (liver Dice to FP lesions), ending in ``|``."""
    return (
        f"{fmt(r['liver_dice'])} | {fmt(r['liver_assd_mm'], 2)} | {fmt(r['tumor_dice'])} | "
        f"{fmt(r['lesion_recall'])} | {fmt(r['lesion_recall_ge10mm'])} | {fmt(r['false_positive_lesions'])} |"
    )


def emit(results: object, table: str, json_path: Path | None, markdown_path: Path | None) -> None:
    """Print the Markdown table and write the requested JSON/Markdown files."""
    print(table)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    if markdown_path:
        markdown_path.write_text(table + "\n")
