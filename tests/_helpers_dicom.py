"""DICOM writing helpers shared by the tests (synthetic CT series with full geometry tags)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_slice(
    pixels: np.ndarray,
    *,
    position: Sequence[float],
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (0.8, 0.7),
    series_uid: str,
    study_uid: str,
    for_uid: str,
    instance: int,
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    thickness: float = 5.0,
    bits: int = 16,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    acquisition: int = 1,
    series_number: int = 3,
    description: str = "",
) -> FileDataset:
    """One single-frame CT image (uint16 stored values) with full geometry tags.

    The CT Image module's type 1/2 attributes are filled so that ``dciodvfy`` has no error to
    report about the source images of a SEG or SR (KVP, acquisition number, patient position).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.Modality = modality
    ds.PatientID = "SYNTH001"
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "liverseg-tests"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = instance
    ds.ImageType = list(image_type)
    ds.AcquisitionNumber = acquisition
    ds.KVP = 120
    ds.PatientPosition = "FFS"
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SliceThickness = thickness
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16 if bits == 16 else np.uint8)).tobytes()
    return ds


def write_volume_as_dicom(
    volume,
    folder: Path,
    *,
    intercept: float = -1024.0,
    study_uid: str | None = None,
    patient_id: str = "SYNTH001",
    series_number: int = 3,
) -> Path:
    """Write a HU ``Volume`` (any direction) as a single-frame CT series, one file per slice.

    File names are ``slice_<rank>`` in a shuffled order so readers must sort by position.
    """
    folder.mkdir(parents=True, exist_ok=True)
    d = np.asarray(volume.direction)
    orientation = [*d[:, 0], *d[:, 1]]
    series_uid, for_uid = generate_uid(), generate_uid()
    study_uid = study_uid or generate_uid()
    dz, dy, dx = volume.spacing
    rng = np.random.default_rng(0)
    names = rng.permutation(volume.shape[0])
    for z in range(volume.shape[0]):
        position = volume.index_to_physical(np.array([z, 0, 0]))
        stored = np.clip(np.rint(volume.array[z] - intercept), 0, 65535)
        ds = ct_slice(
            stored,
            position=position,
            orientation=orientation,
            pixel_spacing=(dy, dx),
            series_uid=series_uid,
            study_uid=study_uid,
            for_uid=for_uid,
            instance=z + 1,
            intercept=intercept,
            thickness=dz,
            series_number=series_number,
        )
        ds.PatientID = patient_id
        ds.save_as(folder / f"slice_{names[z]:04d}", enforce_file_format=True)
    return folder


def non_image(
    sop_class_uid: str,
    *,
    series_uid: str,
    study_uid: str,
    modality: str,
    series_number: int = 99,
    rgb_matrix: tuple[int, int] | None = None,
) -> FileDataset:
    """A DICOM object that is not a CT slice: an SR, KOS, presentation state (no pixels), or with
    ``rgb_matrix`` a colour secondary-capture picture without geometry (a dose screen)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, series_number, 1
    ds.PatientID, ds.PatientName = "SYNTH001", "Synthetic^Phantom"
    if rgb_matrix is not None:
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
        ds.Rows, ds.Columns = rgb_matrix
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.zeros((*rgb_matrix, 3), np.uint8).tobytes()
    return ds


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines of David Clunie's ``dciodvfy`` (Debian ``dicom3tools``) for one file.

    Skips the test when the tool is absent, but fails it in CI (``.ci/run`` installs it).
    """
    import os
    import shutil
    import subprocess

    import pytest

    exe = shutil.which("dciodvfy")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dciodvfy is not installed in CI (.ci/run installs Debian dicom3tools)")
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=300)
    return [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
