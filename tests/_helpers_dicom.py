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


DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"  # X-Ray Radiation Dose SR
KOS = "1.2.840.10008.5.1.4.1.1.88.59"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


class Study:
    """Writes the files of one synthetic study (shared study / frame of reference UIDs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.study_uid, self.for_uid = generate_uid(), generate_uid()
        self.rng = np.random.default_rng(0)

    def series(
        self,
        folder: str,
        z: Sequence[float],
        *,
        number: int,
        series_uid: str | None = None,
        image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
        acquisition: int = 1,
        thickness: float = 2.5,
        orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
        shape: tuple[int, int] = (6, 7),
        prefix: str = "IM",
        xy: tuple[float, float] = (-20.0, 30.0),
    ) -> tuple[str, np.ndarray, list[str]]:
        """Write a stack; returns (series UID, HU in ascending position order, file names)."""
        out = self.root / folder
        out.mkdir(parents=True, exist_ok=True)
        uid = series_uid or generate_uid()
        row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
        normal = np.cross(row, col)
        stored = self.rng.integers(0, 2000, size=(len(z), *shape)).astype(np.uint16)
        names = []
        for k, pos in enumerate(z):
            ds = ct_slice(
                stored[k],
                position=row * xy[0] + col * xy[1] + normal * pos,
                orientation=orientation,
                series_uid=uid,
                study_uid=self.study_uid,
                for_uid=self.for_uid,
                instance=k + 1,
                thickness=thickness,
                image_type=image_type,
                acquisition=acquisition,
                series_number=number,
            )
            name = f"{prefix}{acquisition}_{k:03d}"
            ds.save_as(out / name, enforce_file_format=True)
            names.append(f"{folder}/{name}")
        order = np.argsort(np.asarray(z), kind="stable")
        return uid, (stored.astype(np.float32) - 1024.0)[order], [names[i] for i in order]

    def other(self, name: str, sop_class: str, *, modality: str, rgb: bool = False) -> None:
        ds = non_image(
            sop_class,
            series_uid=generate_uid(),
            study_uid=self.study_uid,
            modality=modality,
            rgb_matrix=(8, 8) if rgb else None,
        )
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(self.root / name, enforce_file_format=True)


def write_messy_export(root: Path) -> dict:
    """The export of issue 10 under ``root``: an axial series (number 3, 12 slices) with a coronal
    reformat saved into it, localizers, a derived copy of the series (number 4), a dose report,
    a KOS, a presentation state, a colour dose screen and a README.

    Returns ``root``, the axial series' UID, its HU (ascending position) and file names, and the
    derived series' UID.
    """
    st = Study(root)
    z = [2.5 * k for k in range(12)]
    uid, hu, names = st.series("SE3", z, number=3)
    # the scanner's coronal reformat, in the same series
    coronal = ct_slice(
        np.zeros((6, 12), np.uint16),
        position=(-20.0, 0.0, 27.5),
        orientation=(1, 0, 0, 0, 0, -1),
        series_uid=uid,
        study_uid=st.study_uid,
        for_uid=st.for_uid,
        instance=99,
        image_type=("DERIVED", "SECONDARY", "REFORMATTED"),
    )
    coronal.save_as(root / "SE3" / "IM_coronal", enforce_file_format=True)
    derived_uid, _, _ = st.series("SE4", z, number=4, image_type=("DERIVED", "SECONDARY", "AXIAL"))
    st.series(
        "SE1",
        [0.0, 1.0],
        number=1,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        orientation=(0, 1, 0, 0, 0, -1),
    )
    st.other("SE997/dose_sr", DOSE_SR, modality="SR")
    st.other("SE998/kos", KOS, modality="KO")
    st.other("SE999/gsps", GSPS, modality="PR")
    st.other("SE996/dose_screen", SECONDARY_CAPTURE, modality="CT", rgb=True)
    (root / "README.TXT").write_text("export made by a PACS workstation")
    return {"root": root, "uid": uid, "hu": hu, "names": names, "derived": derived_uid}


def sample_slab(n_slices: int = 24):
    """``n_slices`` slices of the bundled sample CT through the middle of its liver (HU volume):
    small enough for a real-model run in seconds."""
    from liverseg.io import Volume, read_volume

    sample = Path(__file__).resolve().parents[1] / "src" / "liverseg" / "sample"
    image = read_volume(sample / "chaos_ct3_image.nii.gz")
    label = read_volume(sample / "chaos_ct3_label.nii.gz", kind="label")
    z = np.flatnonzero(label.array.any(axis=(1, 2)))
    start = int(z[len(z) // 2]) - n_slices // 2
    origin = image.index_to_physical(np.array([start, 0, 0]))
    return Volume(image.array[start : start + n_slices], image.spacing, origin, image.direction)
