"""3D-IRCADb layout: structure-name mapping, lesion placement checks and mask geometry."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from liverseg.data import discover_cases, prepare_dataset
from liverseg.data.ircadb import classify_structure, ircadb_case_id
from liverseg.errors import GeometryError, InputError


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("liver", "liver"),
        ("livertumor01", "liver_tumor"),
        ("livertumors", "liver_tumor"),
        ("livertumor1", "liver_tumor"),
        ("livertumor", "liver_tumor"),
        ("liverkyst", "liver_cyst"),
        ("liverkyste", "liver_cyst"),
        ("livercyst", "liver_cyst"),
        ("tumor", "other_tumor"),
        ("leftsurretumor", "other_tumor"),
        ("rightsurretumor", "other_tumor"),
        ("surrenaltumor", "other_tumor"),
        ("leftsurrenalgland", "other"),
        ("portalvein", "other"),
        ("liverhyperplasia", "liver_other"),
    ],
)
def test_classify_structure(name: str, kind: str) -> None:
    assert classify_structure(name) == kind


def test_case_ids() -> None:
    assert ircadb_case_id("3Dircadb1.1") == "ircadb_01"
    assert ircadb_case_id("3Dircadb1.17") == "ircadb_17"
    assert ircadb_case_id("3Dircadb2.4") == "ircadb2_04"
    assert ircadb_case_id("patient 9") == "ircadb_09"


def test_ircadb_mapping(tmp_path: Path, synth, caplog) -> None:
    masks = synth.ircadb_patient(tmp_path / "db" / "3Dircadb1.7", masks_as_zip=False, ct_as_zip=True)
    with caplog.at_level(logging.INFO):
        ds = prepare_dataset(tmp_path / "db", tmp_path / "out", "ircadb")
    assert ds.case_ids == ["ircadb_07"]
    image, label = ds.load_case("ircadb_07")
    img, _ = synth.phantom()
    np.testing.assert_array_equal(image.array, img)
    np.testing.assert_allclose(image.spacing, (1.6, 0.6, 0.6), atol=1e-6)
    expected = np.zeros(synth.SHAPE, np.uint8)
    expected[masks["liver"] | masks["liverkyst"]] = 1
    expected[masks["livertumor01"]] = 2
    np.testing.assert_array_equal(label.array, expected)
    assert not label.array[masks["tumor"]].any()  # the outside-liver 'tumor' is not a liver tumor
    assert (label.array[masks["liverkyst"]] == 1).all()  # a cyst is liver, not tumor
    case = ds.case("ircadb_07")
    assert case.tumor_components == 1
    assert case.tumor_volume_ml == pytest.approx(48 * 1.6 * 0.36 / 1000, abs=1e-4)
    structures = case.mapping["structures"]
    assert structures["livertumor01"] == "tumor (2)"
    assert structures["liverkyst"].startswith("liver (1)")
    assert structures["tumor"].startswith("ignored: tumor outside the liver")
    assert structures["artery"] == "ignored"
    assert case.mapping["fraction_inside_liver"] == {"liverkyst": 1.0, "livertumor01": 1.0, "tumor": 0.0}
    assert "livertumor01 -> tumor (2)" in caplog.text


def test_ircadb_tumor_outside_liver_warns(tmp_path: Path, synth, caplog) -> None:
    stray = np.zeros(synth.SHAPE, bool)
    stray[2:6, 10:16, 20:28] = True  # outside the liver block
    patient = tmp_path / "3Dircadb1.2"
    synth.ircadb_patient(patient, masks_as_zip=True, ct_as_zip=False, extra_masks={"livertumor02": stray})
    with caplog.at_level(logging.WARNING):
        cases = discover_cases("ircadb", patient)
        loaded = cases[0].load()
    assert [c.case_id for c in cases] == ["ircadb_02"]
    assert any("livertumor02" in w and "mostly outside" in w for w in loaded.warnings)
    assert "livertumor02" in caplog.text
    assert loaded.mapping["fraction_inside_liver"]["livertumor02"] == 0.0
    # still mapped to tumor (the name says so), and liver = liver ∪ liver lesions
    assert (loaded.label.array[stray] == 2).all()


def test_ircadb_mask_off_the_ct_grid_is_a_geometry_error(tmp_path: Path, synth) -> None:
    synth.ircadb_patient(tmp_path / "3Dircadb1.3", mask_spacing_zyx=(1.6, 0.7, 0.7))
    with pytest.raises(GeometryError, match="mask 'liver'"):
        discover_cases("ircadb", tmp_path / "3Dircadb1.3")[0].load()


def test_ircadb_without_patient_folders_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x" / "PATIENT_DICOM").mkdir(parents=True)
    with pytest.raises(InputError, match="PATIENT_DICOM and MASKS_DICOM"):
        discover_cases("ircadb", tmp_path)
