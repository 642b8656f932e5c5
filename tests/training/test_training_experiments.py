"""``compare`` and ``tune`` on a tiny budget produce their tables; CLI parsers wire them."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import pytest
import yaml

from liverseg.errors import ConfigError
from liverseg.training.compare import compare
from liverseg.training.config_io import load_config
from liverseg.training.tune import parse_grid, tune

TINY_TRAIN = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4}


def test_compare_tables(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    paths = []
    for name, stage, sampling in (
        ("net_a", {"stage": "single"}, {"mode": "slice"}),
        ("net_b", {"stage": "tumor", "crop_margin_mm": 8}, {"mode": "liver_box", "size": 48}),
    ):
        cfg = tiny_config(
            phantom_dir, tmp_path / "cache", name=name, stage=stage, sampling=sampling, train=TINY_TRAIN
        )
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(cfg))
    result = compare(paths, tmp_path / "cmp", folds=1, budget_minutes=0.5)
    out = tmp_path / "cmp"
    for name in (
        "compare.md",
        "compare.csv",
        "compare_cases.csv",
        "compare_cases.md",
        "compare.png",
        "compare.json",
    ):
        assert (out / name).is_file(), name
    md = (out / "compare.md").read_text()
    assert "| net_a | unet | single |" in md and "| net_b | unet | tumor |" in md and "±" in md
    rows = list(csv.DictReader((out / "compare_cases.csv").open()))
    assert len(rows) == 4  # 2 networks x 2 held-out cases of fold 0
    assert {r["case"] for r in rows} == {"synth_002", "synth_003"}
    for r in rows:
        assert 0.0 <= float(r["liver_dice"]) <= 1.0 and float(r["ms_per_slice"]) > 0
    summary = {r["network"]: r for r in result["summary"]}
    assert summary["net_a"]["params_M"] > 0 and summary["net_a"]["gflops"] > 0
    assert summary["net_a"]["train_s_per_epoch"] > 0 and summary["net_a"]["cases"] == 2
    assert summary["net_a"]["train_steps"] >= 1 and summary["net_a"]["train_ms_per_step"] > 0
    with pytest.raises(ConfigError, match="--folds"):
        compare(paths, tmp_path / "cmp2", folds=9)


def test_tune_grid(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    cfg_path = tmp_path / "base.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(phantom_dir, tmp_path / "cache", train=TINY_TRAIN)))
    grid = parse_grid(["lr=1e-2,1e-3", "batch_size=2,4"])
    assert grid == {"optim.lr": ["1e-2", "1e-3"], "train.batch_size": ["2", "4"]}
    result = tune(cfg_path, grid, tmp_path / "tune", budget_minutes=0.5)
    out = tmp_path / "tune"
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and {(r["optim.lr"], r["train.batch_size"]) for r in rows} == {
        ("1e-2", "2"),
        ("1e-2", "4"),
        ("1e-3", "2"),
        ("1e-3", "4"),
    }
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # best first
    best = load_config(out / "best_config.yaml")
    assert best.optim.lr == pytest.approx(float(rows[0]["optim.lr"])) and best.train.batch_size == int(
        rows[0]["train.batch_size"]
    )
    assert best.name == "tiny" and best.train.budget_minutes is None
    assert "Best trial" in (out / "results.md").read_text() and result["best"]["trial"] == int(
        rows[0]["trial"]
    )


def test_tune_rejects_bad_grid_before_training(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    cfg_path = tmp_path / "base.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(phantom_dir, tmp_path / "cache")))
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        tune(cfg_path, parse_grid(["batch_size=4,many"]), tmp_path / "t")
    with pytest.raises(ConfigError, match=r"optim\.nope"):
        tune(cfg_path, parse_grid(["optim.nope=1"]), tmp_path / "t")
    with pytest.raises(ConfigError, match="--grid"):
        parse_grid(["lr"])
    assert not (tmp_path / "t").exists()


def test_cli_parsers() -> None:
    from liverseg.cli import experiments

    parser = argparse.ArgumentParser()
    experiments.register(parser.add_subparsers())
    a = parser.parse_args(
        ["compare", "--configs", "a.yaml", "b.yaml", "--folds", "2", "--budget-minutes", "5"]
    )
    assert a.func is experiments.run_compare and a.folds == 2 and a.budget_minutes == 5.0
    t = parser.parse_args(
        ["tune", "--config", "a.yaml", "--grid", "lr=1e-3,1e-4", "size=128,256", "--optuna", "3"]
    )
    assert t.func is experiments.run_tune and t.grid == ["lr=1e-3,1e-4", "size=128,256"] and t.optuna == 3
