"""load_dataset / PreparedDataset, fingerprint, re-running prepare into an existing OUT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liverseg.data import compute_fingerprint, load_dataset, prepare_dataset, split_dataset
from liverseg.data.dataset import CaseInfo
from liverseg.errors import ConfigError, InputError


def _lits_tree(root: Path, synth, numbers: list[int]) -> Path:
    img, lab = synth.phantom()
    for n in numbers:
        cut = lab.copy()
        if n % 2:  # odd cases have no tumor
            cut[cut == 2] = 1
        synth.write_itk(img, root / f"volume-{n}.nii.gz")
        synth.write_itk(cut, root / f"segmentation-{n}.nii.gz")
    return root


def test_manifest_follows_the_contract(tmp_path: Path, synth) -> None:
    ds = prepare_dataset(_lits_tree(tmp_path / "src", synth, [1, 2]), tmp_path / "out", "lits", name="mini")
    doc = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert doc["name"] == "mini" and doc["format"] == "liverseg-prepared" and doc["version"] == 1
    assert doc["labels"] == {"0": "background", "1": "liver", "2": "tumor"}
    assert doc["source_format"] == "lits" and doc["created"]
    keys = {
        "id",
        "patient_id",
        "image",
        "label",
        "source",
        "shape_zyx",
        "spacing_zyx_mm",
        "hu_range",
        "liver_volume_ml",
        "tumor_volume_ml",
        "tumor_components",
        "image_sha256",
        "label_sha256",
        "mapping",
    }
    for entry in doc["cases"]:
        assert keys <= set(entry)
        assert (
            entry["image"] == f"images/{entry['id']}.nii.gz"
            and entry["label"] == f"labels/{entry['id']}.nii.gz"
        )
    assert doc["fingerprint"] == compute_fingerprint(ds.cases) == ds.fingerprint
    assert "splits" not in doc
    ds.verify()


def test_fingerprint_depends_on_ids_and_hashes_only() -> None:
    def case(cid: str, img: str, lab: str) -> CaseInfo:
        return CaseInfo(cid, cid, "i", "l", "", (1, 1, 1), (1.0, 1.0, 1.0), {}, 0.0, 0.0, 0, img, lab)

    a = [case("a", "1", "2"), case("b", "3", "4")]
    assert compute_fingerprint(a) == compute_fingerprint(a[::-1])
    assert compute_fingerprint(a) != compute_fingerprint([case("a", "1", "2"), case("b", "3", "5")])
    assert compute_fingerprint(a) != compute_fingerprint(a[:1])


def test_rerun_updates_in_place_and_keeps_ids(tmp_path: Path, synth) -> None:
    src = _lits_tree(tmp_path / "src", synth, [1, 2, 3])
    out = tmp_path / "out"
    first = prepare_dataset(src, out, "lits")
    split_dataset(out, folds=3, seed=0)
    again = prepare_dataset(src, out, "lits")
    assert again.case_ids == first.case_ids == ["lits_1", "lits_2", "lits_3"]
    assert again.fingerprint == first.fingerprint
    assert again.created == first.created
    assert again.splits is not None  # same cases: the splits survive
    # a second source adds cases; the case set changed, so the splits go
    img, lab = synth.phantom()
    synth.write_itk(img, tmp_path / "pairs" / "extra_image.nii.gz")
    synth.write_itk(lab, tmp_path / "pairs" / "extra_label.nii.gz")
    merged = prepare_dataset(tmp_path / "pairs", out, "nifti-pairs")
    assert merged.case_ids == ["extra", "lits_1", "lits_2", "lits_3"]
    assert merged.source_format == "mixed" and merged.splits is None
    assert merged.case("extra").extra["source_format"] == "nifti-pairs"
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "extra.nii.gz",
        "lits_1.nii.gz",
        "lits_2.nii.gz",
        "lits_3.nii.gz",
    ]
    # a changed source label changes that case's hash and the fingerprint
    changed = lab.copy()
    changed[changed == 2] = 1
    synth.write_itk(changed, tmp_path / "pairs" / "extra_label.nii.gz")
    updated = prepare_dataset(tmp_path / "pairs", out, "nifti-pairs")
    assert updated.case("extra").label_sha256 != merged.case("extra").label_sha256
    assert updated.case("lits_2").label_sha256 == merged.case("lits_2").label_sha256
    assert updated.fingerprint != merged.fingerprint
    assert updated.case("extra").tumor_volume_ml == 0


def test_load_case_and_folds(tmp_path: Path, synth) -> None:
    out = tmp_path / "out"
    prepare_dataset(_lits_tree(tmp_path / "src", synth, [1, 2, 3, 4]), out, "lits")
    ds = load_dataset(out)
    image, label = ds.load_case("lits_2")
    assert image.same_grid(label) and image.array.dtype == np.float32 and label.array.dtype == np.uint8
    with pytest.raises(InputError, match=r"no case 'lits_9'.*lits_1, lits_2"):
        ds.load_case("lits_9")
    with pytest.raises(ConfigError, match="no splits"):
        ds.fold(0)
    split_dataset(out, folds=2, seed=5)
    ds = load_dataset(out / "dataset.json")
    train, val = ds.fold(1)
    assert sorted(train + val) == ds.case_ids
    assert ds.test_ids == []
    with pytest.raises(ConfigError, match=r"fold 2 does not exist.*2 fold\(s\)"):
        ds.fold(2)
    with pytest.raises(ConfigError, match="fold -1 does not exist"):
        ds.fold(-1)


def test_load_dataset_errors(tmp_path: Path, synth) -> None:
    with pytest.raises(InputError, match=r"no dataset\.json"):
        load_dataset(tmp_path)
    (tmp_path / "msd").mkdir()
    (tmp_path / "msd" / "dataset.json").write_text(json.dumps({"name": "Task03", "labels": {}}))
    with pytest.raises(InputError, match="liverseg-prepared"):
        load_dataset(tmp_path / "msd")
    out = tmp_path / "out"
    prepare_dataset(_lits_tree(tmp_path / "src", synth, [1, 2]), out, "lits")
    (out / "labels" / "lits_2.nii.gz").unlink()
    with pytest.raises(InputError, match="case 'lits_2' has no label file"):
        load_dataset(out)
    doc = json.loads((out / "dataset.json").read_text())
    del doc["cases"][0]["label"]
    (out / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="case 'lits_1' has no 'label'"):
        load_dataset(out, check_files=False)


def test_verify_detects_a_changed_file(tmp_path: Path, synth) -> None:
    out = tmp_path / "out"
    prepare_dataset(_lits_tree(tmp_path / "src", synth, [1]), out, "lits")
    ds = load_dataset(out)
    ds.verify()
    _, lab = synth.phantom()
    synth.write_itk(np.zeros_like(lab), out / "labels" / "lits_1.nii.gz")
    with pytest.raises(InputError, match="changed since preparation"):
        ds.verify()


def test_records_round_trip_and_name_the_malformed_key() -> None:
    from liverseg.data.records import Splits

    entry = {
        "id": "lits_1",
        "patient_id": "lits_1",
        "image": "images/lits_1.nii.gz",
        "label": "labels/lits_1.nii.gz",
        "source": "/x",
        "shape_zyx": [3, 4, 5],
        "spacing_zyx_mm": [2.5, 0.7, 0.7],
        "hu_range": {"min": -1000, "max": 1200.5},
        "liver_volume_ml": 12,
        "tumor_volume_ml": 0.5,
        "tumor_components": 1,
        "image_sha256": "a",
        "label_sha256": "b",
        "mapping": {"1": "liver"},
        "source_format": "lits",
        "warnings": ["w"],
    }
    case = CaseInfo.from_dict(entry)
    assert case.shape_zyx == (3, 4, 5) and case.extra == {"source_format": "lits", "warnings": ["w"]}
    assert case.to_dict() == {**entry, "hu_range": {"min": -1000.0, "max": 1200.5}, "liver_volume_ml": 12.0}
    assert CaseInfo.from_dict(case.to_dict()) == case
    with pytest.raises(InputError, match=r"case 'lits_1' has a malformed entry \(shape_zyx: expected list "):
        CaseInfo.from_dict({**entry, "shape_zyx": [3, 4]})
    with pytest.raises(InputError, match=r"\(tumor_components: expected int, got 'one' \(str\)\)"):
        CaseInfo.from_dict({**entry, "tumor_components": "one"})
    with pytest.raises(InputError, match=r"liver_volume_ml: expected float"):
        CaseInfo(**{**entry, "liver_volume_ml": [1]})  # type: ignore[arg-type]

    doc = {"folds": [{"train": ["a", "b"], "val": ["c"]}], "test": ["d"], "seed": 3, "method": "x"}
    splits = Splits.from_dict(doc)
    assert splits.folds == ((("a", "b"), ("c",)),) and Splits.from_dict(splits.to_dict()) == splits
    with pytest.raises(InputError, match=r"splits\.seed: expected int, got 'x' \(str\)"):
        Splits.from_dict({**doc, "seed": "x"})
    with pytest.raises(InputError, match=r"folds\[0\] is \{'train': \['a'\]\}"):
        Splits.from_dict({**doc, "folds": [{"train": ["a"]}]})
    with pytest.raises(InputError, match=r"unknown key 'splits\.sede'"):
        Splits.from_dict({**doc, "sede": 1})
