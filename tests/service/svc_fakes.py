"""Test helpers for the service: synthetic CT files and a fast fake segmenter.

The fake segmenter has the signature of ``liverseg.service.jobs.run_job_segmentation`` and
writes the same outputs (label map on the input grid, report JSON with the contract's fields,
HTML report). It thresholds HU: 40..100 -> liver (1), -10..30 -> tumor (2), which is exact on
the phantom made by :func:`make_ct` (the real pipeline is exercised by the e2e test when present).
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from scipy import ndimage

from liverseg.io import Volume, read_volume, write_volume
from liverseg.utils import atomic_write_text

HERE = Path(__file__).resolve().parent
LIVER_HU, TUMOR_HU = 70.0, 10.0
PASSWORDS = {"admin": "admin-password-1", "alice": "alice-password-1", "bob": "bob-password-12"}


def subprocess_env() -> dict[str, str]:
    """Environment for server/worker subprocesses, so that they can import this module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def upload(client: Any, path: Path, label: str = "case") -> Any:
    """POST a file as a study upload (raw body) with a TestClient/httpx client; returns the response."""
    return client.post(
        "/api/studies",
        content=path.read_bytes(),
        headers={"Content-Type": "application/octet-stream", "X-Study-Label": quote(label)},
    )


def make_ct(
    shape: tuple[int, int, int] = (20, 48, 48),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
    direction: np.ndarray | None = None,
) -> Volume:
    """Phantom CT (z, y, x) in HU: air, a fat body ellipse, a liver ellipsoid with two tumors."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    arr = np.full(shape, -1000.0, dtype=np.float32)
    arr[(y / 0.9) ** 2 + (x / 0.95) ** 2 < 1] = -100.0
    arr[(z / 0.8) ** 2 + ((y - 0.1) / 0.6) ** 2 + ((x + 0.3) / 0.5) ** 2 < 1] = LIVER_HU
    arr[(z / 0.35) ** 2 + ((y - 0.1) / 0.2) ** 2 + ((x + 0.3) / 0.2) ** 2 < 1] = TUMOR_HU  # big tumor
    arr[((z - 0.5) / 0.2) ** 2 + ((y - 0.3) / 0.12) ** 2 + ((x + 0.5) / 0.12) ** 2 < 1] = (
        TUMOR_HU  # small one
    )
    return Volume(arr, spacing, (-20.0, -20.0, -25.0), np.eye(3) if direction is None else direction)


def write_ct(path: Path, **kw: Any) -> Path:
    """Write :func:`make_ct` as NIfTI (suffix decides .nii / .nii.gz)."""
    write_volume(make_ct(**kw), path)
    return path


def fake_labels(image: np.ndarray) -> np.ndarray:
    """The fake segmentation of an HU array: uint8 0/1/2."""
    labels = np.zeros(image.shape, np.uint8)
    labels[(image >= 40) & (image <= 100)] = 1
    labels[(image >= -10) & (image <= 30)] = 2
    return labels


def _lesions(image: Volume, labels: np.ndarray) -> list[dict[str, Any]]:
    comp, n = ndimage.label(labels == 2)
    out = []
    for i in range(1, n + 1):
        mask = comp == i
        zz, yy, xx = np.nonzero(mask)
        per_slice = mask.sum(axis=(1, 2))
        largest = int(np.argmax(per_slice))
        centroid = [float(zz.mean()), float(yy.mean()), float(xx.mean())]
        extent_mm = (xx.max() - xx.min() + 1) * image.spacing[2]
        out.append(
            {
                "id": i,
                "volume_ml": float(mask.sum() * image.voxel_volume_ml),
                "longest_axial_diameter_mm": float(extent_mm),
                "short_axis_mm": float(extent_mm) * 0.9,
                "recist_measurable": bool(extent_mm >= 10),
                "centroid_voxel_zyx": centroid,
                "centroid_lps_mm": image.index_to_physical(np.asarray(centroid)).tolist(),
                "mean_hu": float(image.array[mask].mean()),
                "std_hu": float(image.array[mask].std()),
                "slice_range": [int(zz.min()), int(zz.max())],
                "largest_slice": largest,
                "location": {"side": "right", "level": "middle"},
                "diameter_endpoints_voxel": [],
            }
        )
    out.sort(key=lambda d: -d["volume_ml"])
    for k, d in enumerate(out, 1):
        d["id"] = k
    return out


def fake_segmenter(
    input_path: Path, out_dir: Path, *, model: str, dicom_input: bool, progress: Any, delay_s: float = 0.0
) -> dict[str, Any]:
    """Fast stand-in for the real pipeline (same outputs and report schema)."""
    t0 = time.perf_counter()
    progress("read", 0.0)
    image = read_volume(input_path, kind="image")
    steps = 6
    for k in range(steps):
        if delay_s:
            time.sleep(delay_s / steps)
        progress("segment", (k + 1) / steps)
    labels = fake_labels(image.array)
    write_volume(image.with_array(labels), out_dir / "labels.nii.gz")
    liver_ml = float((labels >= 1).sum() * image.voxel_volume_ml)
    tumor_ml = float((labels == 2).sum() * image.voxel_volume_ml)
    lesions = _lesions(image, labels)
    report = {
        "schema_version": "1.0",
        "liver_found": liver_ml > 0,
        "liver_volume_ml": liver_ml,
        "tumor_volume_ml": tumor_ml,
        "tumor_burden_percent": 100.0 * tumor_ml / liver_ml if liver_ml else 0.0,
        "lesion_count": len(lesions),
        "lesions": lesions,
        "model": {"name": "fake", "version": "0.0.1", "ref": model},
        "timings_s": {"read": 0.01, "segment": time.perf_counter() - t0, "total": time.perf_counter() - t0},
        "software": {"liverseg": "test"},
        "input": {"name": input_path.name, "geometry": image.geometry()},
        "warnings": [],
        "disclaimer": "Research use only.",
    }
    atomic_write_text(out_dir / "report.json", json.dumps(report))
    atomic_write_text(
        out_dir / "report.html", f"<html><body><h1>Report</h1><p>{len(lesions)} lesions</p></body></html>"
    )
    progress("report", 1.0)
    return report


def slow_fake_segmenter(input_path: Path, out_dir: Path, **kw: Any) -> dict[str, Any]:
    """The fake segmenter taking ~4 s (for kill-and-resume tests)."""
    return fake_segmenter(input_path, out_dir, delay_s=4.0, **kw)


def failing_segmenter(input_path: Path, out_dir: Path, **kw: Any) -> dict[str, Any]:
    """A segmenter that always crashes with an unexpected error."""
    raise RuntimeError("simulated crash inside the pipeline")


def dicom_zip_bytes(n_slices: int = 4, shape: tuple[int, int] = (16, 16)) -> bytes:
    """A zip of a tiny CT DICOM series written with pydicom."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    series, study = generate_uid(), generate_uid()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k in range(n_slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, study
            ds.PatientName, ds.PatientID = "Test^Patient", "TP1"
            ds.Rows, ds.Columns = shape
            ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.0
            ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.InstanceNumber = k + 1
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.PixelData = (np.full(shape, 1024 + 60, np.int16)).tobytes()
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            zf.writestr(f"series/IM{k:04d}", out.getvalue())
    return buf.getvalue()
