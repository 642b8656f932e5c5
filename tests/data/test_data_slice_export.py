"""``liverseg data prepare --format slice-export``: spacing CSV, estimates, quality flags, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _helpers_slice_export import synthetic_volume, write_export
from liverseg.data.cases import LayoutOptions
from liverseg.data.prepare import prepare_dataset
from liverseg.data.slice_export import is_full_quality, read_spacing_csv
from liverseg.data.spacing_estimate import (
    DEFAULT_REFERENCE,
    AnatomyReference,
    calibrate,
    estimate_spacing,
    measure_anatomy,
    orientation_warnings,
)
from liverseg.data.splits import make_splits
from liverseg.errors import ConfigError, InputError

CSV_HEADER = "volume,same_patient_as,z_spacing_mm,inplane_spacing_mm,spacing_status,spacing_source,use\n"


def _export(root: Path, n_known: int = 3) -> Path:
    """Volumes 1..n_known with a CSV spacing, volume 9 without, volume 7 excluded."""
    rows = []
    for v in range(1, n_known + 1):
        hu, lab = synthetic_volume(20, 96, body_px=38 + v, seed=v)
        write_export(root, f"volume-{v}", hu, lab)
        rows.append(f"{v},,1.5,0.8,verified,test,train\n")
    hu, lab = synthetic_volume(20, 96, body_px=40, seed=9)
    write_export(root, "volume-9", hu, lab)
    hu, lab = synthetic_volume(6, 96, seed=7)
    write_export(root, "volume-7", hu, lab)
    rows.append("7,3D-IRCADb-01 patient 4,1.6,0.78,verified,test,exclude: duplicate patient\n")
    rows.append("2,3D-IRCADb-01 patient 12,1.5,0.8,verified,test,train\n")  # overrides volume 2's row
    csv = root / "volumes.csv"
    csv.write_text(CSV_HEADER + "".join(rows))
    return csv


def _options(csv: Path | None, **kw) -> LayoutOptions:
    return LayoutOptions(window_hu=(-40, 160), channel="G", spacing_csv=csv, case_prefix="lits", **kw)


def test_prepare_records_quality_spacing_and_patients(tmp_path: Path) -> None:
    src = tmp_path / "src"
    csv = _export(src)
    ds = prepare_dataset(src, tmp_path / "out", "slice-export", options=_options(csv))
    assert ds.case_ids == ["lits_1", "lits_2", "lits_3", "lits_9"]  # volume 7 excluded by the CSV
    c1 = ds.case("lits_1")
    assert c1.spacing_zyx_mm == pytest.approx((3.0, 0.8, 0.8))  # every 2nd slice: 2 x 1.5 mm
    q = c1.extra["image_quality"]
    assert q["full_quality"] is False and q["lossy"] == "JPEG" and q["window_hu"] == [-40.0, 160.0]
    assert q["slice_step"] == 2 and q["spacing_status"] == "verified"
    assert not is_full_quality(c1.extra)
    assert ds.case("lits_2").patient_id == "ircadb_12"  # same patient as a 3D-IRCADb case
    c9 = ds.case("lits_9")
    assert c9.extra["image_quality"]["spacing_status"] == "estimated"
    assert any("spacing estimated" in w for w in c9.extra["warnings"])
    # the estimate is calibrated on the known volumes (same synthetic anatomy): close to their spacing
    assert c9.spacing_zyx_mm[1] == pytest.approx(0.8, rel=0.15)
    assert c9.spacing_zyx_mm[0] == pytest.approx(3.0, rel=0.25)
    assert c1.hu_range["min"] >= -40 and c1.hu_range["max"] <= 160
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["source_format"] == "slice-export"


def test_slice_export_needs_a_window(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _export(src)
    with pytest.raises(ConfigError, match="--window"):
        prepare_dataset(src, tmp_path / "out", "slice-export", options=LayoutOptions())
    with pytest.raises(ConfigError, match="slice-export only"):
        prepare_dataset(src, tmp_path / "o2", "lits", options=_options(None))


def test_missing_labels_and_gaps_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    hu, lab = synthetic_volume(6, 48)
    write_export(src, "volume-5", hu, lab, skip=(2,))
    with pytest.raises(InputError, match="missing"):
        prepare_dataset(src, tmp_path / "out", "slice-export", options=_options(None, spacing_zyx=(1, 1, 1)))
    next(iter((src / "train_masks").glob("*_slice_0_mask.png"))).unlink()
    with pytest.raises(InputError, match="without a label"):
        prepare_dataset(src, tmp_path / "o2", "slice-export", options=_options(None, spacing_zyx=(1, 1, 1)))


def test_spacing_csv_errors_name_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    csv.write_text(CSV_HEADER + "3,,abc,0.7,,,train\n")
    with pytest.raises(InputError, match="line 2 z_spacing_mm"):
        read_spacing_csv(csv)
    csv.write_text("volume,z\n1,2\n")
    with pytest.raises(InputError, match="expected CSV columns"):
        read_spacing_csv(csv)


def test_estimate_inverts_a_known_anatomy() -> None:
    hu, lab = synthetic_volume(30, 128, body_px=50)
    anatomy = measure_anatomy(hu, lab)
    assert anatomy is not None
    assert anatomy.body_width_px == pytest.approx(101, abs=3)
    assert anatomy.liver_centroid_x_fraction < 0.5 and anatomy.liver_mass_z_fraction > 0.5
    assert orientation_warnings(anatomy) == []
    # a reference built from this very anatomy at 0.7 mm / 2 mm slices (step 2) gives them back
    ref = AnatomyReference(anatomy.body_width_px * 0.7, anatomy.liver_slices * 2 * 2.0, 1, "test")
    z, inplane = estimate_spacing(anatomy, 2, ref)
    assert (z, inplane) == pytest.approx((2.0, 0.7), rel=1e-3)


def test_orientation_warnings_for_mirrored_or_reversed_stacks() -> None:
    hu, lab = synthetic_volume(30, 96)
    flipped = measure_anatomy(hu[::-1, :, ::-1], lab[::-1, :, ::-1])
    warnings = orientation_warnings(flipped)
    assert len(warnings) == 2 and "mirrored" in warnings[0] and "head->feet" in warnings[1]


def test_calibrate_needs_three_known_volumes() -> None:
    hu, lab = synthetic_volume(20, 96)
    a = measure_anatomy(hu, lab)
    assert a is not None
    assert calibrate([(a, 0.8, 1.5, 2)] * 2) is DEFAULT_REFERENCE
    ref = calibrate([(a, 0.8, 1.5, 2)] * 3)
    assert ref.body_width_mm == pytest.approx(a.body_width_px * 0.8, abs=0.1)
    assert ref.liver_cc_mm == pytest.approx(a.liver_slices * 2 * 1.5, abs=0.1)


def test_splits_put_full_quality_cases_in_every_fold(tmp_path: Path) -> None:
    from liverseg.data.records import CaseInfo

    def case(cid: str, fq: bool, tumor: bool) -> CaseInfo:
        extra = {} if fq else {"image_quality": {"full_quality": False}}
        return CaseInfo(
            cid, cid, "i", "l", "s", (1, 1, 1), (1.0, 1.0, 1.0), {}, 1.0, 1.0 if tumor else 0.0,
            int(tumor), "a", "b", {}, extra,
        )  # fmt: skip

    cases = [case(f"fq{i}", True, i < 3) for i in range(5)] + [
        case(f"ex{i}", False, i % 5 != 0) for i in range(20)
    ]
    splits = make_splits(cases, folds=5, seed=0)
    for _, val in splits.folds:
        assert sum(c.startswith("fq") for c in val) == 1
    assert sorted(c for _, val in splits.folds for c in val) == sorted(c.id for c in cases)
    # an all-full-quality dataset is split exactly as the tumor-only stratification of liverseg 0.1
    # split it (values computed with that release's make_splits)
    only_fq = [case(f"p{i}", True, i % 2 == 0) for i in range(8)]
    s = make_splits(only_fq, folds=3, seed=3, test_fraction=0.25)
    assert s.folds == (
        (("p0", "p1", "p2", "p5"), ("p3", "p4")),
        (("p0", "p3", "p4", "p5"), ("p1", "p2")),
        (("p1", "p2", "p3", "p4"), ("p0", "p5")),
    )
    assert s.test == ("p6", "p7")
