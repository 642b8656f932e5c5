"""Training cache: build once, reuse, invalidate on spec/fingerprint change; preflight errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liverseg.errors import ConfigError
from liverseg.training.cache import build_or_open_cache, spec_hash
from liverseg.training.config_io import config_from_dict
from liverseg.training.folds import leave_one_patient_out
from liverseg.training.slabs import StageSpec
from liverseg.training.trainer import prepare_run

SINGLE = StageSpec("single", ("background", "liver", "tumor"), 1, (None, 4.0, 4.0), (50, 400), 0.0)


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz")}


def test_build_reuse_and_manifest(phantom_dir: Path, tmp_path: Path) -> None:
    cache = build_or_open_cache(phantom_dir, tmp_path, SINGLE)
    man = json.loads((cache.folder / "manifest.json").read_text())
    dataset = json.loads((phantom_dir / "dataset.json").read_text())
    assert man["dataset_fingerprint"] == dataset["fingerprint"] and man["splits"] == dataset["splits"]
    assert [c["id"] for c in man["cases"]] == [c["id"] for c in dataset["cases"]]
    case = cache.case(cache.case_ids[0])
    assert case.image.dtype == np.int16 and case.label.dtype == np.uint8 and case.image.shape == (16, 64, 64)
    assert set(np.unique(case.label)) <= {0, 1, 2} and case.liver_slices.size > 0
    before = _mtimes(cache.folder)
    again = build_or_open_cache(phantom_dir, tmp_path, SINGLE)
    assert again.folder == cache.folder and _mtimes(again.folder) == before  # reused, not rebuilt


def test_spec_change_uses_new_cache(phantom_dir: Path, tmp_path: Path) -> None:
    a = build_or_open_cache(phantom_dir, tmp_path, SINGLE)
    coarse = StageSpec("single", SINGLE.classes, 1, (None, 8.0, 8.0), (50, 400), 0.0)
    b = build_or_open_cache(phantom_dir, tmp_path, coarse)
    assert a.folder != b.folder and b.folder.name == spec_hash(coarse, 0.0)
    assert b.case(b.case_ids[0]).image.shape == (16, 32, 32)
    assert a.case(a.case_ids[0]).image.shape == (16, 64, 64)


def test_fingerprint_change_rebuilds(phantom_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    cache = build_or_open_cache(data, tmp_path / "cache", SINGLE)
    doc = json.loads((data / "dataset.json").read_text())
    doc["fingerprint"] = "0" * 64  # the data changed
    (data / "dataset.json").write_text(json.dumps(doc))
    rebuilt = build_or_open_cache(data, tmp_path / "cache", SINGLE)
    assert rebuilt.fingerprint == "0" * 64
    assert json.loads((rebuilt.folder / "manifest.json").read_text())["dataset_fingerprint"] == "0" * 64
    assert all(rebuilt.folder.joinpath(f"{c}.npz").is_file() for c in cache.case_ids)


def test_tumor_stage_keeps_only_the_liver_box(phantom_dir: Path, tmp_path: Path) -> None:
    spec = StageSpec("tumor", SINGLE.classes, 1, (None, 2.0, 2.0), (50, 400), 8.0)
    cache = build_or_open_cache(phantom_dir, tmp_path, spec, margin_mm=12.0)
    for cid in cache.case_ids:
        case = cache.case(cid)
        assert case.label.shape[1] < 128 or case.label.shape[2] < 128  # smaller than the whole 2 mm slice
        box = case.liver_box
        assert box is not None and box[1].start > 0 and box[2].start > 0  # margin around the liver kept


def test_no_data_and_no_cache(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.dir"):
        build_or_open_cache(tmp_path / "absent", tmp_path / "cache", SINGLE)


def test_fold_that_does_not_exist(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    cfg = config_from_dict(tiny_config(phantom_dir, tmp_path, data={"fold": 5}))
    with pytest.raises(ConfigError, match=r"data\.fold: fold 5 does not exist.*2 fold"):
        prepare_run(cfg, tmp_path / "run")
    cfg = config_from_dict(tiny_config(phantom_dir, tmp_path, data={"val_ids": ["nope"]}))
    with pytest.raises(ConfigError, match=r"data\.val_ids: unknown case"):
        prepare_run(cfg, tmp_path / "run")


def test_dataset_without_labels(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    doc = json.loads((data / "dataset.json").read_text())
    (data / doc["cases"][0]["label"]).unlink()
    cfg = config_from_dict(tiny_config(data, tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"data\.dir: .*no label file"):
        prepare_run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written before the failure


def test_dataset_with_empty_labels(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    import SimpleITK as sitk

    from liverseg.data.dataset import CaseInfo, load_dataset, write_dataset_json
    from liverseg.utils import sha256_file

    data = tmp_path / "data"
    shutil.copytree(phantom_dir, data)
    ds = load_dataset(data)
    cases = []
    for c in ds.cases:
        img = sitk.ReadImage(str(data / c.label))
        sitk.WriteImage(img * 0, str(data / c.label))
        cases.append(CaseInfo.from_dict({**c.to_dict(), "label_sha256": sha256_file(data / c.label)}))
    write_dataset_json(data, name="empty", source_format="x", created="now", cases=cases, splits=ds.splits)
    cfg = config_from_dict(tiny_config(data, tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"data\.dir: the training cases have no liver label"):
        prepare_run(cfg, tmp_path / "run")


def test_leave_one_patient_out_without_splits() -> None:
    folds = leave_one_patient_out({"a1": "A", "a2": "A", "b": "B", "c": "C"}, exclude=["c"])
    assert folds == [(["b"], ["a1", "a2"]), (["a1", "a2"], ["b"])]
