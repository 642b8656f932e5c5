"""``liverseg data prepare / split / stats`` through the data command group's parser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liverseg.data import load_dataset
from liverseg.errors import ConfigError


@pytest.fixture
def mrc_source(tmp_path: Path, synth) -> Path:
    img, lab = synth.phantom()
    for n, tumor in ((5, True), (6, False), (7, True), (8, False)):
        cut = lab if tumor else np.where(lab == 2, 1, lab).astype(np.uint8)
        synth.write_mrc(img.astype(np.float32).transpose(2, 1, 0).copy(), tmp_path / "src" / f"img_{n}.mrc")
        synth.write_mrc(cut.astype(np.uint16).transpose(2, 1, 0).copy(), tmp_path / "src" / f"lab_{n}.mrc")
    return tmp_path / "src"


def test_prepare_split_stats(tmp_path: Path, synth, mrc_source: Path, capsys) -> None:
    out = tmp_path / "out"
    assert (
        synth.data_cli(
            [
                "prepare",
                "--format",
                "mrc",
                str(mrc_source),
                str(out),
                "--spacing",
                "2",
                "1",
                "1",
                "--name",
                "toy",
            ]
        )
        == 0
    )
    ds = load_dataset(out)
    assert ds.name == "toy" and ds.case_ids == ["lits_5", "lits_6", "lits_7", "lits_8"]
    assert ds.case("lits_5").spacing_zyx_mm == (2.0, 1.0, 1.0)

    capsys.readouterr()
    assert synth.data_cli(["split", str(out), "--folds", "2", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("fold ") == 2 and "test 0 []" in printed
    splits = json.loads((out / "dataset.json").read_text())["splits"]
    assert splits["seed"] == 3 and len(splits["folds"]) == 2
    for fold in splits["folds"]:  # stratified: one tumor case (5 or 7) in each validation fold
        assert len({"lits_5", "lits_7"} & set(fold["val"])) == 1

    assert synth.data_cli(["stats", str(out), "--verify"]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["case", "patient", "shape_zyx", "spacing_zyx_mm"]
    row5 = next(line for line in lines if line.startswith("lits_5 "))
    liver_ml = np.count_nonzero(synth.phantom()[1]) * 2.0 / 1000
    assert row5.split()[1:3] == ["lits_5", "8x32x32"]
    assert f"{liver_ml:.1f}" in row5.split() and "-1000..60" in row5.split()
    assert row5.split()[-3] == "2"  # two tumor components
    total = next(line for line in lines if line.startswith("total:"))
    assert "4 cases" in total and "4 patients" in total and "2 with tumor" in total
    assert f"{4 * liver_ml:.1f}" in total.split()
    assert "splits: 2 folds (stratified-kfold, seed 3)" in table


def test_split_lopo_and_errors(tmp_path: Path, synth, mrc_source: Path, capsys) -> None:
    out = tmp_path / "out"
    synth.data_cli(["prepare", "--format", "mrc", str(mrc_source), str(out)])
    assert synth.data_cli(["split", str(out), "--lopo"]) == 0
    assert len(load_dataset(out).splits.folds) == 4
    assert synth.data_cli(["split", str(out), "--folds", "0", "--test-fraction", "0.25"]) == 0
    ds = load_dataset(out)
    assert len(ds.splits.folds) == 3 and len(ds.test_ids) == 1
    with pytest.raises(ConfigError, match="5 folds: the dataset has 4 patient"):
        synth.data_cli(["split", str(out), "--folds", "5"])
    with pytest.raises(ConfigError, match="--folds K"):
        synth.data_cli(["split", str(out)])
    with pytest.raises(ConfigError, match="SRC=DST"):
        synth.data_cli(["prepare", "--format", "lits", str(mrc_source), str(out), "--map", "255:1"])


def test_prepare_with_map_option(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    synth.write_itk(img, tmp_path / "src" / "volume-1.nii.gz")
    synth.write_itk(np.choose(lab, [0, 10, 20]).astype(np.uint8), tmp_path / "src" / "segmentation-1.nii.gz")
    out = tmp_path / "out"
    assert (
        synth.data_cli(
            [
                "prepare",
                "--format",
                "lits",
                str(tmp_path / "src"),
                str(out),
                "--map",
                "0=0,10=1",
                "--map",
                "20=2",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(load_dataset(out).load_case("lits_1")[1].array, lab)
