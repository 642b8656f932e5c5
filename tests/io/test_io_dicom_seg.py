"""DICOM-SEG writing and reading (highdicom) on synthetic CT series."""

from __future__ import annotations

import zipfile

import numpy as np
import pydicom
import pytest

from liverseg.errors import GeometryError, InputError
from liverseg.io import Volume, read_dicom_seg, read_dicom_series, read_volume, write_dicom_seg


def _labels(shape: tuple[int, int, int]) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[1:4, 1:5, 1:6] = 1
    lab[2, 2:4, 2:4] = 2
    lab[3, 1, 1] = 2
    return lab


@pytest.fixture
def ct(make_series) -> Volume:
    folder, _, _ = make_series(z_positions=[8.0, 0.0, 4.0, 2.0, 6.0])
    return read_dicom_series(folder)


def test_round_trip_gives_the_same_labels(ct, tmp_path):
    lab = _labels(ct.shape)
    out = write_dicom_seg(ct.with_array(lab), ct, tmp_path / "seg" / "result.dcm")
    assert out.is_file()
    back = read_volume(out, kind="label", reference=ct)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, lab)
    assert back.same_grid(ct)
    # without a reference: the SEG's own geometry still places every voxel at the same position
    alone = read_dicom_seg(out)
    pts = ct.index_to_physical(np.argwhere(lab == 2))
    idx = np.rint(alone.physical_to_index(pts)).astype(int)
    assert np.all(alone.array[tuple(idx.T)] == 2)
    assert int((alone.array == 2).sum()) == int((lab == 2).sum())


def test_written_seg_references_source_and_describes_segments(ct, tmp_path):
    out = write_dicom_seg(ct.with_array(_labels(ct.shape)), ct, tmp_path / "s.dcm")
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG"
    segs = {int(s.SegmentNumber): s for s in ds.SegmentSequence}
    assert segs[1].SegmentLabel == "Liver"
    assert segs[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert segs[2].SegmentLabel == "Liver tumor 1" and segs[2].TrackingID == "lesion 1"
    assert segs[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert segs[2].SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert segs[1].SegmentAlgorithmType == "AUTOMATIC"
    assert segs[1].SegmentAlgorithmName == "liverseg"
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in ds.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == set(ct.metadata["dicom"]["sop_instance_uids"])
    assert ds.StudyInstanceUID == ct.metadata["dicom"]["study_instance_uid"]
    assert ds.FrameOfReferenceUID == ct.metadata["dicom"]["frame_of_reference_uid"]


def test_one_segment_per_lesion_numbered_like_the_caller_says(ct, tmp_path):
    lab = np.zeros(ct.shape, np.uint8)
    lab[1:4, 1:5, 1:6] = 1
    lab[1, 1:3, 1:3] = 2  # 4 voxels
    lab[3, 4, 5] = 2  # 1 voxel, not touching the first
    out = write_dicom_seg(ct.with_array(lab), ct, tmp_path / "auto.dcm")
    ds = pydicom.dcmread(out)
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["Liver", "Liver tumor 1", "Liver tumor 2"]
    seg = __import__("highdicom").seg.segread(out)
    masks = seg.get_pixels_by_source_instance(
        ct.metadata["dicom"]["sop_instance_uids"], segment_numbers=[2, 3]
    )
    assert int(masks[..., 0].sum()) == 4 and int(masks[..., 1].sum()) == 1  # largest lesion first
    np.testing.assert_array_equal(read_dicom_seg(out, ct).array, lab)
    # the caller's numbering (e.g. the report's), and only lesions it lists
    lesions = np.zeros(ct.shape, np.int32)
    lesions[1, 1:3, 1:3], lesions[3, 4, 5] = 7, 3
    out = write_dicom_seg(ct.with_array(lab), ct, tmp_path / "ids.dcm", lesions=lesions, lesion_ids=[3, 7])
    labels = [s.SegmentLabel for s in pydicom.dcmread(out).SegmentSequence]
    assert labels == ["Liver", "Liver tumor 3", "Liver tumor 7"]
    with pytest.raises(InputError, match="every tumor voxel"):
        write_dicom_seg(ct.with_array(lab), ct, tmp_path / "bad.dcm", lesions=lesions, lesion_ids=[7])
    assert not (tmp_path / "bad.dcm").exists()


def test_no_tumor_keeps_an_explicit_empty_tumor_segment(ct, tmp_path):
    lab = np.where(_labels(ct.shape) == 1, 1, 0).astype(np.uint8)
    ds = pydicom.dcmread(write_dicom_seg(ct.with_array(lab), ct, tmp_path / "s.dcm"))
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["Liver", "Liver tumor"]


def test_empty_and_tumor_only_results_round_trip(ct, tmp_path):
    for name, lab in {
        "empty": np.zeros(ct.shape, np.uint8),
        "tumor": np.where(_labels(ct.shape) == 2, 2, 0).astype(np.uint8),
    }.items():
        out = write_dicom_seg(ct.with_array(lab), ct, tmp_path / f"{name}.dcm")
        np.testing.assert_array_equal(read_dicom_seg(out, ct).array, lab)


def test_zip_source_and_reference_without_dicom_metadata(make_series, tmp_path):
    folder, _, _ = make_series(z_positions=[0.0, 3.0, 6.0, 9.0])
    zpath = tmp_path / "ct.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"DICOM/{f.name}")
    ct = read_volume(zpath)
    lab = _labels(ct.shape)
    out = write_dicom_seg(ct.with_array(lab), ct, tmp_path / "z.dcm")
    # a reference that only shares the grid (e.g. the CT converted to NIfTI): matched by position
    plain = Volume(ct.array, ct.spacing, ct.origin, ct.direction)
    np.testing.assert_array_equal(read_dicom_seg(out, plain).array, lab)
    shifted = Volume(ct.array, ct.spacing, (ct.origin[0] + 0.33, *ct.origin[1:]), ct.direction)
    with pytest.raises(GeometryError, match="do not lie on the reference"):
        read_dicom_seg(out, shifted)


def test_source_not_from_dicom_and_grid_mismatch_are_errors(ct, tmp_path):
    nifti_like = Volume(ct.array, ct.spacing, ct.origin, ct.direction, {"source": "ct.nii.gz"})
    with pytest.raises(InputError, match="needs a source image read from DICOM"):
        write_dicom_seg(nifti_like.with_array(np.zeros(ct.shape, np.uint8)), nifti_like, tmp_path / "x.dcm")
    other = Volume(np.zeros(ct.shape, np.uint8), (9.0, 1.0, 1.0))
    with pytest.raises(GeometryError):
        write_dicom_seg(other, ct, tmp_path / "y.dcm")
    with pytest.raises(InputError, match="values"):
        write_dicom_seg(ct.with_array(np.full(ct.shape, 5, np.uint8)), ct, tmp_path / "z.dcm")
    assert not list(tmp_path.glob("*.dcm"))


def test_segments_are_mapped_by_name_then_number(ct, tmp_path):
    out = write_dicom_seg(ct.with_array(_labels(ct.shape)), ct, tmp_path / "s.dcm")
    ds = pydicom.dcmread(out)
    # rename: segment 1 becomes "Tumour" (no codes), segment 2 "Parenchyma of liver"
    for seg, label in zip(ds.SegmentSequence, ["Tumour", "Parenchyma of liver"], strict=True):
        seg.SegmentLabel = label
        seg.SegmentedPropertyTypeCodeSequence[0].CodeValue = "123037004"  # generic body structure
    ds.save_as(tmp_path / "renamed.dcm")
    back = read_dicom_seg(tmp_path / "renamed.dcm", ct).array
    lab = _labels(ct.shape)
    assert np.all(back[(lab == 1)] == 2)  # old liver segment is now called tumour
    assert np.all(back[lab == 2] == 1)  # old tumor segment is now called liver
    # no usable name: numbers 1/2 are used
    for seg in ds.SegmentSequence:
        seg.SegmentLabel = "structure"
    ds.save_as(tmp_path / "numbers.dcm")
    np.testing.assert_array_equal(read_dicom_seg(tmp_path / "numbers.dcm", ct).array, lab)


def test_seg_read_as_image_is_an_error(ct, tmp_path):
    out = write_dicom_seg(ct.with_array(_labels(ct.shape)), ct, tmp_path / "s.dcm")
    with pytest.raises(InputError, match="got a DICOM-SEG"):
        read_volume(out)
