"""End-to-end training on phantoms: it learns, resumes exactly, writes its run folder, runs from
the cache alone, stops on budget/patience, and trains a cascade through the CLI."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from liverseg.errors import ConfigError
from liverseg.training.checkpoint import load_checkpoint, load_checkpoint_dict
from liverseg.training.config_io import config_from_dict, load_config
from liverseg.training.evaluation import validate
from liverseg.training.runlog import RunLogger
from liverseg.training.trainer import prepare_run, train


def test_training_learns(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    """About 20 s on one CPU thread: validation liver Dice (per volume) rises far above its start."""
    cfg = config_from_dict(
        tiny_config(
            phantom_dir,
            tmp_path / "cache",
            stage={"stage": "liver"},
            augment={"enabled": True},
            train={"epochs": 6, "steps_per_epoch": 8, "batch_size": 8},
        )
    )
    torch.manual_seed(cfg.train.seed)  # the trainer seeds the same way before building the model
    run = prepare_run(cfg, tmp_path / "run")
    start = validate(run.model, run.val_cases, cfg.spec, device=torch.device("cpu"))["dice_liver"]
    summary = train(cfg, tmp_path / "run")
    assert summary["monitor"] == "dice_liver" and summary["epochs_run"] == 6
    best = summary["best_metrics"]["dice_liver"]
    assert best > 0.6 and best > start + 0.4, (start, best)


def test_run_folder_and_checkpoints(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    cfg = config_from_dict(tiny_config(phantom_dir, tmp_path / "cache"))
    summary = train(cfg, tmp_path / "run", half_weights=True)
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt", "config.yaml", "log.csv", "curves.png", "summary.json"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_config(run / "config.yaml") == cfg
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and all(r["dice_liver"] for r in rows)
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2 == summary["epochs_run"]

    loaded = load_checkpoint(run / "best.pt")
    assert loaded.spec == cfg.spec and not loaded.model.training
    meta = loaded.meta
    assert meta["model_name"] == "unet" and meta["weights_dtype"] == "float16"
    assert meta["dataset_fingerprint"] == summary["dataset_fingerprint"] and meta["code_version"]
    assert (
        meta["config"] == cfg.to_dict()
        and "dice_liver" in meta["metrics"]
        and meta["hardware"]["device"] == "cpu"
    )
    last = load_checkpoint_dict(run / "last.pt")
    assert last["weights_dtype"] == "float32" and "optimizer" in last["training_state"]
    assert (run / "best.pt").stat().st_size < 0.75 * (run / "last.pt").stat().st_size - 0  # fp16 + no state
    x = torch.rand(2, 3, 40, 40)
    assert loaded.model(x).shape == (2, 3, 40, 40)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_dict(path)["state_dict"]


@pytest.mark.parametrize("on_device", [False, True], ids=["cpu-augment", "on-device-augment"])
def test_resume_equals_uninterrupted(
    phantom_dir: Path, tmp_path: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch, on_device: bool
) -> None:
    raw = tiny_config(
        phantom_dir,
        tmp_path / "cache",
        augment={"enabled": True, "p_noise": 0.5, "on_device": on_device},
        model={"kwargs": {"features": 8, "depth": 2, "dropout": 0.3}},
        schedule={"name": "cosine", "warmup_epochs": 0.5},
        train={"epochs": 3, "steps_per_epoch": 2, "batch_size": 4},
    )
    cfg = config_from_dict(raw)
    train(cfg, tmp_path / "full")

    original = RunLogger.log_epoch

    def crash_after_epoch_1(self: RunLogger, row: dict[str, Any]) -> None:
        original(self, row)
        if row["epoch"] == 1:
            raise KeyboardInterrupt  # the job dies right after epoch 1 was saved

    monkeypatch.setattr(RunLogger, "log_epoch", crash_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed")
    monkeypatch.setattr(RunLogger, "log_epoch", original)
    assert load_checkpoint_dict(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    train(cfg, tmp_path / "resumed", resume=True)

    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "resumed" / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    rows = list(csv.DictReader((tmp_path / "resumed" / "log.csv").open()))
    full_rows = list(csv.DictReader((tmp_path / "full" / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [float(r["train_loss"]) for r in rows] == pytest.approx(
        [float(r["train_loss"]) for r in full_rows]
    )

    changed = config_from_dict(raw, ["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"--resume: optim\.lr"):
        train(changed, tmp_path / "resumed", resume=True)
    with pytest.raises(ConfigError, match="--resume: no"):
        train(cfg, tmp_path / "never", resume=True)


def test_train_from_cache_without_dataset(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    cfg = config_from_dict(tiny_config(data, tmp_path / "cache", train={"epochs": 1, "steps_per_epoch": 1}))
    first = train(cfg, tmp_path / "run1")
    shutil.rmtree(data)  # the cache travels to a GPU machine without the raw data
    second = train(cfg, tmp_path / "run2")
    assert second["dataset_fingerprint"] == first["dataset_fingerprint"]
    assert second["split"] == first["split"]
    assert (
        load_checkpoint(tmp_path / "run2" / "best.pt").meta["dataset_fingerprint"]
        == first["dataset_fingerprint"]
    )


def test_budget_and_early_stopping(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    cfg = config_from_dict(
        tiny_config(
            phantom_dir,
            tmp_path / "cache",
            train={"epochs": 50, "steps_per_epoch": 50, "budget_minutes": 0.0001},
        )
    )
    s = train(cfg, tmp_path / "budget")
    assert s["stopped"] == "budget" and s["epochs_run"] == 1 and s["steps"] == 1
    assert (tmp_path / "budget" / "best.pt").is_file()
    cfg = config_from_dict(
        tiny_config(
            phantom_dir,
            tmp_path / "cache",
            optim={"lr": 1e-12},
            train={"epochs": 20, "steps_per_epoch": 1, "patience": 2},
        )
    )
    s = train(cfg, tmp_path / "patience")
    # stops after `patience` validations without improvement on the best one
    assert s["stopped"] == "early_stopping" and s["epochs_run"] == s["best_epoch"] + 1 + 2 < 20


def test_cli_trains_a_cascade(
    phantom_dir: Path, tmp_path: Path, tiny_config: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from liverseg.cli import train as cli_train

    base = {"train": {"epochs": 1, "steps_per_epoch": 1}}
    liver = tiny_config(
        phantom_dir,
        tmp_path / "cache",
        name="s1",
        stage={"stage": "liver", "spacing_zyx": [None, 8.0, 8.0]},
        **base,
    )
    tumor = tiny_config(
        phantom_dir,
        tmp_path / "cache",
        name="s2",
        sampling={"mode": "liver_box", "size": 48},
        stage={"stage": "tumor", "spacing_zyx": [None, 4.0, 4.0], "crop_margin_mm": 8},
        **base,
    )
    (tmp_path / "l.yaml").write_text(yaml.safe_dump(liver))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tumor))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"cascade": {"stage1": "l.yaml", "stage2": "t.yaml"}}))
    parser = argparse.ArgumentParser()
    cli_train.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "train",
            "--config",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "train.batch_size=4",
            "--set",
            "stage2.optim.lr=0.002",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "stage1: liver" in out and "stage2: tumor" in out
    s1, s2 = (
        load_checkpoint(tmp_path / "run" / "stage1" / "best.pt"),
        load_checkpoint(tmp_path / "run" / "stage2" / "best.pt"),
    )
    assert (
        s1.spec.classes == ("background", "liver")
        and s2.spec.stage == "tumor"
        and s2.spec.crop_margin_mm == 8
    )
    assert s2.meta["config"]["optim"]["lr"] == 0.002 and s1.meta["config"]["train"]["batch_size"] == 4
    bad = parser.parse_args(["train", "--config", str(tmp_path / "l.yaml"), "--set", "train.batch_size=many"])
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        bad.func(bad)


def test_validation_is_per_volume(tmp_path: Path) -> None:
    """Mean over cases of per-volume Dice, not a mean over slices (hand-made predictions)."""
    from liverseg.training.cache import CachedCase
    from liverseg.training.slabs import StageSpec

    spec = StageSpec("liver", ("background", "liver"), 0, (None, 1.0, 1.0), (50, 400), 0.0)

    class Thresh(torch.nn.Module):  # "liver" where the windowed value > 0.5 (HU > 50)
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([0.5 - x, x - 0.5], dim=1) * 100

    label = np.zeros((4, 8, 8), np.uint8)
    label[:, 2:6, 2:6] = 1
    image = np.where(label > 0, 100, -100).astype(np.int16)
    image[0] = -100  # slice 0: liver missed (16 of 64 liver voxels)
    case = CachedCase("a", "a", image, label, (1.0, 1.0, 1.0))
    res = validate(Thresh(), [case], spec, device=torch.device("cpu"), batch_size=3)
    # per volume: 2*48 / (48 + 64) = 0.857; a mean over slices would be (0 + 1 + 1 + 1) / 4 = 0.75
    assert res["dice_liver"] == pytest.approx(96 / 112)


def test_cli_main_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the real entry point: a bad config is one line on stderr and exit code 1."""
    import logging

    from liverseg.cli.main import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lr: fast}\n")
    try:
        assert main(["train", "--config", str(bad), "--out", str(tmp_path / "run")]) == 1
        assert main(["tune", "--config", str(bad), "--grid", "lr=1e-3"]) == 1
    finally:
        root.handlers[:], root.level = handlers, level
    err = capsys.readouterr().err
    assert err.count("liverseg: error: bad.yaml: optim.lr: expected float, got 'fast' (str)") == 2
    assert not (tmp_path / "run").exists()


def test_step_timing_estimates_a_full_epoch_from_a_partial_one() -> None:
    from liverseg.training.trainer import _step_timing

    # a budget-stopped run: 30 steps in 6 s, epochs of 100 steps -> 200 ms/step, 20 s per epoch
    t = _step_timing(6.0, 30, 100)
    assert t["ms_per_step"] == 200.0 and t["seconds_per_epoch"] == 20.0
    assert _step_timing(1.0, 0, 100)["seconds_per_epoch"] is None
