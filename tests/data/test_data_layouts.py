"""Prepare each file-based source layout from synthetic trees and check what lands in OUT."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from liverseg.data import LayoutOptions, discover_cases, load_dataset, prepare_dataset
from liverseg.errors import ConfigError, GeometryError, InputError


def _read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


# --------------------------------------------------------------------------------------- LiTS
def test_lits_prepare_keeps_values_and_geometry(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    src = tmp_path / "lits"
    synth.write_itk(img, src / "batch1" / "volume-3.nii.gz")
    synth.write_itk(lab, src / "batch1" / "segmentation-3.nii.gz")
    synth.write_itk(img[:, :, ::-1].copy(), src / "batch2" / "volume-12.nii")
    synth.write_itk(lab[:, :, ::-1].copy(), src / "segs" / "segmentation-12.nii")
    out = tmp_path / "out"
    ds = prepare_dataset(src, out, "lits")
    assert ds.case_ids == ["lits_3", "lits_12"]
    image, label = ds.load_case("lits_3")
    np.testing.assert_array_equal(label.array, lab)
    np.testing.assert_array_equal(image.array, img)
    assert label.array.dtype == np.uint8
    np.testing.assert_allclose(image.spacing, (2.5, 0.8, 0.7), atol=1e-6)
    np.testing.assert_allclose(image.origin, (-10.0, 5.0, 30.0), atol=1e-6)
    assert _read(out / "images" / "lits_3.nii.gz").GetPixelID() == sitk.sitkInt16  # integral HU -> int16
    case = ds.case("lits_3")
    voxel_ml = 2.5 * 0.8 * 0.7 / 1000
    assert case.liver_volume_ml == pytest.approx(np.count_nonzero(lab) * voxel_ml, abs=1e-3)
    assert case.tumor_volume_ml == pytest.approx(72 * voxel_ml, abs=1e-3)
    assert case.tumor_components == 2
    assert case.hu_range == {"p0.5": -1000.0, "p99.5": 60.0, "min": -1000.0, "max": 60.0}
    assert case.shape_zyx == (8, 32, 32)
    assert case.mapping["values"] == {"0": 0, "1": 1, "2": 2}
    assert Path(case.source).name == "volume-3.nii.gz"
    assert case.patient_id == "lits_3"


def test_lits_missing_segmentation_is_an_error(tmp_path: Path, synth) -> None:
    img, _ = synth.phantom()
    synth.write_itk(img, tmp_path / "src" / "volume-1.nii.gz")
    with pytest.raises(InputError, match="volume-1"):
        prepare_dataset(tmp_path / "src", tmp_path / "out", "lits")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="found no volume-N"):
        discover_cases("lits", tmp_path / "empty")


def test_lits_unexpected_label_values_need_a_map(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    src = tmp_path / "src"
    synth.write_itk(img, src / "volume-7.nii.gz")
    synth.write_itk((lab > 0).astype(np.uint8) * 255, src / "segmentation-7.nii.gz")
    with pytest.raises(InputError, match="--map"):
        prepare_dataset(src, tmp_path / "out", "lits")
    ds = prepare_dataset(src, tmp_path / "out", "lits", options=LayoutOptions(value_map={0: 0, 255: 1}))
    _, label = ds.load_case("lits_7")
    np.testing.assert_array_equal(label.array, (lab > 0).astype(np.uint8))
    assert ds.case("lits_7").mapping["values"] == {"0": 0, "255": 1}
    assert ds.case("lits_7").tumor_components == 0


def test_label_on_another_grid_is_a_geometry_error(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    src = tmp_path / "src"
    synth.write_itk(img, src / "volume-1.nii.gz")
    synth.write_itk(lab, src / "segmentation-1.nii.gz", spacing_zyx=(5.0, 0.8, 0.7))
    with pytest.raises(GeometryError, match="segmentation-1"):
        prepare_dataset(src, tmp_path / "out", "lits")
    assert not (tmp_path / "out" / "labels" / "lits_1.nii.gz").exists()


# ---------------------------------------------------------------------------------------- MSD
def test_msd_maps_labels_by_name(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    src = tmp_path / "Task03_Liver"
    # a dataset whose label numbers are swapped: names decide, not numbers
    swapped = np.choose(lab, [0, 2, 1]).astype(np.uint8)
    synth.write_itk(img, src / "imagesTr" / "liver_4.nii.gz")
    synth.write_itk(swapped, src / "labelsTr" / "liver_4.nii.gz")
    (src / "imagesTr" / "._liver_4.nii.gz").write_bytes(b"macOS resource fork")
    (src / "dataset.json").write_text(
        json.dumps(
            {
                "name": "LiverSwapped",
                "labels": {"0": "background", "1": "cancer", "2": "liver"},
                "training": [{"image": "./imagesTr/liver_4.nii.gz", "label": "./labelsTr/liver_4.nii.gz"}],
            }
        )
    )
    ds = prepare_dataset(src, tmp_path / "out", "msd")
    assert ds.case_ids == ["msd_liver_4"]
    _, label = ds.load_case("msd_liver_4")
    np.testing.assert_array_equal(label.array, lab)
    assert ds.case("msd_liver_4").mapping["values"] == {"0": 0, "1": 2, "2": 1}


def test_msd_without_training_list_matches_files(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    src = tmp_path / "Task03_Liver"
    synth.write_itk(img, src / "imagesTr" / "liver_0.nii.gz")
    synth.write_itk(lab, src / "labelsTr" / "liver_0.nii.gz")
    (src / "imagesTr" / "._liver_0.nii.gz").write_bytes(b"junk")
    (src / "dataset.json").write_text(
        json.dumps({"labels": {"0": "background", "1": "liver", "2": "cancer"}})
    )
    cases = discover_cases("msd", src)
    assert [c.case_id for c in cases] == ["msd_liver_0"]
    loaded = cases[0].load()
    np.testing.assert_array_equal(loaded.label.array, lab)


def test_msd_unknown_label_name_is_an_error(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    src = tmp_path / "Task09_Spleen"
    synth.write_itk(img, src / "imagesTr" / "spleen_1.nii.gz")
    synth.write_itk(lab, src / "labelsTr" / "spleen_1.nii.gz")
    (src / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "spleen"}}))
    with pytest.raises(InputError, match="spleen"):
        discover_cases("msd", src)


# -------------------------------------------------------------------------------- nifti-pairs
def test_nifti_pairs_folders_and_suffix_forms(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    a = tmp_path / "a"
    synth.write_itk(img, a / "images" / "Case_01_0000.nii.gz")
    synth.write_itk(lab, a / "labels" / "Case_01.nii.gz")
    synth.write_itk(img, a / "images" / "case02.mha")
    synth.write_itk(lab, a / "labels" / "case02.mha")
    assert [c.case_id for c in discover_cases("nifti-pairs", a)] == ["case02", "case_01"]
    b = tmp_path / "b"
    synth.write_itk(img, b / "p1" / "scan7_image.nii.gz")
    synth.write_itk(lab, b / "p1" / "scan7_label.nii.gz")
    ds = prepare_dataset(b, tmp_path / "out", "nifti-pairs")
    assert ds.case_ids == ["scan7"]
    np.testing.assert_array_equal(ds.load_case("scan7")[1].array, lab)


def test_nifti_pairs_unmatched_image_is_an_error(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    synth.write_itk(img, tmp_path / "images" / "x.nii.gz")
    synth.write_itk(lab, tmp_path / "labels" / "y.nii.gz")
    with pytest.raises(InputError, match=r"images/x\.nii\.gz"):
        discover_cases("nifti-pairs", tmp_path)


# ---------------------------------------------------------------------------------------- MRC
def test_mrc_axes_spacing_and_assumption_warning(tmp_path: Path, synth, caplog) -> None:
    img, lab = synth.phantom((6, 10, 12))
    # the package stores nibabel's (x, y, z) order: liver (low x = patient's right) at low axis 0
    synth.write_mrc(
        img.astype(np.float32).transpose(2, 1, 0).copy(), tmp_path / "pkg" / "data" / "img_117.mrc"
    )
    synth.write_mrc(
        lab.astype(np.uint16).transpose(2, 1, 0).copy(), tmp_path / "pkg" / "data" / "lab_117.mrc"
    )
    with caplog.at_level(logging.WARNING):
        ds = prepare_dataset(tmp_path / "pkg", tmp_path / "out", "mrc")
    assert "assuming (1.0, 1.0, 1.0) mm" in caplog.text
    case = ds.case("lits_117")
    assert case.spacing_zyx_mm == (1.0, 1.0, 1.0) and case.mapping["spacing_assumed"] is True
    assert any("no voxel size" in w for w in case.extra["warnings"])
    image, label = ds.load_case("lits_117")
    assert image.shape == (6, 10, 12)
    np.testing.assert_array_equal(label.array, lab)
    np.testing.assert_array_equal(image.array, img.astype(np.float32))
    np.testing.assert_allclose(image.direction, np.eye(3))
    ds2 = prepare_dataset(
        tmp_path / "pkg", tmp_path / "out2", "mrc", options=LayoutOptions(spacing_zyx=(2.0, 0.5, 0.5))
    )
    c2 = ds2.case("lits_117")
    assert c2.spacing_zyx_mm == (2.0, 0.5, 0.5) and c2.mapping["spacing_assumed"] is False
    assert c2.liver_volume_ml == pytest.approx(case.liver_volume_ml * 0.5, rel=1e-3)


def test_spacing_option_rejected_for_formats_that_store_it(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(ConfigError, match="--spacing"):
        discover_cases("lits", tmp_path / "x", LayoutOptions(spacing_zyx=(1, 1, 1)))
    with pytest.raises(ConfigError, match="unknown format 'nifty'"):
        discover_cases("nifty", tmp_path / "x")
    with pytest.raises(InputError, match="not a folder"):
        discover_cases("lits", tmp_path / "missing")


# ----------------------------------------------------------------------------------- PNG seed
def test_png_slices_seed_encoding(tmp_path: Path, synth) -> None:
    _, lab = synth.phantom()
    case = tmp_path / "seed" / "patientA"
    (case / "images").mkdir(parents=True)
    (case / "masks").mkdir()
    for k in range(lab.shape[0]):
        Image.fromarray(np.full(lab.shape[1:], 100 + k, np.uint8)).save(case / "images" / f"slice_{k}.png")
        Image.fromarray(np.choose(lab[k], [0, 127, 255]).astype(np.uint8)).save(
            case / "masks" / f"slice_{k}.png"
        )
    ds = prepare_dataset(
        tmp_path / "seed", tmp_path / "out", "png-slices", options=LayoutOptions(spacing_zyx=(3.0, 0.7, 0.7))
    )
    assert ds.case_ids == ["png_patienta"]
    image, label = ds.load_case("png_patienta")
    np.testing.assert_array_equal(label.array, lab)
    np.testing.assert_allclose(image.spacing, (3.0, 0.7, 0.7))
    c = ds.case("png_patienta")
    assert c.mapping["values"] == {"0": 0, "127": 1, "255": 2}
    assert any("not Hounsfield" in w for w in c.extra["warnings"])
    with pytest.raises(ConfigError, match="--map"):
        discover_cases("png-slices", tmp_path / "seed", LayoutOptions(value_map={1: 1}))


# -------------------------------------------------------------------------------------- CHAOS
def test_chaos_case_masks_follow_file_index(tmp_path: Path, synth) -> None:
    img, lab = synth.phantom()
    liver = lab > 0
    liver[-1] = False
    liver[-1, 20:24, 4:8] = True  # a distinctive mask on the most superior slice only
    case = tmp_path / "CT" / "3"
    # CHAOS: file i0000 is the most superior slice (positions descend with the file index)
    files = synth.dicom_series_bytes(
        img, spacing_zyx=(2.0, 0.73, 0.73), descending=True, names=lambda i: f"i{i:04d},0000b.dcm"
    )
    synth.write_files(files, case / "DICOM_anon")
    (case / "Ground").mkdir()
    n = img.shape[0]
    for i in range(n):
        Image.fromarray(liver[n - 1 - i].astype(np.uint8) * 255).save(
            case / "Ground" / f"liver_GT_{i:03d}.png"
        )
    ds = prepare_dataset(tmp_path / "CT", tmp_path / "out", "chaos")
    assert ds.case_ids == ["chaos_03"]
    image, label = ds.load_case("chaos_03")
    np.testing.assert_array_equal(label.array, liver.astype(np.uint8))
    np.testing.assert_array_equal(image.array, img)
    np.testing.assert_allclose(image.spacing, (2.0, 0.73, 0.73), atol=1e-5)
    c = ds.case("chaos_03")
    assert c.tumor_volume_ml == 0 and c.tumor_components == 0
    assert load_dataset(tmp_path / "out").case("chaos_03").mapping["values"] == {"0": 0, "255 (liver)": 1}
