"""DICOM SEG + TID 1500 SR of a report: content, references, and dciodvfy conformance."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from _helpers_dicom import dciodvfy_errors, write_volume_as_dicom
from liverseg.errors import OutputError
from liverseg.io import Volume, read_dicom_series, source_datasets, write_dicom_seg, write_dicom_sr
from liverseg.reporting import build_report
from liverseg.reporting.dicom_sr import (
    CODING_SCHEMES,
    confirmed_lesions,
    lesion_map,
    measurement_report,
    seg_reference,
)


@pytest.fixture
def case(tmp_path: Path) -> tuple[Volume, Volume, dict]:
    """A small DICOM CT with a liver and two separate lesions, its labels and its report."""
    _z, y, x = np.mgrid[0:10, 0:40, 0:40]
    ct = np.where((y - 20) ** 2 + (x - 20) ** 2 < 18**2, 60.0, -1000.0).astype(np.float32)
    folder = write_volume_as_dicom(Volume(ct, (2.5, 0.8, 0.8), (-16.0, -16.0, 0.0)), tmp_path / "ct")
    image = read_dicom_series(folder)
    lab = np.zeros(image.shape, np.uint8)
    lab[1:9, 6:34, 6:34] = 1
    lab[3:7, 10:20, 10:20] = 2  # lesion 1: the larger
    lab[4:6, 25:29, 25:29] = 2  # lesion 2
    labels = image.with_array(lab)
    report = build_report(
        image,
        labels,
        model={"name": "test-model", "version": "1"},
        timings_s={},
        input_info={"name": "ct"},
        warnings=[],
    )
    return image, labels, report


def _write(case, tmp_path: Path, report: dict | None = None) -> tuple[Path, Path]:
    image, labels, rep = case
    rep = rep if report is None else report
    lesions, ids = lesion_map(image, labels, rep)
    seg_path = write_dicom_seg(labels, image, tmp_path / "seg.dcm", lesions=lesions, lesion_ids=ids)
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    sources = source_datasets(image)
    content = measurement_report(rep, seg=seg_reference(seg), source_images=sources)
    sr_path = write_dicom_sr(
        content,
        evidence=[seg, *sources],
        source=image,
        path=tmp_path / "sr.dcm",
        coding_schemes=CODING_SCHEMES,
    )
    return seg_path, sr_path


def _values(group) -> dict[str, float]:
    return {m.name.meaning: m.value for m in group.get_measurements()}


def test_sr_holds_the_report_numbers_and_references_segments_and_images(case, tmp_path):
    image, _, report = case
    seg_path, sr_path = _write(case, tmp_path)
    assert report["lesion_count"] == 2
    seg = pydicom.dcmread(seg_path)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    assert sr.StudyInstanceUID == image.metadata["dicom"]["study_instance_uid"]
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert sr.PreliminaryFlag == "PRELIMINARY"
    totals = {str(g.tracking_identifier): g for g in sr.content.get_image_measurement_groups()}
    assert _values(totals["liver"])["Volume"] == pytest.approx(report["liver_volume_ml"])
    tumors = _values(totals["liver tumors"])
    assert tumors["Volume"] == pytest.approx(report["tumor_volume_ml"])
    assert tumors["Tumor burden (tumor volume / liver volume)"] == pytest.approx(
        report["tumor_burden_percent"]
    )
    rois = sr.content.get_volumetric_roi_measurement_groups()
    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert len(rois) == 2
    for group, lesion in zip(rois, report["lesions"], strict=True):
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        (number,) = ref.referenced_segment_numbers
        assert segments[number].SegmentLabel == f"Liver tumor {lesion['id']}"
        assert group.tracking_uid == segments[number].TrackingUID  # the same lesion in SEG and SR
        values = _values(group)
        assert values["Volume"] == pytest.approx(lesion["volume_ml"])
        assert values["Long axis"] == pytest.approx(lesion["longest_axial_diameter_mm"])
        assert values["Short axis"] == pytest.approx(lesion["short_axis_mm"])
    # the axes were measured on the lesions' largest slices: those CT images are referenced
    library = {str(ds.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for ds in _image_items(sr)}
    uids = image.metadata["dicom"]["sop_instance_uids"]
    assert library == {uids[les["largest_slice"]] for les in report["lesions"]}
    evidence = {
        i.ReferencedSOPInstanceUID
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert evidence == {*uids, seg.SOPInstanceUID}
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99LIVERSEG"


SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _image_items(sr) -> list:
    """The IMAGE content items that reference CT images (not the SEG)."""
    out = []

    def walk(items) -> None:
        for item in items:
            if item.ValueType == "IMAGE" and item.ReferencedSOPSequence[0].ReferencedSOPClassUID != SEG_CLASS:
                out.append(item)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return out


def test_seg_and_sr_pass_dciodvfy(case, tmp_path):
    seg_path, sr_path = _write(case, tmp_path)
    assert dciodvfy_errors(seg_path) == []
    assert dciodvfy_errors(sr_path) == []


def test_possible_lesions_are_left_out_of_the_sr(case, tmp_path):
    _image, _labels, report = case
    # a report (issue 9 style) listing an extra candidate the model was not sure of: not in the
    # label map, not in the totals, and not in the SR
    extra = {**report["lesions"][1], "id": 3, "possible": True, "volume_ml": 0.05}
    marked = {**report, "lesions": [*report["lesions"], extra]}
    assert [les["id"] for les in confirmed_lesions(marked)] == [1, 2]
    _, sr_path = _write(case, tmp_path, marked)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    assert [str(g.tracking_identifier) for g in sr.content.get_volumetric_roi_measurement_groups()] == [
        "lesion 1",
        "lesion 2",
    ]


def test_no_liver_says_absent_instead_of_zero(tmp_path, case):
    image, labels, _ = case
    empty = labels.with_array(np.zeros(labels.shape, np.uint8))
    report = build_report(
        image, empty, model={"name": "m", "version": "1"}, timings_s={}, input_info={}, warnings=[]
    )
    _seg_path, sr_path = _write((image, empty, report), tmp_path)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_path))
    (liver,) = sr.content.get_image_measurement_groups()
    assert liver.get_measurements() == []
    (evaluation,) = liver.get_qualitative_evaluations()
    assert evaluation.value.meaning == "Absent"
    assert dciodvfy_errors(sr_path) == []


def test_a_lesion_the_label_map_does_not_hold_is_an_error(case):
    image, labels, report = case
    wrong = {**report, "lesions": [{**report["lesions"][0], "volume_ml": 99.0}, report["lesions"][1]]}
    with pytest.raises(OutputError, match=r"report lesion 1 .* matches no tumor component"):
        lesion_map(image, labels, wrong)
