"""Real expert labels (3D-IRCADb-01 patient 17: liver and two tumors), skipped when absent.

The masks are read with pydicom straight from the unmodified zips (slice order from
ImagePositionPatient), so this test does not depend on the I/O stage.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest

from liverseg.io import Volume
from liverseg.metrics import evaluate_case
from liverseg.reporting import build_report

pytestmark = pytest.mark.shared_data


def _stack(zip_path, folder: str) -> tuple[np.ndarray, dict]:
    """Read one DICOM series folder of a zip -> (array (z, y, x) float32 after rescale, geometry)."""
    with zipfile.ZipFile(zip_path) as zf:
        names = [n for n in zf.namelist() if n.startswith(folder + "/") and not n.endswith("/")]
        slices = [pydicom.dcmread(io.BytesIO(zf.read(n))) for n in names]
    row, col = np.asarray(slices[0].ImageOrientationPatient, dtype=float).reshape(2, 3)
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float))))
    pos = np.array([np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float)) for ds in slices])
    arr = np.stack(
        [
            ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1))
            + float(getattr(ds, "RescaleIntercept", 0))
            for ds in slices
        ]
    )
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    geometry = {
        "spacing": (float(np.median(np.diff(pos))), dy, dx),
        "origin": tuple(float(v) for v in slices[0].ImagePositionPatient),
        "direction": np.column_stack([row, col, normal]),
    }
    return arr, geometry


def test_real_liver_with_two_tumors(shared_data):
    root = shared_data / "ircadb" / "3Dircadb1.17"
    if not (root / "MASKS_DICOM.zip").is_file():
        pytest.skip(f"shared data not present: {root}")
    masks = root / "MASKS_DICOM.zip"
    liver, geo = _stack(masks, "MASKS_DICOM/liver")
    tumor = np.zeros(liver.shape, dtype=bool)
    for name in ("livertumor1", "livertumor2"):
        tumor |= _stack(masks, f"MASKS_DICOM/{name}")[0] > 0
    hu, geo_ct = _stack(root / "PATIENT_DICOM.zip", "PATIENT_DICOM")
    assert hu.shape == liver.shape and np.allclose(geo["spacing"], geo_ct["spacing"])
    labels_arr = np.where(tumor, 2, np.where(liver > 0, 1, 0)).astype(np.uint8)
    image = Volume(hu, geo_ct["spacing"], geo_ct["origin"], geo_ct["direction"])
    labels = image.with_array(labels_arr)

    report = build_report(
        image,
        labels,
        model={"name": "reference", "version": "expert"},
        timings_s={},
        input_info={"name": "3Dircadb1.17"},
        warnings=[],
    )
    assert report["liver_found"] and 800 < report["liver_volume_ml"] < 3000
    assert report["lesion_count"] >= 2
    assert sum(les["volume_ml"] for les in report["lesions"]) == pytest.approx(
        report["tumor_volume_ml"], rel=1e-3
    )
    big = report["lesions"][0]
    assert (
        5 < big["longest_axial_diameter_mm"] < 150
        and big["short_axis_mm"] <= big["longest_axial_diameter_mm"]
    )
    assert -100 < big["mean_hu"] < 250  # soft tissue, in HU
    # liver on the patient's right: its centroid has negative LPS x relative to the body centre
    assert report["liver_centroid_lps_mm"][0] < image.index_to_physical(np.array(image.shape) / 2)[0]

    perfect = evaluate_case(labels_arr, labels_arr, geo["spacing"])
    assert perfect["liver"]["dice"] == 1.0 and perfect["tumor"]["assd"] == 0.0
    assert perfect["lesions"]["recall"] == 1.0 and perfect["lesions"]["n_ref"] == report["lesion_count"]
