"""Typed config: YAML round trip, --set overrides with type checks, errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from liverseg.errors import ConfigError
from liverseg.training.config import TrainConfig
from liverseg.training.config_io import (
    apply_overrides,
    config_from_dict,
    is_cascade_file,
    load_cascade,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_round_trip_equal(tmp_path: Path) -> None:
    cfg = config_from_dict(
        {
            "name": "x",
            "model": {"name": "resunet", "kwargs": {"features": 16}},
            "stage": {
                "stage": "tumor",
                "spacing_zyx": [None, 0.8, 0.8],
                "window": [60, 300],
                "crop_margin_mm": 15,
            },
            "sampling": {"mode": "liver_box", "size": 192},
            "augment": {"synthetic_lesions": {"p": 0.3, "params": {"count": [1, 3]}}},
            "loss": {"name": "tversky", "class_weights": [0.2, 1, 2]},
            "train": {"budget_minutes": 30, "patience": None},
        }
    )
    path = save_config(cfg, tmp_path / "c.yaml")
    again = load_config(path)
    assert again == cfg
    assert again.stage.spacing_zyx == (None, 0.8, 0.8)
    assert isinstance(again.stage.crop_margin_mm, float) and again.loss.class_weights == (0.2, 1.0, 2.0)
    assert again.spec.classes == ("background", "liver", "tumor") and again.spec.in_channels == 3


def test_named_window() -> None:
    cfg = config_from_dict({"stage": {"window": "abdomen"}})
    assert cfg.spec.window == (40.0, 350.0) and cfg.to_dict()["stage"]["window"] == "abdomen"
    with pytest.raises(ConfigError, match=r"stage\.window: unknown HU window"):
        config_from_dict({"stage": {"window": "brain-ish"}})


def test_defaults_and_spec() -> None:
    cfg = TrainConfig()
    assert cfg.spec.stage == "single" and cfg.augment.flip_left_right is False
    liver = config_from_dict({"stage": {"stage": "liver"}})
    assert liver.spec.classes == ("background", "liver") and liver.spec.out_channels == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"optim": {"learning_rate": 1e-3}}, "optim.learning_rate"),
        ({"trian": {}}, "trian"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"train": {"batch_size": 8.5}}, "train.batch_size"),
        ({"train": {"amp": True}}, "train.amp"),
        ({"augment": {"flip_left_right": "yes"}}, "augment.flip_left_right"),
        ({"stage": {"stage": "kidney"}}, "stage.stage"),
        ({"stage": {"spacing_zyx": [1.0, 2.0]}}, "stage.spacing_zyx"),
        ({"sampling": {"liver_fraction": 1.5}}, "sampling.liver_fraction"),
        ({"sampling": {"liver_fraction": 0.8, "tumor_fraction": 0.5}}, "sampling.tumor_fraction"),
        ({"stage": {"stage": "liver", "classes": ["background", "liver", "tumor"]}}, "stage.classes"),
        ({"augment": {"synthetic_lesions": {"p": 2}}}, "augment.synthetic_lesions.p"),
        ({"sampling": {"mode": "liver_box"}}, "sampling.mode"),
        ({"data": {"fold": -1}}, "data.fold"),
    ],
)
def test_bad_values_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_from_dict(data)


def test_set_overrides_typed(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", {"name": "base", "optim": {"lr": 0.01}})
    cfg = load_config(
        path,
        [
            "optim.lr=1e-4",
            "train.batch_size=4",
            "model.name=mobileunet",
            "stage.spacing_zyx=[null, 2.5, 2.5]",
            "train.budget_minutes=null",
            "model.kwargs.width_mult=0.5",
            "name=123",
        ],
    )
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.train.batch_size == 4
    assert cfg.model.name == "mobileunet" and cfg.model.kwargs == {"width_mult": 0.5}
    assert cfg.stage.spacing_zyx == (None, 2.5, 2.5) and cfg.train.budget_minutes is None
    assert cfg.name == "123"  # a str field keeps the text


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("train.batch_size=big", "train.batch_size"),
        ("train.batch_size=2.5", "train.batch_size"),
        ("optim.lr=abc", "optim.lr"),
        ("train.nope=1", "train.nope"),
        ("optim.lr.x=1", "optim.lr.x"),
        ("train.epochs", "key=value"),
    ],
)
def test_set_errors(tmp_path: Path, item: str, field: str) -> None:
    path = _write(tmp_path / "c.yaml", {})
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(path, [item])


def test_apply_overrides_does_not_mutate() -> None:
    raw = {"optim": {"lr": 0.1}}
    out = apply_overrides(raw, ["optim.lr=0.2"])
    assert raw == {"optim": {"lr": 0.1}} and out["optim"]["lr"] == 0.2


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    from liverseg.errors import InputError

    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_cascade_file(tmp_path: Path) -> None:
    _write(tmp_path / "l.yaml", {"name": "l", "stage": {"stage": "liver"}})
    _write(tmp_path / "t.yaml", {"name": "t", "stage": {"stage": "tumor"}, "sampling": {"mode": "liver_box"}})
    casc = _write(tmp_path / "c.yaml", {"cascade": {"stage1": "l.yaml", "stage2": "t.yaml"}})
    assert is_cascade_file(casc)
    c = load_cascade(casc, ["train.epochs=3", "stage2.optim.lr=0.5"])
    assert c.stage1.train.epochs == 3 and c.stage2.train.epochs == 3
    assert c.stage2.optim.lr == 0.5 and c.stage1.optim.lr != 0.5
    swapped = _write(tmp_path / "s.yaml", {"cascade": {"stage1": "t.yaml", "stage2": "l.yaml"}})
    with pytest.raises(ConfigError, match="stage1 must be a 'liver' stage"):
        load_cascade(swapped)
    with pytest.raises(ConfigError, match="cascade config"):
        load_config(casc)


def test_shipped_configs_load() -> None:
    files = sorted((REPO / "configs").glob("*.yaml"))
    assert {"cascade.yaml", "cascade_liver.yaml", "cascade_tumor.yaml", "phantom_smoke.yaml"} <= {
        f.name for f in files
    }
    from liverseg.models import MODELS

    names = set()
    for f in files:
        if is_cascade_file(f):
            c = load_cascade(f)
            assert c.stage1.spec.stage == "liver" and c.stage2.spec.stage == "tumor"
        else:
            names.add(load_config(f).model.name)
    assert set(MODELS) <= names  # one comparison config per network


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"optim": {"lr": "fast"}}, "optim.lr: expected float, got 'fast' (str)"),
        ({"train": {"batch_size": 8.5}}, "train.batch_size: expected int, got 8.5 (float)"),
        ({"augment": {"flip_left_right": "yes"}}, "augment.flip_left_right: expected bool, got 'yes' (str)"),
        ({"train": {"amp": True}}, "train.amp: expected 'auto' | 'bf16' | 'fp16' | 'off', got True (bool)"),
        (
            {"stage": {"spacing_zyx": [1.0, 2.0]}},
            "stage.spacing_zyx: expected list [float | null, float, float], got [1.0, 2.0] (list)",
        ),
        ({"stage": {"window": 5}}, "stage.window: expected list [float, float] | str, got 5 (int)"),
        ({"augment": {"p_phase": 1.5}}, "augment.p_phase: expected a probability in [0, 1], got 1.5"),
        (
            {"augment": {"export_quality": [90, 80]}},
            "augment.export_quality: expected JPEG qualities 1 <= low <= high <= 95, got (90, 80)",
        ),
        (
            {"sampling": {"negative_fraction": "half"}},
            "sampling.negative_fraction: expected float, got 'half' (str)",
        ),
        ({"model": {"kwargs": [1]}}, "model.kwargs: expected mapping, got [1] (list)"),
        ({"optim": 3}, "optim: expected mapping (section), got 3 (int)"),
        (
            {"optim": {"learning_rate": 1e-3}},
            "unknown key 'optim.learning_rate' (valid keys of optim: name, lr, weight_decay, momentum, "
            "nesterov, grad_clip)",
        ),
        (
            {"sampling": {"mode": "liver_box"}},
            "sampling.mode: 'liver_box' is for stage 'tumor', got stage 'single'",
        ),
    ],
)
def test_errors_are_one_line_naming_key_expected_and_received(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert str(info.value) == message


def test_set_overrides_of_unions_free_mappings_and_recent_fields(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", {"stage": {"window": "abdomen"}})
    cfg = load_config(
        path,
        [
            "stage.window=[60, 300]",
            "model.kwargs.features=32",
            "augment.p_phase=0.3",
            "augment.phase_gain=[0.8, 1.2]",
            "augment.export_quality=[80, 90]",
            "sampling.negative_fraction=0.1",
        ],
    )
    assert cfg.stage.window == (60.0, 300.0) and cfg.spec.window == (60.0, 300.0)
    assert cfg.model.kwargs == {"features": 32} and isinstance(cfg.model.kwargs["features"], int)
    assert cfg.augment.p_phase == 0.3 and cfg.augment.phase_gain == (0.8, 1.2)
    assert cfg.augment.export_quality == (80, 90) and cfg.sampling.negative_fraction == 0.1
    named = load_config(_write(tmp_path / "d.yaml", {}), ["stage.window=liver"])
    assert named.stage.window == "liver" and named.spec.window == (50.0, 400.0)
    again = load_config(save_config(cfg, tmp_path / "resolved.yaml"))
    assert again == cfg and again.to_dict() == cfg.to_dict()


def test_shipped_checkpoints_config_still_parses() -> None:
    from liverseg.training.checkpoint import load_checkpoint_dict

    paths = sorted((REPO / "src" / "liverseg" / "catalog").glob("*/*/stage*.pt"))
    assert paths, "no shipped checkpoint found"
    for path in paths:
        stored = load_checkpoint_dict(path)["config"]
        cfg = config_from_dict(stored)
        resolved = cfg.to_dict()
        for section, values in stored.items():  # every stored value survives (newer fields default)
            if isinstance(values, dict):
                assert {k: resolved[section][k] for k in values} == values, (path, section)
            else:
                assert resolved[section] == values
        assert config_from_dict(resolved) == cfg
