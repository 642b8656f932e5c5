"""DICOM series reading on synthetic pydicom series (no shared data needed)."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from liverseg.errors import InputError
from liverseg.io import list_dicom_series, read_dicom_series, read_volume


def _zip_folder(folder: Path, zip_path: Path, *, prefix: str = "DICOM/") -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, prefix + f.name)
    return zip_path


def test_orders_by_position_not_file_name_and_applies_rescale(make_series):
    z = [30.0, 0.0, 10.0, 20.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0]
    folder, hu, names = make_series(z_positions=z, slope=2.0, intercept=-1000.0)
    vol = read_dicom_series(folder)
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, hu)  # ascending position order, HU = 2 * v - 1000
    assert vol.spacing == pytest.approx((10.0, 0.8, 0.7))
    assert vol.origin == pytest.approx((-20.0, 30.0, 0.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    dicom = vol.metadata["dicom"]
    assert dicom["files"] == names
    assert names != sorted(names, key=lambda n: int(n.split("_")[1]))  # shuffled names
    assert len(dicom["sop_instance_uids"]) == len(z)
    assert dicom["modality"] == "CT"
    assert dicom["container"] == "folder"
    assert vol.metadata["source"] == str(folder)


def test_reverse_sorted_positions_give_the_same_volume(make_series):
    folder, hu, _ = make_series(z_positions=[20.0, 15.0, 10.0, 5.0, 0.0])
    vol = read_dicom_series(folder)
    np.testing.assert_array_equal(vol.array, hu)
    assert vol.origin[2] == pytest.approx(0.0)


def test_oblique_orientation_orders_along_the_normal(make_series):
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    iop = (c, s, 0.0, 0.0, 0.0, -1.0)  # an oblique coronal-ish plane
    folder, hu, _ = make_series(z_positions=[4.0, 0.0, 2.0, 6.0], orientation=iop)
    vol = read_dicom_series(folder)
    np.testing.assert_array_equal(vol.array, hu)
    row, col = np.array(iop[:3]), np.array(iop[3:])
    np.testing.assert_allclose(vol.direction, np.stack([row, col, np.cross(row, col)], axis=1), atol=1e-6)
    assert vol.spacing[0] == pytest.approx(2.0)
    # the first voxel is the slice at normal position 0
    expected = row * -20.0 + col * 30.0
    np.testing.assert_allclose(vol.origin, expected, atol=1e-4)


def test_extensionless_and_comma_names_and_foreign_files(make_series):
    folder, hu, _ = make_series(name_fmt="i{:04d},0000b.dcm")
    (folder / "README.txt").write_text("not dicom")
    (folder / "notes").write_bytes(b"\x00" * 500)
    vol = read_dicom_series(folder)
    np.testing.assert_array_equal(vol.array, hu)
    skipped = {s["file"]: s["reason"] for s in vol.metadata["dicom"]["selection"]["skipped"]}
    assert skipped == {"README.txt": "not a DICOM file", "notes": "not a DICOM file"}


def test_two_series_picks_the_larger_and_logs_it(make_series, caplog):
    big, hu, _ = make_series("study/big", z_positions=[0, 1, 2, 3, 4, 5], seed=1)
    small, _, _ = make_series("study/small", z_positions=[0, 5, 10], seed=2)
    big_uid = pydicom.dcmread(next(big.iterdir())).SeriesInstanceUID
    small_uid = pydicom.dcmread(next(small.iterdir())).SeriesInstanceUID
    with caplog.at_level(logging.INFO, logger="liverseg.io.dicom_select"):
        vol = read_dicom_series(big.parent)
    np.testing.assert_array_equal(vol.array, hu)
    assert vol.metadata["dicom"]["series_instance_uid"] == big_uid
    assert big_uid in caplog.text and "2 candidate stacks" in caplog.text
    alternatives = vol.metadata["dicom"]["selection"]["alternatives"]
    assert [(a["series_instance_uid"], a["why_not"]) for a in alternatives] == [(small_uid, "more slices")]
    assert all(f.startswith("big/") for f in vol.metadata["dicom"]["files"])
    # explicit choice and listing
    assert read_dicom_series(big.parent, series=small_uid).shape[0] == 3
    assert read_dicom_series(big.parent, subfolder="small").shape[0] == 3
    infos = list_dicom_series(big.parent)
    assert [i["n_files"] for i in infos] == [6, 3] and infos[1]["folder"] == "small"
    with pytest.raises(InputError, match=r"expected series 1\.2\.3"):
        read_dicom_series(big.parent, series="1.2.3")


def test_prefers_ct_over_a_larger_non_ct_series(make_series):
    mr, _, _ = make_series("s/mr", z_positions=[float(z) for z in range(8)], modality="MR", seed=3)
    _, hu, _ = make_series("s/ct", z_positions=[0.0, 1.0, 2.0, 3.0], seed=4)
    vol = read_dicom_series(mr.parent)
    np.testing.assert_array_equal(vol.array, hu)
    assert vol.metadata["dicom"]["modality"] == "CT"


def test_missing_slice_is_an_error_naming_positions(make_series):
    folder, _, _ = make_series(z_positions=[0, 2, 4, 8, 10, 12])
    with pytest.raises(InputError, match=r"missing slice.*4\.00 mm.*and .*8\.00 mm") as err:
        read_dicom_series(folder)
    assert str(folder) in str(err.value)


def test_duplicate_position_is_an_error_naming_files(make_series):
    folder, _, names = make_series(z_positions=[0, 2, 4, 4, 6])
    with pytest.raises(InputError, match="duplicate position") as err:
        read_dicom_series(folder)
    assert names[2] in str(err.value) or names[3] in str(err.value)


@pytest.mark.parametrize("where", ["end", "start"])
def test_single_far_off_slice_is_dropped_with_warning(make_series, caplog, where):
    z = [0, 2, 4, 6, 8, 10] + ([60] if where == "end" else [-50])
    folder, hu, names = make_series(z_positions=z)
    with caplog.at_level(logging.WARNING, logger="liverseg.io.dicom_series"):
        vol = read_dicom_series(folder)
    stray = names[-1] if where == "end" else names[0]
    keep = slice(0, -1) if where == "end" else slice(1, None)
    np.testing.assert_array_equal(vol.array, hu[keep])
    assert vol.spacing[0] == pytest.approx(2.0)
    assert vol.metadata["dicom"]["dropped_files"] == [stray]
    assert stray not in vol.metadata["dicom"]["files"]
    assert stray in caplog.text and "slice lying" in caplog.text
    assert any(stray in w for w in vol.metadata["dicom"]["warnings"])


def test_irregular_spacing_is_an_error(make_series):
    folder, _, _ = make_series(z_positions=[0, 2, 4, 6.6, 8.6, 10.6])
    with pytest.raises(InputError, match="irregular slice spacing"):
        read_dicom_series(folder)


def test_irregular_sideways_drift_is_an_error(make_series):
    folder, _, _ = make_series(z_positions=[0, 2, 4, 6, 8])
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + (3.0 if z == 4 else 0.0), z]  # one slice jumps sideways
        ds.save_as(f)
    with pytest.raises(InputError, match="drift sideways irregularly"):
        read_dicom_series(folder)


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("ImageOrientationPatient", [0, 1, 0, 1, 0, 0], "orientation"),
        ("PixelSpacing", [0.5, 0.5], "pixel spacing"),
    ],
)
def test_a_slice_with_other_geometry_is_left_out_with_its_reason(make_series, tag, value, reason):
    folder, hu, names = make_series()
    original = pydicom.dcmread(folder / names[-1])  # the last slice of the stack
    ds = pydicom.dcmread(folder / names[-1])
    setattr(ds, tag, value)
    ds.save_as(folder / names[-1])
    vol = read_dicom_series(folder)
    np.testing.assert_array_equal(vol.array, hu[:-1])
    (warning,) = [w for w in vol.metadata["dicom"]["warnings"] if names[-1] in w]
    assert reason in warning
    # such a slice in the middle of the stack leaves a gap: the error says both
    original.save_as(folder / names[-1])
    ds = pydicom.dcmread(folder / names[2])
    setattr(ds, tag, value)
    ds.save_as(folder / names[2])
    with pytest.raises(
        InputError, match=rf"missing slice.*left out of this series first: .*{names[2]}.*{reason}"
    ):
        read_dicom_series(folder)


def test_a_slice_with_another_matrix_size_is_left_out(make_series, tmp_path):
    folder, hu, _ = make_series("a", z_positions=[0, 2, 4], shape=(6, 7))
    other, _, _ = make_series("b", z_positions=[6], shape=(5, 7))
    uid = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    f = next(other.iterdir())
    ds = pydicom.dcmread(f)
    ds.SeriesInstanceUID = uid
    ds.save_as(folder / "odd")
    vol = read_dicom_series(folder)
    np.testing.assert_array_equal(vol.array, hu)
    assert any("odd" in w and "matrix 5x7, not 6x7" in w for w in vol.metadata["dicom"]["warnings"])


def test_single_slice_and_empty_and_non_dicom_folders(make_series, tmp_path):
    folder, _, _ = make_series(z_positions=[0.0])
    with pytest.raises(InputError, match="single slice"):
        read_dicom_series(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty") as err:
        read_volume(empty)
    assert str(empty) in str(err.value)
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(3):
        (junk / f"f{i}.dcm").write_bytes(b"no dicom here" * 20)
    with pytest.raises(InputError, match="expected DICOM image files, found none among 3"):
        read_volume(junk)
    with pytest.raises(InputError, match="does not exist"):
        read_volume(tmp_path / "nope")


def test_zip_input_with_folder_inside_and_foreign_member(make_series, tmp_path, caplog):
    folder, hu, names = make_series(z_positions=[6, 0, 2, 4])
    (folder / "DICOMDIR.txt").write_text("hello")
    zpath = _zip_folder(folder, tmp_path / "case.zip", prefix="PATIENT_DICOM/")
    with zipfile.ZipFile(zpath, "a") as zf:
        zf.writestr("../evil", b"x")
    shutil.rmtree(folder)
    with caplog.at_level(logging.WARNING, logger="liverseg.io.sources"):
        vol = read_volume(zpath)
    np.testing.assert_array_equal(vol.array, hu)
    assert vol.metadata["dicom"]["files"] == [f"PATIENT_DICOM/{n}" for n in names]
    assert vol.metadata["dicom"]["container"] == "zip"
    assert "unsafe" in caplog.text
    assert not (tmp_path / "evil").exists()


def test_zip_without_dicom_is_an_error(tmp_path):
    zpath = tmp_path / "docs.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a.txt", "text")
    with pytest.raises(InputError, match="expected DICOM image files"):
        read_volume(zpath)


def test_rle_compressed_slices_are_decoded(make_series):
    from pydicom.uid import RLELossless

    folder, hu, _ = make_series()
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.compress(RLELossless)
        ds.save_as(f)
    np.testing.assert_array_equal(read_dicom_series(folder).array, hu)


def test_undecodable_transfer_syntax_names_it(make_series):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    folder, _, names = make_series()
    f = folder / names[0]
    ds = pydicom.dcmread(f)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8garbage\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(f, enforce_file_format=True)
    with pytest.raises(InputError, match="JPEG-LS Lossless") as err:
        read_dicom_series(folder)
    assert names[0] in str(err.value)


def test_non_image_objects_are_skipped(make_series):
    folder, hu, _ = make_series()
    ds = pydicom.dcmread(next(folder.iterdir()))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR: not an image
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.save_as(folder / "report.sr")
    np.testing.assert_array_equal(read_dicom_series(folder).array, hu)


def test_single_dicom_file_given_as_volume_is_explained(make_series):
    folder, _, names = make_series()
    with pytest.raises(InputError, match="single DICOM slice"):
        read_volume(folder / names[0])


def test_enhanced_multiframe_ct_matches_the_single_frame_series(make_series, tmp_path):
    import highdicom as hd

    folder, hu, names = make_series(z_positions=[6.0, 0.0, 2.0, 4.0])
    single = read_dicom_series(folder)
    datasets = [pydicom.dcmread(folder / n) for n in names]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets,
        series_instance_uid=generate_uid(),
        series_number=9,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    out = tmp_path / "mf"
    out.mkdir()
    enhanced.save_as(out / "enhanced.dcm")
    for vol in (read_volume(out / "enhanced.dcm"), read_dicom_series(out)):
        np.testing.assert_array_equal(vol.array, hu)
        assert vol.same_grid(single)
        assert vol.metadata["dicom"]["files"] == ["enhanced.dcm"]
