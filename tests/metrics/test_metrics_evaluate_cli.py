"""``liverseg evaluate`` on temporary folders: matching, prepared datasets, missing cases, grids."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from liverseg.cli import evaluate as evaluate_cli
from liverseg.errors import GeometryError, InputError
from liverseg.metrics.runner import evaluate_folders


def _write(path: Path, labels: np.ndarray, spacing_zyx=(2.0, 0.8, 0.8), origin=(0.0, 0.0, 0.0)) -> None:
    img = sitk.GetImageFromArray(labels.astype(np.uint8))
    img.SetSpacing(tuple(reversed(spacing_zyx)))
    img.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


def _labels(shift: int = 0, tumor: bool = True) -> np.ndarray:
    a = np.zeros((10, 32, 32), dtype=np.uint8)
    a[2:8, 4 + shift : 28, 4:28] = 1
    if tumor:
        a[3:6, 10:16, 10:16] = 2
    return a


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    evaluate_cli.register(sub)
    args = parser.parse_args(["evaluate", *argv])
    args.debug, args.quiet = False, True
    return args


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    _write(ref / "case_a.nii.gz", _labels())
    _write(ref / "case_b.nrrd", _labels(tumor=False))
    _write(ref / "case_c.mha", _labels())  # no prediction
    _write(pred / "case_a.nii.gz", _labels(shift=2))
    _write(pred / "case_b.nii", _labels(tumor=True))  # false-positive tumor
    _write(pred / "case_z.nii.gz", _labels())  # no reference
    (pred / "notes.txt").write_text("ignored")
    return pred, ref


def test_cli_prints_table_and_writes_csv_json(folders, tmp_path, capsys):
    pred, ref = folders
    out_csv, out_json = tmp_path / "out" / "m.csv", tmp_path / "out" / "m.json"
    assert (
        evaluate_cli.run(
            _parse(["--pred", str(pred), "--ref", str(ref), "--csv", str(out_csv), "--json", str(out_json)])
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "case_a" in text and "case_b" in text and "mean +- std" in text and "global Dice" in text
    assert "missing predictions (1): case_c" in text
    assert "predictions without reference (1): case_z" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["case"] for r in rows] == ["case_a", "case_b"]
    assert float(rows[0]["liver_hd95"]) == pytest.approx(2 * 0.8)
    assert rows[1]["tumor_assd"] == "inf" and float(rows[1]["tumor_dice"]) == 0.0
    data = json.loads(out_json.read_text())  # strict JSON: inf became null
    assert data["cases"][1]["tumor"]["assd"] is None
    assert data["missing_in_pred"] == ["case_c"] and data["missing_in_ref"] == ["case_z"]
    assert data["summary"]["metrics"]["tumor_assd"]["n_excluded"] == 1
    assert data["summary"]["lesion_detection"]["n_false_positive"] == 1


def test_prepared_dataset_as_reference(tmp_path):
    ds, pred = tmp_path / "prepared", tmp_path / "pred"
    _write(ds / "labels" / "p1.nii.gz", _labels())
    _write(ds / "images" / "p1.nii.gz", _labels() * 40)
    (ds / "dataset.json").write_text(json.dumps({"format": "liverseg-prepared", "cases": []}))
    _write(pred / "p1.nii.gz", _labels())
    run = evaluate_folders(pred, ds)
    assert [c["case"] for c in run.cases] == ["p1"]
    assert run.cases[0]["liver"]["dice"] == 1.0 and run.summary["global_dice"]["tumor"] == 1.0


def test_mismatched_grid_is_refused_naming_case_and_grids(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    _write(ref / "ok.nii.gz", _labels())
    _write(pred / "ok.nii.gz", _labels())
    _write(ref / "bad.nii.gz", _labels())
    _write(pred / "bad.nii.gz", _labels(), spacing_zyx=(2.5, 0.8, 0.8))
    with pytest.raises(GeometryError) as err:
        evaluate_folders(pred, ref)
    msg = str(err.value)
    assert "'bad'" in msg and "'ok'" not in msg
    assert "spacing (2.5, 0.8, 0.8)" in msg and "spacing (2, 0.8, 0.8)" in msg
    # shape differences too
    _write(pred / "bad.nii.gz", _labels()[1:])
    with pytest.raises(GeometryError, match=r"shape \(9, 32, 32\).*shape \(10, 32, 32\)"):
        evaluate_folders(pred, ref)


def test_no_shared_case_and_bad_values(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    _write(ref / "a.nii.gz", _labels())
    _write(pred / "b.nii.gz", _labels())
    with pytest.raises(InputError, match="no case name is shared"):
        evaluate_folders(pred, ref)
    _write(pred / "a.nii.gz", _labels() * 100)
    with pytest.raises(InputError, match=r"a\.nii\.gz: expected a label map with values in"):
        evaluate_folders(pred, ref)
    with pytest.raises(InputError, match="no such folder"):
        evaluate_folders(tmp_path / "missing", ref)


def test_through_the_main_entry_point(folders, capsys, monkeypatch):
    """Exit code 1 and a one-line error naming the case for a grid mismatch, via ``liverseg``'s main
    (registered alone, so the test does not depend on the other command modules)."""
    from liverseg.cli import main

    monkeypatch.setattr(main, "COMMAND_MODULES", ("evaluate",))
    pred, ref = folders
    assert main.main(["-q", "evaluate", "--pred", str(pred), "--ref", str(ref)]) == 0
    assert "global Dice" in capsys.readouterr().out
    _write(pred / "case_a.nii.gz", _labels(), origin=(5.0, 0.0, 0.0))
    assert main.main(["-q", "evaluate", "--pred", str(pred), "--ref", str(ref)]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("liverseg: error:") and "case_a" in last and "origin (5, 0, 0)" in last
    assert "Traceback" not in err
