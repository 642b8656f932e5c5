"""The cohort table: ``OUT_DIR/cohort.csv`` (and ``cohort.parquet`` when pyarrow is installed).

One row per case, in the cohort's order, rewritten atomically as cases finish (at most every
:data:`FLUSH_INTERVAL_S` seconds, and at the end), so a running cohort can be watched with any
CSV reader. Columns (units in the name):

=====================  =====================================================================
``case``               case id (the stem of its output files)
``input``              the input path or URL
``status``             ``ok``, ``failed``, or ``pending`` (not finished yet, or interrupted)
``error``              why it failed (one line), else empty
``liver_found``        false when no liver was found (volumes are then 0)
``liver_ml``           liver volume including tumor (ml)
``tumor_ml``           tumor volume (ml)
``burden_percent``     100 x tumor / liver volume
``lesions``            number of (confirmed) lesions, as the report's ``lesion_count``
``possible_lesions``   candidates below the model's confirmation threshold (listed in the report
                       as ``possible``, not counted in the tumor volume, burden or ``lesions``)
``largest_lesion_mm``  the largest RECIST-style longest axial diameter of the confirmed lesions
                       (mm); empty without lesions
``warnings``           the report's warnings joined by `` | `` (review these cases first)
``model``              model name
``model_version``      model version
``seconds``            wall time of the case on its worker (s), including reading and writing
``worker``             ``host:pid`` of the process that segmented it
``input_sha256``       sha256 of the input (see :mod:`liverseg.cohort.ledger`)
``resumed``            true when the result was kept from an earlier run
=====================  =====================================================================

The numbers are those of the case's JSON report (``<case>.report.json``), rounded as there.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import time
from pathlib import Path
from typing import Any

from liverseg.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "FLUSH_INTERVAL_S", "CohortTable", "failed_row", "ok_row", "pending_row"]

FLUSH_INTERVAL_S = 2.0
# column -> Parquet type (pyarrow type name)
COLUMNS: dict[str, str] = {
    "case": "string",
    "input": "string",
    "status": "string",
    "error": "string",
    "liver_found": "bool",
    "liver_ml": "float64",
    "tumor_ml": "float64",
    "burden_percent": "float64",
    "lesions": "int64",
    "possible_lesions": "int64",
    "largest_lesion_mm": "float64",
    "warnings": "string",
    "model": "string",
    "model_version": "string",
    "seconds": "float64",
    "worker": "string",
    "input_sha256": "string",
    "resumed": "bool",
}


def pending_row(case: str, source: str) -> dict[str, Any]:
    """The row of a case that has not finished (yet)."""
    return {**dict.fromkeys(COLUMNS), "case": case, "input": source, "status": "pending", "resumed": False}


def ok_row(
    case: str, source: str, report: dict[str, Any], *, seconds: float, worker: str, sha256: str
) -> dict[str, Any]:
    """The row of a finished case, from its JSON report."""
    confirmed = [les for les in report.get("lesions", []) if not les.get("possible", False)]
    diameters = [les["longest_axial_diameter_mm"] for les in confirmed]
    return {
        **pending_row(case, source),
        "status": "ok",
        "liver_found": bool(report["liver_found"]),
        "liver_ml": report["liver_volume_ml"],
        "tumor_ml": report["tumor_volume_ml"],
        "burden_percent": report["tumor_burden_percent"],
        "lesions": int(report["lesion_count"]),
        "possible_lesions": int(report.get("possible_lesion_count", 0)),
        "largest_lesion_mm": max(diameters) if diameters else None,
        "warnings": " | ".join(report.get("warnings", [])) or None,
        "model": report["model"]["name"],
        "model_version": report["model"]["version"],
        "seconds": round(seconds, 2),
        "worker": worker,
        "input_sha256": sha256,
    }


def failed_row(
    case: str, source: str, error: str, *, seconds: float, worker: str | None, sha256: str | None
) -> dict[str, Any]:
    """The row of a case that failed, with the reason."""
    return {
        **pending_row(case, source),
        "status": "failed",
        "error": error,
        "seconds": round(seconds, 2),
        "worker": worker,
        "input_sha256": sha256,
    }


class CohortTable:
    """The rows of a cohort (one per case, in order) and their CSV/Parquet files."""

    def __init__(self, csv_path: Path, rows: list[dict[str, Any]]) -> None:
        self.csv_path = csv_path
        self.rows = {r["case"]: r for r in rows}
        self._last_flush = float("-inf")

    def update(self, row: dict[str, Any]) -> None:
        if row["case"] not in self.rows:
            raise KeyError(f"case {row['case']!r} is not part of this cohort")
        self.rows[row["case"]] = row

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "pending": 0, "resumed": 0}
        for r in self.rows.values():
            out[r["status"]] += 1
            out["resumed"] += bool(r["resumed"])
        return out

    def flush(self, *, force: bool = False) -> None:
        """Rewrite the CSV (atomically) unless it was written less than FLUSH_INTERVAL_S ago."""
        now = time.monotonic()
        if not force and now - self._last_flush < FLUSH_INTERVAL_S:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in self.rows.values():
            writer.writerow({k: _csv_value(row[k]) for k in COLUMNS})
        atomic_write_text(self.csv_path, buf.getvalue())
        self._last_flush = now

    def write_parquet(self) -> Path | None:
        """Write ``cohort.parquet`` beside the CSV when pyarrow is installed; its path, or None."""
        if importlib.util.find_spec("pyarrow") is None:  # an optional output of the cluster extra
            log.info("pyarrow is not installed: no cohort.parquet (pip install 'liverseg[cluster]')")
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"string": pa.string(), "bool": pa.bool_(), "float64": pa.float64(), "int64": pa.int64()}
        schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])
        table = pa.Table.from_pylist([{k: r[k] for k in COLUMNS} for r in self.rows.values()], schema=schema)
        path = self.csv_path.with_suffix(".parquet")
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
