"""Who and what was scanned: patient ID, accession number, study date and series description.

Read from the DICOM header of the series :func:`~liverseg.io.read_dicom_series` would choose
(same selection rule), so the identity shown beside a result is the identity of the images that
produced it. Patient names are never read. Values are stripped strings; an absent or empty tag
is ``None``; the study date becomes ``YYYY-MM-DD`` (a malformed date is ``None``, logged).
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

import pydicom

__all__ = ["IDENTITY_FIELDS", "format_dicom_date", "identity_from_dataset"]

log = logging.getLogger(__name__)

#: identity field -> DICOM keyword
IDENTITY_FIELDS = {
    "patient_id": "PatientID",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "series_description": "SeriesDescription",
}


def format_dicom_date(value: Any) -> str | None:
    """DICOM DA ``YYYYMMDD`` -> ``YYYY-MM-DD``; ``None`` when empty or not a valid date."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return _dt.datetime.strptime(text[:8], "%Y%m%d").date().isoformat()
    except ValueError:
        log.warning("ignoring a malformed DICOM StudyDate (expected YYYYMMDD)")
        return None


def identity_from_dataset(ds: pydicom.Dataset) -> dict[str, str | None]:
    """The identity fields of one DICOM dataset (``None`` for absent or empty tags)."""
    out: dict[str, str | None] = {}
    for key, keyword in IDENTITY_FIELDS.items():
        raw = ds.get(keyword)
        if key == "study_date":
            out[key] = format_dicom_date(raw)
        else:
            text = str(raw or "").strip()
            out[key] = text or None
    return out
