"""Phantom datasets in the prepared-dataset layout and the ``liverseg synth`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from liverseg.cli import synth as synth_cli
from liverseg.data.dataset import CaseInfo, compute_fingerprint, load_dataset, write_dataset_json
from liverseg.errors import ConfigError, OutputError
from liverseg.synth import make_phantom, write_phantom_dataset
from liverseg.utils import sha256_file

SHAPE, SPACING = (16, 48, 48), (8.0, 8.0, 8.0)


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    synth_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_dataset_layout_loads_and_matches_the_phantoms(tmp_path: Path) -> None:
    ds = write_phantom_dataset(tmp_path / "ph", cases=3, seed=5, shape=SHAPE, spacing=SPACING)
    assert ds.case_ids == ["synth_000", "synth_001", "synth_002"]
    assert ds.fingerprint == compute_fingerprint(ds.cases)
    manifest = json.loads((tmp_path / "ph" / "dataset.json").read_text())
    assert manifest["format"] == "liverseg-prepared" and manifest["source_format"] == "synthetic"
    assert manifest["synthetic"] is True
    assert manifest["labels"] == {"0": "background", "1": "liver", "2": "tumor"}
    # every 5th case (index 1, 6, ...) is tumor-free, the others have tumors
    assert [c.has_tumor for c in ds.cases] == [True, False, True]
    for i, case in enumerate(ds.cases):
        image, label = ds.load_case(case.id)
        ref_img, ref_lab, info = make_phantom(
            np.random.default_rng([5, i]), SHAPE, SPACING, tumors=case.has_tumor
        )
        assert image.same_grid(ref_img) and label.same_grid(ref_img)
        np.testing.assert_array_equal(image.array, ref_img.array)
        np.testing.assert_array_equal(label.array, ref_lab.array)
        assert case.liver_volume_ml == pytest.approx(info["liver_volume_ml"], abs=1e-2)
        assert len(case.extra["lesions"]) == len(info["lesions"])
        assert case.image_sha256 == sha256_file(tmp_path / "ph" / case.image)
        assert case.shape_zyx == SHAPE


def test_same_seed_writes_identical_files_and_reruns_replace_phantoms(tmp_path: Path) -> None:
    a = write_phantom_dataset(tmp_path / "a", cases=2, seed=1, shape=SHAPE, spacing=SPACING)
    b = write_phantom_dataset(tmp_path / "b", cases=2, seed=1, shape=SHAPE, spacing=SPACING)
    assert a.fingerprint == b.fingerprint
    smaller = write_phantom_dataset(tmp_path / "a", cases=1, seed=1, shape=SHAPE, spacing=SPACING)
    assert smaller.case_ids == ["synth_000"]
    assert sorted(p.name for p in (tmp_path / "a" / "images").iterdir()) == ["synth_000.nii.gz"]


def test_never_overwrites_a_real_dataset(tmp_path: Path) -> None:
    real = tmp_path / "prepared"
    case = CaseInfo.from_dict(
        {
            "id": "lits_117",
            "patient_id": "lits_117",
            "image": "images/lits_117.nii.gz",
            "label": "labels/lits_117.nii.gz",
        }
    )
    write_dataset_json(
        real, name="lits", source_format="lits", created="2024-01-01T00:00:00+00:00", cases=[case]
    )
    before = (real / "dataset.json").read_text()
    with pytest.raises(OutputError, match="real data"):
        write_phantom_dataset(real, cases=1, shape=SHAPE, spacing=SPACING)
    assert (real / "dataset.json").read_text() == before and not (real / "images").exists()


def test_bad_counts_and_seeds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        write_phantom_dataset(tmp_path, cases=0)
    with pytest.raises(ConfigError, match="non-negative"):
        write_phantom_dataset(tmp_path, cases=1, seed=-3)


def test_cli_writes_the_dataset_and_prints_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    rc = _run_cli(
        [
            "synth",
            "--out",
            str(out),
            "--cases",
            "4",
            "--seed",
            "2",
            "--size",
            *map(str, SHAPE),
            "--spacing",
            *map(str, SPACING),
            "--folds",
            "2",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "synth_003" in text and "liver_ml" in text and "not patient data" in text
    ds = load_dataset(out)
    assert len(ds.cases) == 4 and ds.splits is not None and len(ds.splits.folds) == 2
    train, val = ds.fold(0)
    assert sorted(train + val) == ds.case_ids
    image, _ = ds.load_case("synth_000")
    assert image.shape == SHAPE and image.spacing == SPACING
