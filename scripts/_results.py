"""Shared output helpers of the experiment scripts (tables and result files)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: '-' for missing or non-finite values, fixed digits for floats."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def emit(results: object, table: str, json_path: Path | None, markdown_path: Path | None) -> None:
    """Print the Markdown table and write the requested JSON/Markdown files."""
    print(table)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    if markdown_path:
        markdown_path.write_text(table + "\n")
