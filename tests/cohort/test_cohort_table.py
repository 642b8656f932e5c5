"""The cohort table: rows from reports, CSV rewritten as cases finish, Parquet when pyarrow is there."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from liverseg.cohort.table import COLUMNS, CohortTable, failed_row, ok_row, pending_row

REPORT = {
    "liver_found": True,
    "liver_volume_ml": 1500.25,
    "tumor_volume_ml": 30.5,
    "tumor_burden_percent": 2.033,
    "lesion_count": 2,
    "possible_lesion_count": 1,
    "lesions": [
        {"longest_axial_diameter_mm": 41.2, "possible": False},
        {"longest_axial_diameter_mm": 12.0, "possible": False},
        {"longest_axial_diameter_mm": 55.0, "possible": True},  # not counted, not the largest
    ],
    "warnings": ["first warning", "second"],
    "model": {"name": "liver-cascade", "version": "0.1.0"},
}


def _table(tmp_path: Path) -> CohortTable:
    table = CohortTable(tmp_path / "cohort.csv", [pending_row(n, f"/in/{n}.nii.gz") for n in "abc"])
    table.update(ok_row("a", "/in/a.nii.gz", REPORT, seconds=12.345, worker="h:1", sha256="s" * 64))
    table.update(failed_row("b", "/in/b.nii.gz", "bad file", seconds=0.5, worker="h:2", sha256=None))
    return table


def test_rows_from_a_report() -> None:
    row = ok_row("a", "/in/a.nii.gz", REPORT, seconds=12.345, worker="h:1", sha256="s")
    assert set(row) == set(COLUMNS)
    assert row["liver_ml"] == 1500.25 and row["tumor_ml"] == 30.5 and row["burden_percent"] == 2.033
    assert row["lesions"] == 2 and row["possible_lesions"] == 1 and row["largest_lesion_mm"] == 41.2
    assert row["seconds"] == 12.35
    assert row["warnings"] == "first warning | second" and row["model_version"] == "0.1.0"
    no_lesion = ok_row(
        "a",
        "x",
        {**REPORT, "lesions": [], "lesion_count": 0, "possible_lesion_count": 0, "warnings": []},
        seconds=1,
        worker="w",
        sha256="s",
    )
    assert no_lesion["largest_lesion_mm"] is None and no_lesion["warnings"] is None


def test_csv_and_parquet_hold_the_same_rows(tmp_path: Path) -> None:
    table = _table(tmp_path)
    table.flush(force=True)
    parquet = table.write_parquet()
    assert parquet == tmp_path / "cohort.parquet"
    with open(tmp_path / "cohort.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case"] for r in rows] == ["a", "b", "c"]
    assert [r["status"] for r in rows] == ["ok", "failed", "pending"]
    assert rows[0]["liver_found"] == "true" and float(rows[0]["liver_ml"]) == 1500.25
    assert rows[1]["error"] == "bad file" and rows[1]["liver_ml"] == ""
    pq_rows = pq.read_table(parquet).to_pylist()
    assert list(pq_rows[0]) == list(COLUMNS)
    assert pq_rows[0]["liver_ml"] == 1500.25 and pq_rows[0]["lesions"] == 2 and pq_rows[0]["resumed"] is False
    assert pq_rows[1]["liver_ml"] is None and pq_rows[2]["status"] == "pending"


def test_csv_rewrites_are_throttled_until_forced(tmp_path: Path) -> None:
    table = _table(tmp_path)
    table.flush()
    first = (tmp_path / "cohort.csv").read_text()
    table.update(ok_row("c", "/in/c.nii.gz", REPORT, seconds=1, worker="h:1", sha256="s"))
    table.flush()  # within FLUSH_INTERVAL_S of the last write: not rewritten
    assert (tmp_path / "cohort.csv").read_text() == first
    table.flush(force=True)
    assert "c,/in/c.nii.gz,ok" in (tmp_path / "cohort.csv").read_text()
    assert table.counts() == {"ok": 2, "failed": 1, "pending": 0, "resumed": 0}


def test_without_pyarrow_only_the_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    table = _table(tmp_path)
    assert table.write_parquet() is None
    assert not (tmp_path / "cohort.parquet").exists()
