"""Writing a DICOM structured report (Comprehensive 3D SR) that holds a TID 1500 measurement report.

The content comes from :func:`liverseg.reporting.dicom_sr.measurement_report`; this module wraps
it into an SR document of the source study (highdicom copies the patient and study from the
evidence) and lists the DICOM-SEG and the source CT images as evidence. The document is marked
complete, preliminary and unverified: automatic measurements await a clinician's review.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from liverseg.errors import InputError, OutputError
from liverseg.io.volume import Volume
from liverseg.utils import atomic_path

__all__ = ["write_dicom_sr"]

log = logging.getLogger(__name__)


def write_dicom_sr(
    content: Any,
    *,
    evidence: Sequence[Any],
    source: Volume,
    path: str | Path,
    coding_schemes: Mapping[str, str] | None = None,
) -> Path:
    """Write ``content`` (a ``highdicom.sr.MeasurementReport``) as a Comprehensive 3D SR file.

    Args:
        content: the TID 1500 content.
        evidence: every instance the content references (the DICOM-SEG, the source CT images;
            headers are enough).
        source: the CT volume (its DICOM metadata gives the series number).
        path: output ``.dcm`` (written atomically).
        coding_schemes: local coding scheme designators used in ``content`` -> their name,
            declared in the Coding Scheme Identification Sequence.

    Raises:
        InputError: the evidence does not fit the content (highdicom's message).
        OutputError: the file cannot be written.
    """

    dicom = source.metadata.get("dicom") or {}
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=list(evidence),
            content=content,
            series_instance_uid=generate_uid(),
            series_number=int(dicom.get("series_number") or 0) + 1001,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="liverseg",
            is_complete=True,
            is_final=False,
            is_verified=False,
            series_description="liverseg measurements (research use, not verified)",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot build the DICOM SR ({exc})", source.metadata.get("source")) from exc
    if coding_schemes:
        items = []
        for designator, name in coding_schemes.items():
            item = Dataset()
            item.CodingSchemeDesignator = designator
            item.CodingSchemeName = name
            item.CodingSchemeResponsibleOrganization = "liverseg developers"
            items.append(item)
        sr.CodingSchemeIdentificationSequence = items
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            sr.save_as(tmp)
        except OSError as exc:
            raise OutputError(f"cannot write the DICOM SR ({exc.strerror or exc})", path) from exc
    log.info("wrote DICOM SR (TID 1500) to %s", path)
    return path
