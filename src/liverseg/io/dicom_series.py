"""Reading a DICOM CT series from a folder or a ``.zip`` archive into a :class:`Volume`.

Why not ``SimpleITK.ImageSeriesReader`` / ``highdicom.get_volume_from_series``: they need the
files on disk (or all datasets with pixels in memory), and their ordering/gap handling does not
give the per-file diagnostics the product promises (missing slice named by position, a stray
slice dropped with a warning, rescale per slice). pydicom does the parsing and decoding; the
policies live in :mod:`liverseg.io.dicom_geometry`. Pixels are decoded slice by slice into one
preallocated float32 array, so memory stays at the size of the output volume.
"""

from __future__ import annotations

import logging
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from liverseg.errors import InputError
from liverseg.io.dicom_geometry import SliceHeader, order_slices
from liverseg.io.dicom_identity import identity_from_dataset
from liverseg.io.sources import FileSource, is_dicom_stream
from liverseg.io.volume import Volume
from liverseg.utils import progress

__all__ = ["SeriesInfo", "list_dicom_series", "read_dicom_series", "read_slice_header"]

log = logging.getLogger(__name__)

#: SOP classes that are never part of an image volume (SEG, RTSTRUCT, SR, DICOMDIR, KOS, PR, ...)
_NON_IMAGE_PREFIXES = (
    "1.2.840.10008.1.3.10",
    "1.2.840.10008.5.1.4.1.1.66",
    "1.2.840.10008.5.1.4.1.1.481",
    "1.2.840.10008.5.1.4.1.1.88",
    "1.2.840.10008.5.1.4.1.1.11",
)


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


def read_slice_header(ds: pydicom.Dataset, member: str) -> SliceHeader:
    """Extract the values :func:`~liverseg.io.dicom_geometry.order_slices` needs from a dataset."""
    thickness = _floats([ds.get("SliceThickness")], 1) if ds.get("SliceThickness") not in (None, "") else None
    meta = getattr(ds, "file_meta", None)
    return SliceHeader(
        member=member,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        modality=str(ds.get("Modality", "")).upper(),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        position=_floats(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=_floats(ds.get("PixelSpacing"), 2),  # type: ignore[arg-type]
        number_of_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        slice_thickness=thickness[0] if thickness else None,
        transfer_syntax_uid=str(meta.get("TransferSyntaxUID", "")) if meta is not None else "",
    )


def _is_image(h: SliceHeader) -> bool:
    return h.rows > 0 and h.columns > 0 and not h.sop_class_uid.startswith(_NON_IMAGE_PREFIXES)


def _scan(src: FileSource, subfolder: str | None) -> list[SliceHeader]:
    prefix = None if not subfolder else subfolder.strip("/") + "/"
    members = [m for m in src.members if prefix is None or m.startswith(prefix)]
    if not members:
        raise InputError(f"no files under {subfolder!r}; expected DICOM slices there", src.path)
    headers: list[SliceHeader] = []
    skipped = 0
    for member in progress(members, desc="DICOM headers"):
        try:
            with src.open_header(member) as fh:
                if not is_dicom_stream(fh):
                    log.debug("%s: skipping %s (no DICOM preamble)", src.path, member)
                    skipped += 1
                    continue
                h = read_slice_header(pydicom.dcmread(fh, stop_before_pixels=True), member)
        except Exception as exc:  # pydicom raises many types on malformed files: skip like non-DICOM
            log.debug(
                "%s: skipping %s (unreadable DICOM header: %s: %s)", src.path, member, type(exc).__name__, exc
            )
            skipped += 1
            continue
        if not _is_image(h):
            log.debug("%s: skipping %s (not an image: SOP class %s)", src.path, member, h.sop_class_uid)
            skipped += 1
            continue
        headers.append(h)
    if not headers:
        example = ", ".join(members[:3])
        raise InputError(
            f"expected DICOM image files, found none among {len(members)} file(s) "
            f"(e.g. {example}; {skipped} skipped as non-DICOM or non-image)",
            src.path,
        )
    return headers


class SeriesInfo(TypedDict):
    """Summary of one series found by :func:`list_dicom_series` (a plain ``dict``)."""

    series_instance_uid: str
    modality: str
    n_files: int
    series_number: int | None
    series_description: str
    folder: str  # the common parent folder / zip prefix of its files ("" when several)


def _group(headers: Sequence[SliceHeader]) -> dict[str, list[SliceHeader]]:
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in headers:
        groups[h.series_instance_uid].append(h)
    return dict(groups)


def _info(uid: str, hs: Sequence[SliceHeader]) -> SeriesInfo:
    folders = {str(Path(h.member).parent) for h in hs}
    return SeriesInfo(
        series_instance_uid=uid,
        modality=hs[0].modality,
        n_files=len(hs),
        series_number=hs[0].series_number,
        series_description=hs[0].series_description,
        folder=folders.pop() if len(folders) == 1 else "",
    )


def list_dicom_series(path: str | Path, *, subfolder: str | None = None) -> list[SeriesInfo]:
    """List the image series in a DICOM folder or zip (largest first; headers only)."""
    with FileSource(path) as src:
        groups = _group(_scan(src, subfolder))
    infos = [_info(uid, hs) for uid, hs in groups.items()]
    return sorted(infos, key=lambda i: (-i["n_files"], i["folder"], i["series_instance_uid"]))


def _select(groups: dict[str, list[SliceHeader]], uid: str | None, path: Path) -> str:
    if uid is not None:
        if uid not in groups:
            raise InputError(f"expected series {uid}, found only {sorted(groups)}", path)
        return uid

    def rank(u: str) -> tuple[int, str]:
        return (-len(groups[u]), min(h.member for h in groups[u]))

    ct = sorted((u for u in groups if groups[u][0].modality == "CT"), key=rank)
    if ct:
        chosen = ct[0]
    else:
        chosen = sorted(groups, key=rank)[0]
        log.warning(
            "%s: no CT series found; using the largest image series (modality %r, %d files)",
            path,
            groups[chosen][0].modality or "missing",
            len(groups[chosen]),
        )
    others = [u for u in groups if u != chosen]
    if others:
        log.info(
            "%s: %d series found; using %s (%s, %d files, in %s); skipped: %s",
            path,
            len(groups),
            chosen,
            groups[chosen][0].modality,
            len(groups[chosen]),
            _info(chosen, groups[chosen])["folder"] or "several folders",
            "; ".join(f"{u} ({groups[u][0].modality}, {len(groups[u])} files)" for u in others),
        )
    return chosen


def _decode_error(ds: pydicom.Dataset, member: str, exc: Exception, path: Path) -> InputError:
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) if hasattr(ds, "file_meta") else UID("")
    name = ts.name if ts else "unknown"
    reason = " ".join(str(exc).split())  # one line: the CLI prints the message as one line
    return InputError(
        f"cannot decode the pixel data of {member}: transfer syntax {name} ({ts or 'missing'}); "
        f"its decoder is missing or failed ({type(exc).__name__}: {reason}). Install python-gdcm for "
        "more transfer syntaxes (e.g. JPEG Lossless process 14), or convert the series to uncompressed",
        path,
    )


def _read_multiframe(src: FileSource, header: SliceHeader) -> Volume:
    """A single enhanced (multi-frame) CT object, read with highdicom's geometry handling."""
    import highdicom as hd

    from liverseg.io.hd_bridge import from_highdicom

    with src.open(header.member) as fh:
        ds = pydicom.dcmread(fh)
    try:
        hvol = hd.Image.from_dataset(ds, copy=False).get_volume(
            dtype=np.float32, apply_modality_transform=True
        )
        # Same convention as single-frame series: slices ascend along cross(row, column). In
        # highdicom's (slice, row, column) axis order that is a left-handed frame.
        hvol = hvol.ensure_handedness(hd.AxisHandedness.LEFT_HANDED, flip_axis=0)
    except (ValueError, RuntimeError, NotImplementedError) as exc:
        raise InputError(
            f"cannot build a volume from the multi-frame image {header.member}: {exc}", src.path
        ) from exc
    return from_highdicom(hvol)


def read_dicom_series(
    path: str | Path,
    *,
    series_instance_uid: str | None = None,
    subfolder: str | None = None,
    dtype: Any = np.float32,
) -> Volume:
    """Read one DICOM image series (folder, searched recursively, or ``.zip``) as a volume.

    Files are recognised by their DICOM preamble whatever their name; other files are skipped.
    When several series are present the CT series with the most slices is used (INFO log
    naming it and the skipped ones) unless ``series_instance_uid`` picks one.

    Args:
        path: folder or zip archive.
        series_instance_uid: read this series instead of choosing automatically.
        subfolder: only consider files under this relative folder / zip member prefix
            (e.g. ``"MASKS_DICOM/liver"`` inside a 3D-IRCADb masks zip).
        dtype: output dtype (default float32).

    Returns:
        Volume, array ``(z, y, x)`` = stored value * RescaleSlope + RescaleIntercept (HU for CT),
        ordered along the slice normal; ``metadata["source"]`` and ``metadata["dicom"]`` (series /
        study / frame-of-reference UIDs, ``sop_instance_uids``, ``instance_numbers`` and ``files``
        in slice order, ``identity`` (:func:`~liverseg.io.dicom_identity.identity_from_dataset`),
        ``dropped_files``, ``modality``, ``patient_id``, ``container`` ("folder"/"zip"), ...).

    Raises:
        InputError: missing path, empty folder, no DICOM images, single slice, inconsistent or
            gapped series, undecodable pixel data.
    """
    path = Path(path)
    with FileSource(path) as src:
        groups = _group(_scan(src, subfolder))
        uid = _select(groups, series_instance_uid, path)
        headers = groups[uid]
        if any(h.number_of_frames > 1 for h in headers):
            if len(headers) > 1:
                raise InputError(
                    f"expected one multi-frame image or single-frame slices, got {len(headers)} "
                    "multi-frame objects in one series",
                    path,
                )
            vol = _read_multiframe(src, headers[0])
            geometry_slices: Sequence[SliceHeader] = headers
            dropped: Sequence[SliceHeader] = ()
            array = vol.array.astype(dtype, copy=False)
            spacing, origin, direction = vol.spacing, vol.origin, vol.direction
        else:
            geo = order_slices(headers, str(path))
            geometry_slices, dropped = geo.slices, geo.dropped
            spacing, origin, direction = geo.spacing, geo.origin, geo.direction
            h0 = geo.slices[0]
            array = np.empty((len(geo.slices), h0.rows, h0.columns), dtype=dtype)
            for k, h in enumerate(progress(geo.slices, desc="DICOM slices")):
                array[k] = _read_pixels(src, h, path)
        with src.open_header(geometry_slices[0].member) as fh:
            identity = identity_from_dataset(pydicom.dcmread(fh, stop_before_pixels=True))
    h0 = geometry_slices[0]
    dicom_meta = {
        "series_instance_uid": uid,
        "study_instance_uid": h0.study_instance_uid,
        "frame_of_reference_uid": h0.frame_of_reference_uid,
        "sop_instance_uids": [h.sop_instance_uid for h in geometry_slices],
        "instance_numbers": [h.instance_number for h in geometry_slices],
        "files": [h.member for h in geometry_slices],
        "dropped_files": [h.member for h in dropped],
        "modality": h0.modality,
        "patient_id": h0.patient_id,
        "series_number": h0.series_number,
        "series_description": h0.series_description,
        "slice_thickness_mm": h0.slice_thickness,
        "transfer_syntax_uid": h0.transfer_syntax_uid,
        "container": src.kind,
        "n_series_found": len(groups),
        "identity": identity,
    }
    log.debug("%s: read %d slices %s, spacing %s mm", path, array.shape[0], array.shape, spacing)
    return Volume(array, spacing, origin, direction, {"source": str(path), "dicom": dicom_meta})


def _read_pixels(src: FileSource, h: SliceHeader, path: Path) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    try:
        with src.open(h.member) as fh:
            ds = pydicom.dcmread(fh)
    except (InvalidDicomError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {h.member} ({type(exc).__name__}: {exc})", path) from exc
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(
            f"expected grayscale slices (SamplesPerPixel 1), got {ds.SamplesPerPixel} in {h.member}", path
        )
    try:
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for missing/failed decoders
        raise _decode_error(ds, h.member, exc, path) from exc
    if raw.shape != (h.rows, h.columns):
        raise InputError(f"expected a {h.rows}x{h.columns} pixel matrix in {h.member}, got {raw.shape}", path)
    return apply_modality_lut(raw, ds)
