"""Fixtures of the PACS tests: a small real CT slab as DICOM, pushed into the test Orthanc."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from _helpers_dicom import ct_slice, non_image, write_volume_as_dicom
from _helpers_orthanc import OrthancServer
from liverseg.io import Volume, read_volume
from liverseg.pacs import PacsClient, PacsConfig

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src" / "liverseg" / "sample"


@pytest.fixture(scope="session")
def slab() -> Volume:
    """24 slices of the bundled sample through the liver (a fast real-model run)."""
    image = read_volume(SAMPLE / "chaos_ct3_image.nii.gz")
    label = read_volume(SAMPLE / "chaos_ct3_label.nii.gz", kind="label")
    z = np.flatnonzero(label.array.any(axis=(1, 2)))
    mid = int(z[len(z) // 2])
    origin = image.index_to_physical(np.array([mid - 12, 0, 0]))
    return Volume(image.array[mid - 12 : mid + 12], image.spacing, origin, image.direction)


def client_for(server: OrthancServer) -> PacsClient:
    return PacsClient(PacsConfig(server.dicomweb, server.username, server.password, timeout_s=120))


@pytest.fixture
def make_study(orthanc: OrthancServer, slab: Volume, tmp_path: Path) -> Callable[..., dict]:
    """Write a study (the CT slab and, optionally, a localizer and a dose report) and push it.

    Returns the study/series UIDs, the patient id (unique per call) and the local CT folder.
    """

    def make(*, localizer: bool = True, dose_report: bool = True, ct: bool = True) -> dict:
        patient = f"LS-{uuid.uuid4().hex[:10]}"
        study = generate_uid()
        folder = tmp_path / patient
        folder.mkdir()
        files: list[Path] = []
        ct_series = None
        if ct:
            write_volume_as_dicom(slab, folder / "ct", study_uid=study, patient_id=patient)
            files += sorted((folder / "ct").iterdir())
            ct_series = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        if localizer:
            loc_series = generate_uid()
            for k in range(2):
                ds = ct_slice(
                    np.zeros((32, 32), np.uint16),
                    position=(0.0, -100.0 + 5 * k, 0.0),
                    orientation=(1, 0, 0, 0, 0, -1),
                    series_uid=loc_series,
                    study_uid=study,
                    for_uid=generate_uid(),
                    instance=k + 1,
                    image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                    series_number=1,
                )
                ds.PatientID = patient
                files.append(folder / f"loc{k}.dcm")
                ds.save_as(files[-1], enforce_file_format=True)
        if dose_report:
            ds = non_image(
                "1.2.840.10008.5.1.4.1.1.88.67", series_uid=generate_uid(), study_uid=study, modality="SR"
            )
            ds.PatientID = patient
            files.append(folder / "dose.dcm")
            ds.save_as(files[-1], enforce_file_format=True)
        client_for(orthanc).store([pydicom.dcmread(f) for f in files], study)
        return {"patient": patient, "study": study, "ct_series": ct_series, "ct_folder": folder / "ct"}

    return make
