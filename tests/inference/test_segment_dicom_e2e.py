"""`liverseg segment` on DICOM as hospitals export it: a messy export, --series, a gantry-tilted
series; DICOM-SEG and TID 1500 SR checked with dciodvfy. The real pipeline and shipped model run
on a 24-slice slab of the bundled sample (seconds per run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from scipy import ndimage

from _helpers_dicom import ct_slice, dciodvfy_errors, non_image, write_volume_as_dicom
from liverseg.inference import SegmentOptions, run_segment
from liverseg.io import Volume, read_dicom_seg, read_volume
from liverseg.metrics import dice


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liverseg", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def export(tmp_path: Path, small_ct: tuple[Volume, Volume]) -> dict:
    """small_ct as series 3, plus a derived copy (series 4), a coronal reformat saved into series
    3, a localizer and a dose report: the kind of folder a PACS workstation exports."""
    image, _ = small_ct
    root = tmp_path / "export"
    study = generate_uid()
    write_volume_as_dicom(image, root / "SE3", study_uid=study)
    write_volume_as_dicom(image, root / "SE4", study_uid=study, series_number=4)
    for f in (root / "SE4").iterdir():
        ds = pydicom.dcmread(f)
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.save_as(f)
    first = pydicom.dcmread(next((root / "SE3").iterdir()))
    coronal = pydicom.dcmread(next((root / "SE3").iterdir()))
    coronal.SOPInstanceUID = coronal.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    coronal.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    coronal.ImageType = ["DERIVED", "SECONDARY", "REFORMATTED"]
    coronal.save_as(root / "SE3" / "coronal_mpr", enforce_file_format=True)
    scout = ct_slice(
        np.zeros((16, 16), np.uint16),
        position=(0, 0, 0),
        orientation=(0, 1, 0, 0, 0, -1),
        series_uid=generate_uid(),
        study_uid=study,
        for_uid=generate_uid(),
        instance=1,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        series_number=1,
    )
    scout.save_as(root / "scout.dcm", enforce_file_format=True)
    non_image(
        "1.2.840.10008.5.1.4.1.1.88.67", series_uid=generate_uid(), study_uid=study, modality="SR"
    ).save_as(root / "dose.dcm", enforce_file_format=True)
    return {"root": root, "series": str(first.SeriesInstanceUID)}


def test_messy_export_segment_picks_the_series_and_writes_conformant_seg_and_sr(export, tmp_path):
    out = tmp_path / "out"
    res = _cli(
        "segment",
        str(export["root"]),
        "-o",
        str(out / "labels.nii.gz"),
        "--report",
        str(out / "r.json"),
        "--dicom-seg",
        str(out / "seg.dcm"),
        "--dicom-sr",
        str(out / "sr.dcm"),
        "--device",
        "cpu",
    )
    assert res.returncode == 0, res.stderr
    assert "coronal_mpr" in res.stderr and "scout.dcm" in res.stderr and "dose.dcm" in res.stderr
    assert "DICOM series       : 3" in res.stdout
    report = json.loads((out / "r.json").read_text())
    dicom = report["input"]["dicom"]
    assert dicom["series_instance_uid"] == export["series"]
    assert [a["why_not"] for a in dicom["selection"]["alternatives"]] == ["ORIGINAL over DERIVED images"]
    assert {s["file"] for s in dicom["selection"]["skipped"]} == {"SE3/coronal_mpr", "scout.dcm", "dose.dcm"}
    assert sum("left out" in w for w in report["warnings"]) == 3
    ct = read_volume(export["root"] / "SE3")
    labels = read_volume(out / "labels.nii.gz", kind="label")
    assert labels.same_grid(ct, atol=1e-4) and report["liver_found"]
    np.testing.assert_array_equal(read_dicom_seg(out / "seg.dcm", reference=ct).array, labels.array)
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(out / "sr.dcm"))
    assert len(sr.content.get_volumetric_roi_measurement_groups()) == report["lesion_count"]
    assert dciodvfy_errors(out / "seg.dcm") == []
    assert dciodvfy_errors(out / "sr.dcm") == []


def test_series_option_errors_before_any_work(export, tmp_path):
    res = _cli("segment", str(export["root"]), "-o", str(tmp_path / "x.nii.gz"), "--series", "99")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "expected series 99" in lines[0]
    res = _cli(
        "segment", str(export["root"]), "-o", str(tmp_path / "x.nii.gz"), "--dicom-sr", str(tmp_path / "s")
    )
    assert res.returncode == 1 and "give --dicom-seg too" in res.stderr
    assert not (tmp_path / "x.nii.gz").exists()


def _tilted_series(image: Volume, folder: Path, tilt_deg: float) -> None:
    """Re-acquire ``image`` with a tilted gantry: tilted image planes, table moving along z."""
    t = np.radians(tilt_deg)
    d = np.asarray(image.direction)
    row, col = d[:, 0], np.cos(t) * d[:, 1] + np.sin(t) * d[:, 2]
    dz = image.spacing[0] / np.cos(t)  # same slice spacing along the tilted normal
    rows, cols = image.shape[1:]
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True)
    i, j = np.mgrid[0:rows, 0:cols]
    for k in range(image.shape[0]):
        corner = np.asarray(image.origin) + d[:, 2] * dz * k
        pts = corner + j[..., None] * image.spacing[2] * row + i[..., None] * image.spacing[1] * col
        idx = image.physical_to_index(pts.reshape(-1, 3)).T
        hu = ndimage.map_coordinates(image.array, idx, order=1, mode="nearest").reshape(rows, cols)
        ds = ct_slice(
            np.clip(np.rint(hu + 1024), 0, 65535),
            position=corner,
            orientation=(*row, *col),
            pixel_spacing=image.spacing[1:],
            series_uid=series,
            study_uid=study,
            for_uid=frame,
            instance=k + 1,
            thickness=image.spacing[0],
        )
        ds.GantryDetectorTilt = tilt_deg
        ds.save_as(folder / f"IM{k:03d}", enforce_file_format=True)


def test_gantry_tilted_series_is_segmented_on_its_true_geometry(tmp_path, small_ct):
    image, reference = small_ct
    _tilted_series(image, tmp_path / "tilted", 12.0)
    report = run_segment(
        tmp_path / "tilted",
        tmp_path / "labels.nii.gz",
        dicom_seg=tmp_path / "seg.dcm",
        dicom_sr=tmp_path / "sr.dcm",
        options=SegmentOptions(device="cpu"),
    )
    assert report["input"]["dicom"]["tilt_deg"] == pytest.approx(12.0, abs=0.01)
    assert any("gantry tilt of 12.0 degrees" in w for w in report["warnings"])
    vol = read_volume(tmp_path / "tilted")
    labels = read_volume(tmp_path / "labels.nii.gz", kind="label")
    assert labels.same_grid(vol, atol=1e-4)
    # the liver lands where it is: resample the reference liver onto the label grid and compare
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in labels.shape], indexing="ij"), -1).reshape(-1, 3)
    ref_idx = reference.physical_to_index(labels.index_to_physical(idx)).T
    ref = ndimage.map_coordinates(reference.array.astype(np.float32), ref_idx, order=0, cval=0).reshape(
        labels.shape
    )
    inside = (
        ndimage.map_coordinates(np.ones(reference.shape, np.float32), ref_idx, order=0, cval=0).reshape(
            labels.shape
        )
        > 0
    )
    assert dice((labels.array >= 1) & inside, (ref >= 1) & inside) > 0.8
    back = read_dicom_seg(tmp_path / "seg.dcm", reference=vol)
    assert np.mean(back.array != labels.array) < 0.01  # SEG frames on the tilted slices, back to the grid
    assert dciodvfy_errors(tmp_path / "seg.dcm") == []
    assert dciodvfy_errors(tmp_path / "sr.dcm") == []
