"""Header scan of a DICOM export: which files are images, and why the others are left out.

Every file of a folder, zip or DICOMDIR (:class:`~liverseg.io.sources.FileSource`) is looked at
once, headers only. A file is kept as a candidate slice when it is a DICOM image with pixels
(single-frame or multi-frame); everything else is recorded as a :class:`SkippedFile` with one
short reason, so the user and the report can see what was left out:

* not DICOM (no ``DICM`` preamble), unreadable header;
* a DICOMDIR (its files are scanned directly);
* objects that are not images, by SOP class: structured reports (dose reports and other SR),
  key object selections, presentation states, segmentations, radiotherapy objects, raw data,
  encapsulated documents, waveforms;
* localizers / scouts (``ImageType`` value 3 ``LOCALIZER``);
* colour images (``SamplesPerPixel`` > 1: screenshots, dose screens), images without pixels.

Orientation, reformats and stack regularity are decided afterwards, per series, by
:mod:`liverseg.io.dicom_stacks`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import UID

from liverseg.errors import InputError
from liverseg.io.dicom_geometry import SliceHeader
from liverseg.io.sources import DICOMDIR_SOP_CLASS, FileSource, is_dicom_stream
from liverseg.utils import progress

__all__ = [
    "ScanResult",
    "SkippedFile",
    "classify",
    "non_image_reason",
    "read_slice_header",
    "scan_source",
    "summarize_skipped",
]

log = logging.getLogger(__name__)

#: SOP class UID prefixes of objects that are never part of an image volume, with their kind
_NON_IMAGE: tuple[tuple[str, str], ...] = (
    (DICOMDIR_SOP_CLASS, "DICOMDIR (media directory; its files are scanned directly)"),
    ("1.2.840.10008.5.1.4.1.1.88.59", "key object selection"),
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.66.4", "segmentation"),
    ("1.2.840.10008.5.1.4.1.1.66", "non-image object"),
    ("1.2.840.10008.5.1.4.1.1.481.", "radiotherapy object"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document"),
    ("1.2.840.10008.5.1.4.1.1.9.", "waveform"),
)


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of the volume, with the reason (one short phrase)."""

    member: str
    reason: str
    series_instance_uid: str = ""
    series_number: int | None = None
    modality: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.member,
            "reason": self.reason,
            "series_instance_uid": self.series_instance_uid or None,
            "series_number": self.series_number,
            "modality": self.modality or None,
        }


@dataclass
class ScanResult:
    """Candidate image headers and skipped files of one source."""

    images: list[SliceHeader]
    skipped: list[SkippedFile] = field(default_factory=list)
    n_files: int = 0


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n and all(np.isfinite(vals)) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _image_type(ds: pydicom.Dataset) -> tuple[str, ...]:
    value = ds.get("ImageType")
    if value is None or value == "":
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(v).strip().upper() for v in values)


def _shared_item(ds: pydicom.Dataset, sequence: str) -> Any:
    """The first item of ``sequence`` in the shared functional groups (else the first frame's)."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if seq and sequence in seq[0] and seq[0][sequence].value:
            return seq[0][sequence].value[0]
    return None


def _frame_positions(ds: pydicom.Dataset) -> tuple[tuple[float, float, float], ...] | None:
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    if not frames:
        return None
    positions = []
    for item in frames:
        plane = item.get("PlanePositionSequence")
        pos = _floats(plane[0].get("ImagePositionPatient"), 3) if plane else None
        if pos is None:
            return None
        positions.append(pos)
    return tuple(positions)  # type: ignore[arg-type]


def read_slice_header(ds: pydicom.Dataset, member: str) -> SliceHeader:
    """The values stack building and :func:`~liverseg.io.dicom_geometry.order_slices` need.

    For an enhanced (multi-frame) image, orientation, pixel spacing and thickness come from its
    functional groups and ``position`` is the first frame's.
    """
    meta = getattr(ds, "file_meta", None)
    frames = _int_or_none(ds.get("NumberOfFrames")) or 1
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    thickness_value = ds.get("SliceThickness")
    frame_positions = None
    if frames > 1:
        plane = _shared_item(ds, "PlaneOrientationSequence")
        measures = _shared_item(ds, "PixelMeasuresSequence")
        if plane is not None:
            orientation = orientation or _floats(plane.get("ImageOrientationPatient"), 6)
        if measures is not None:
            spacing = spacing or _floats(measures.get("PixelSpacing"), 2)
            thickness_value = thickness_value or measures.get("SliceThickness")
        frame_positions = _frame_positions(ds)
        if frame_positions:
            position = position or frame_positions[0]
    thickness = _floats([thickness_value], 1) if thickness_value not in (None, "") else None
    return SliceHeader(
        member=member,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        modality=str(ds.get("Modality", "")).upper(),
        sop_class_uid=str(
            ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else "")
        ),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        position=position,  # type: ignore[arg-type]
        orientation=orientation,
        pixel_spacing=spacing,  # type: ignore[arg-type]
        number_of_frames=frames,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        slice_thickness=thickness[0] if thickness else None,
        transfer_syntax_uid=str(meta.get("TransferSyntaxUID", "")) if meta is not None else "",
        image_type=_image_type(ds),
        acquisition_number=_int_or_none(ds.get("AcquisitionNumber")),
        samples_per_pixel=_int_or_none(ds.get("SamplesPerPixel")) or 1,
        body_part_examined=str(ds.get("BodyPartExamined", "") or "").upper(),
        frame_positions=frame_positions,
    )


def non_image_reason(sop_class_uid: str, rows: int, columns: int) -> str | None:
    """Why a DICOM object is not an image slice (by SOP class / matrix), or ``None``."""
    name = UID(sop_class_uid).name if sop_class_uid else "no SOP class"
    for prefix, kind in _NON_IMAGE:
        if sop_class_uid == prefix or (prefix.endswith(".") and sop_class_uid.startswith(prefix)):
            return kind if sop_class_uid == DICOMDIR_SOP_CLASS else f"{kind} ({name})"
    if sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1.66"):
        return f"non-image object ({name})"
    if rows <= 0 or columns <= 0:
        return f"no pixel data (not an image: {name})"
    return None


def _image_reason(h: SliceHeader) -> str | None:
    """Why an image is not a candidate slice (localizer, colour), or ``None``."""
    if len(h.image_type) >= 3 and h.image_type[2] == "LOCALIZER":
        return f"localizer / scout image (ImageType {'/'.join(h.image_type[:3])})"
    if h.samples_per_pixel != 1:
        return f"colour image (SamplesPerPixel {h.samples_per_pixel}), not CT data"
    return None


def classify(ds: pydicom.Dataset, member: str) -> SliceHeader | SkippedFile:
    """A candidate image header, or the reason this DICOM object is left out.

    Works on any header-only dataset: a file's, or one made from DICOMweb JSON metadata.
    """
    h = read_slice_header(ds, member)
    reason = non_image_reason(h.sop_class_uid, h.rows, h.columns) or _image_reason(h)
    if reason is None:
        return h
    return SkippedFile(member, reason, h.series_instance_uid, h.series_number, h.modality)


def scan_source(src: FileSource, subfolder: str | None = None) -> ScanResult:
    """Read every member's header; sort them into candidate images and skipped files.

    Args:
        src: the folder, zip or DICOMDIR.
        subfolder: only look at members under this relative folder / zip prefix.

    Raises:
        InputError: nothing under ``subfolder``, or no DICOM image at all (the message counts
            the skipped files by reason).
    """
    prefix = None if not subfolder else subfolder.strip("/") + "/"
    members = [m for m in src.members if prefix is None or m.startswith(prefix)]
    if not members:
        raise InputError(f"no files under {subfolder!r}; expected DICOM slices there", src.path)
    result = ScanResult(images=[], n_files=len(members))
    for member in progress(members, desc="DICOM headers"):
        try:
            with src.open_header(member) as fh:
                if not is_dicom_stream(fh):
                    log.debug("%s: skipping %s (no DICOM preamble)", src.path, member)
                    result.skipped.append(SkippedFile(member, "not a DICOM file"))
                    continue
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types on malformed files: skip like non-DICOM
            log.debug("%s: skipping %s (unreadable DICOM header: %s)", src.path, member, exc)
            result.skipped.append(SkippedFile(member, f"unreadable DICOM header ({type(exc).__name__})"))
            continue
        item = classify(ds, member)
        if isinstance(item, SkippedFile):
            log.debug("%s: skipping %s (%s)", src.path, member, item.reason)
            result.skipped.append(item)
        else:
            result.images.append(item)
    if not result.images:
        raise InputError(
            f"expected DICOM image files, found none among {len(members)} file(s) "
            f"(e.g. {', '.join(members[:3])}; skipped: {summarize_skipped(result.skipped)})",
            src.path,
        )
    return result


def summarize_skipped(skipped: Sequence[SkippedFile], limit: int = 4) -> str:
    """``"3 not a DICOM file; 1 localizer / scout image (...)"``: counts by reason."""
    counts: dict[str, int] = {}
    for s in skipped:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    parts = [f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    more = f"; and {len(parts) - limit} other reason(s)" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more if parts else "none"
