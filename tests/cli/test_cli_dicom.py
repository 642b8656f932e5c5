"""`liverseg dicom ls`: the table and the JSON account of a messy export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _helpers_dicom import write_messy_export
from liverseg.cli.main import main


@pytest.fixture
def messy(tmp_path: Path) -> dict:
    return write_messy_export(tmp_path / "export")


def test_ls_table_marks_the_choice_and_lists_what_is_left_out(messy, capsys):
    assert main(["dicom", "ls", str(messy["root"])]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    chosen = next(line for line in lines if line.startswith("*"))
    assert "ORIGINAL/PRIMARY/AXIAL" in chosen and messy["uid"] in chosen and "read: ranked first" in chosen
    other = next(line for line in lines if messy["derived"] in line)
    assert "not read: ORIGINAL over DERIVED images" in other
    assert "Left out (8 of 32 files)" in out
    assert "SE3/IM_coronal" in out and "structured report (X-Ray Radiation Dose SR Storage)" in out


def test_ls_json_and_series_choice(messy, capsys):
    assert main(["dicom", "ls", str(messy["root"]), "--json", "--series", "4"]) == 0
    account = json.loads(capsys.readouterr().out)
    assert account["chosen"]["series_instance_uid"] == messy["derived"]
    assert account["requested"] == "4" and account["n_files"] == 32
    assert {s["file"] for s in account["skipped"]} >= {"README.TXT", "SE997/dose_sr", "SE3/IM_coronal"}


def test_ls_unknown_series_is_one_line_error(messy, capsys):
    assert main(["dicom", "ls", str(messy["root"]), "--series", "12"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected series 12" in err[0]


@pytest.mark.parametrize("args", [["dicom"], ["pacs"]])
def test_groups_without_subcommand_are_usage_errors(args, capsys):
    assert main(args) == 2
