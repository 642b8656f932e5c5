"""Series selection in messy DICOM exports: what is read, what is left out and why."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from _helpers_dicom import DOSE_SR, KOS, Study, write_messy_export
from liverseg.errors import InputError
from liverseg.io import inspect_dicom, read_dicom_series, read_volume


@pytest.fixture
def messy(tmp_path: Path) -> dict:
    """The messy export of issue 10 (see :func:`_helpers_dicom.write_messy_export`)."""
    return write_messy_export(tmp_path / "export")


def _reasons(selection: dict) -> dict[str, str]:
    return {s["file"]: s["reason"] for s in selection["skipped"]}


def test_messy_export_reads_the_axial_original_series_and_says_what_was_left_out(messy, caplog):
    with caplog.at_level(logging.WARNING, logger="liverseg.io.dicom_series"):
        vol = read_dicom_series(messy["root"])
    np.testing.assert_array_equal(vol.array, messy["hu"])
    dicom = vol.metadata["dicom"]
    assert dicom["series_instance_uid"] == messy["uid"] and dicom["files"] == messy["names"]
    sel = dicom["selection"]
    assert sel["chosen"]["series_number"] == 3 and sel["chosen"]["image_type"] == "ORIGINAL/PRIMARY/AXIAL"
    assert [a["series_instance_uid"] for a in sel["alternatives"]] == [messy["derived"]]
    assert sel["alternatives"][0]["why_not"] == "ORIGINAL over DERIVED images"
    reasons = _reasons(sel)
    assert "coronal" in reasons["SE3/IM_coronal"] and "REFORMATTED" in reasons["SE3/IM_coronal"]
    assert all("localizer" in reasons[f"SE1/IM1_00{k}"] for k in (0, 1))
    assert reasons["SE997/dose_sr"] == "structured report (X-Ray Radiation Dose SR Storage)"
    assert reasons["SE998/kos"].startswith("key object selection")
    assert reasons["SE999/gsps"].startswith("presentation state")
    assert reasons["SE996/dose_screen"].startswith("colour image")
    assert reasons["README.TXT"] == "not a DICOM file"
    # every left-out image or object is named in a warning (logged and kept for the report)
    text = "\n".join(dicom["warnings"])
    for name in (
        "SE3/IM_coronal",
        "SE1/IM1_000",
        "SE997/dose_sr",
        "SE998/kos",
        "SE999/gsps",
        "SE996/dose_screen",
    ):
        assert name in text and name in caplog.text
    assert "README.TXT" not in text  # non-DICOM files are listed in the report, not warned about
    json.dumps(sel)  # JSON-ready


def test_zip_of_the_messy_export_gives_the_same_choice(messy, tmp_path):
    zpath = tmp_path / "export.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(messy["root"].rglob("*")):
            if f.is_file():
                zf.write(f, "EXPORT/" + f.relative_to(messy["root"]).as_posix())
    vol = read_volume(zpath)
    np.testing.assert_array_equal(vol.array, messy["hu"])
    assert vol.metadata["dicom"]["container"] == "zip"
    assert vol.metadata["dicom"]["files"] == ["EXPORT/" + n for n in messy["names"]]


def test_dicomdir_export_is_read_through_its_directory(messy, tmp_path):
    from pydicom.fileset import FileSet

    fs = FileSet()
    for f in sorted((messy["root"] / "SE3").iterdir()) + sorted((messy["root"] / "SE4").iterdir()):
        fs.add(pydicom.dcmread(f))
    out = tmp_path / "cd"
    fs.write(out)
    (out / "autorun.inf").write_text("not listed in the DICOMDIR")
    vol = read_volume(out / "DICOMDIR")
    np.testing.assert_array_equal(vol.array, messy["hu"])
    dicom = vol.metadata["dicom"]
    assert dicom["container"] == "dicomdir" and dicom["series_instance_uid"] == messy["uid"]
    assert all(n.startswith("PT000000/") for n in dicom["files"])  # pydicom's File-set layout
    # the same folder read as a folder: the DICOMDIR itself is skipped with its reason
    folder = read_volume(out)
    np.testing.assert_array_equal(folder.array, messy["hu"])
    assert _reasons(folder.metadata["dicom"]["selection"])["DICOMDIR"].startswith("DICOMDIR")


def test_series_override_by_number_uid_and_errors(messy):
    derived = read_dicom_series(messy["root"], series="4")
    assert derived.metadata["dicom"]["series_instance_uid"] == messy["derived"]
    sel = derived.metadata["dicom"]["selection"]
    assert sel["requested"] == "4" and sel["why"] == "requested with --series 4"
    assert read_dicom_series(messy["root"], series=messy["uid"]).metadata["dicom"]["series_number"] == 3
    with pytest.raises(InputError, match=r"expected series 7 .*found only: number 3 .*number 4"):
        read_dicom_series(messy["root"], series="7")


def test_same_series_number_twice_needs_the_uid(tmp_path):
    st = Study(tmp_path / "e")
    a, _, _ = st.series("a", [0, 2.5, 5], number=2)
    st.series("b", [0, 2.5, 5, 7.5], number=2, prefix="B")
    with pytest.raises(InputError, match="series number 2 is used by several series"):
        read_dicom_series(st.root, series="2")
    assert read_dicom_series(st.root, series=a).shape[0] == 3


def test_two_acquisitions_in_one_series_are_split_and_ranked_by_coverage(tmp_path):
    st = Study(tmp_path / "e")
    uid = generate_uid()
    st.series("s", [2.5 * k for k in range(10)], number=5, series_uid=uid, acquisition=1)
    _, hu2, _ = st.series("s", [2.5 * k for k in range(64)], number=5, series_uid=uid, acquisition=2)
    vol = read_dicom_series(st.root)
    np.testing.assert_array_equal(vol.array, hu2)  # 160 mm covers the abdomen; 25 mm does not
    sel = vol.metadata["dicom"]["selection"]
    assert sel["chosen"]["stack_id"].startswith(uid + "#") and sel["chosen"]["acquisition_numbers"] == [2]
    assert sel["alternatives"][0]["acquisition_numbers"] == [1]
    assert sel["alternatives"][0]["why_not"].startswith("coverage of at least 150 mm")
    # a stack id picks the other acquisition
    other = read_dicom_series(st.root, series=sel["alternatives"][0]["stack_id"])
    assert other.shape[0] == 10


@pytest.mark.parametrize(
    ("a", "b", "winner", "rule"),
    [
        ({"thickness": 0.6}, {"thickness": 2.0}, "b", "slice thickness within 1-5 mm"),
        ({"thickness": 3.0}, {"thickness": 1.5}, "b", "thinner slices"),
        ({"modality": "MR"}, {}, "b", "CT over other modalities"),
        ({"image_type": ("ORIGINAL", "SECONDARY", "AXIAL")}, {}, "b", "PRIMARY over SECONDARY images"),
        ({"orientation": (1, 0, 0, 0, 0, -1)}, {}, "b", "axial over other orientations"),
    ],
)
def test_ranking_rules_decide_between_two_series(tmp_path, a, b, winner, rule):
    st = Study(tmp_path / "e")
    uids = {}
    for name, opts in (("a", a), ("b", b)):
        opts = dict(opts)
        modality = opts.pop("modality", "CT")
        uids[name], _, _ = st.series(
            name, [2.0 * k for k in range(8)], number=1 if name == "a" else 2, **opts
        )
        if modality != "CT":
            for f in (st.root / name).iterdir():
                ds = pydicom.dcmread(f)
                ds.Modality = modality
                ds.save_as(f)
    sel = inspect_dicom(st.root)
    assert sel.chosen.series_instance_uid == uids[winner]
    assert sel.why_not[sel.alternatives[0].stack_id] == rule
    assert not sel.tie


def test_equal_series_are_a_flagged_tie_broken_by_series_number(tmp_path):
    st = Study(tmp_path / "e")
    st.series("b", [0.0, 2.5, 5.0], number=6, prefix="B")
    first, _, _ = st.series("a", [0.0, 2.5, 5.0], number=5)
    vol = read_dicom_series(st.root)
    assert vol.metadata["dicom"]["series_instance_uid"] == first
    assert any("equally good" in w and "--series" in w for w in vol.metadata["dicom"]["warnings"])
    assert vol.metadata["dicom"]["selection"]["tie"] is True


def test_a_broken_series_keeps_its_precise_message_and_other_stacks_win(tmp_path):
    st = Study(tmp_path / "e")
    st.series("gap", [0, 2, 4, 8, 10, 12], number=2)
    with pytest.raises(InputError, match=r"missing slice.*4\.00 mm"):
        read_dicom_series(st.root)
    good, _, _ = st.series("ok", [0, 2, 4, 6], number=3, prefix="OK")
    vol = read_dicom_series(st.root)
    assert vol.metadata["dicom"]["series_instance_uid"] == good
    rejected = vol.metadata["dicom"]["selection"]["rejected"]
    assert len(rejected) == 1 and "missing slice" in rejected[0]["reason"] and rejected[0]["n_files"] == 6
    assert any("not a regular stack: missing slice" in w for w in vol.metadata["dicom"]["warnings"])


def test_only_non_images_is_an_error_counting_reasons(tmp_path):
    st = Study(tmp_path / "e")
    st.other("sr1", DOSE_SR, modality="SR")
    st.other("sr2", KOS, modality="KO")
    with pytest.raises(
        InputError, match=r"expected DICOM image files, found none among 2 .*structured report"
    ):
        read_dicom_series(st.root)
