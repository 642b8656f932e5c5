"""Reading a DICOM CT volume from a folder, a ``.zip`` archive or a DICOMDIR.

The path from files to a :class:`Volume`:

1. :mod:`liverseg.io.dicom_scan` reads every header and sets aside what is not an image slice
   (non-DICOM files, SR / KOS / presentation states / SEG, localizers, colour screenshots);
2. :mod:`liverseg.io.dicom_stacks` groups the images into candidate stacks (per series, per
   orientation / spacing / matrix / image type, split by acquisition when needed);
3. :mod:`liverseg.io.dicom_select` picks one by documented rules (or the user's ``series``);
4. its pixels are decoded slice by slice (pydicom with the GDCM / pylibjpeg / pyjpegls plugins:
   JPEG lossless, JPEG-LS, JPEG 2000, RLE, deflate) into one preallocated float32 array in HU;
   a gantry-tilted stack is resampled onto a regular grid (:mod:`liverseg.io.dicom_tilt`); an
   enhanced multi-frame image goes through highdicom's geometry handling.

Why not ``SimpleITK.ImageSeriesReader`` / ``highdicom.get_volume_from_series``: they need the
files on disk (or all datasets in memory), and neither gives the per-file account of what was
left out and why that the product promises.
"""

from __future__ import annotations

import logging
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any, TypedDict

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID

from liverseg.errors import InputError
from liverseg.io.dicom_geometry import SliceHeader
from liverseg.io.dicom_identity import identity_from_dataset
from liverseg.io.dicom_scan import read_slice_header, scan_source
from liverseg.io.dicom_select import Selection, select_stack
from liverseg.io.dicom_stacks import Stack, find_stacks
from liverseg.io.dicom_tilt import describe_tilt, resample_tilted, tilt_grid
from liverseg.io.hd_bridge import from_highdicom
from liverseg.io.limits import check_voxel_count
from liverseg.io.sources import FileSource
from liverseg.io.volume import Volume
from liverseg.utils import progress

__all__ = [
    "SeriesInfo",
    "inspect_dicom",
    "list_dicom_series",
    "read_dicom_series",
    "read_series_identity",
    "read_slice_header",
]

log = logging.getLogger(__name__)


class SeriesInfo(TypedDict):
    """Summary of one series found by :func:`list_dicom_series` (a plain ``dict``)."""

    series_instance_uid: str
    modality: str
    n_files: int
    series_number: int | None
    series_description: str
    folder: str  # the common parent folder / zip prefix of its files ("" when several)


def list_dicom_series(path: str | Path, *, subfolder: str | None = None) -> list[SeriesInfo]:
    """List the image series in a DICOM folder, zip or DICOMDIR (largest first; headers only)."""
    with FileSource(path) as src:
        images = scan_source(src, subfolder).images
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in images:
        groups[h.series_instance_uid].append(h)
    infos = []
    for uid, hs in groups.items():
        folders = {str(Path(h.member).parent) for h in hs}
        infos.append(
            SeriesInfo(
                series_instance_uid=uid,
                modality=hs[0].modality,
                n_files=len(hs),
                series_number=hs[0].series_number,
                series_description=hs[0].series_description,
                folder=folders.pop() if len(folders) == 1 else "",
            )
        )
    return sorted(infos, key=lambda i: (-i["n_files"], i["folder"], i["series_instance_uid"]))


def _select(src: FileSource, subfolder: str | None, series: str | None) -> Selection:
    scan = scan_source(src, subfolder)
    stacks, rejected, skipped = find_stacks(scan.images)
    return select_stack(
        stacks, rejected, [*scan.skipped, *skipped], series=series, source=src.path, n_files=scan.n_files
    )


def inspect_dicom(path: str | Path, *, series: str | None = None, subfolder: str | None = None) -> Selection:
    """Scan a DICOM folder / zip / DICOMDIR and choose a stack, without reading pixels.

    The same decision :func:`read_dicom_series` makes (``liverseg dicom ls`` prints it).
    """
    with FileSource(path) as src:
        return _select(src, subfolder, series)


def _decode_error(ds: pydicom.Dataset, member: str, exc: Exception, path: Path) -> InputError:
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) if hasattr(ds, "file_meta") else UID("")
    name = ts.name if ts else "unknown"
    reason = " ".join(str(exc).split())  # one line: the CLI prints the message as one line
    return InputError(
        f"cannot decode the pixel data of {member}: transfer syntax {name} ({ts or 'missing'}); "
        f"its decoder is missing or failed ({type(exc).__name__}: {reason}). liverseg decodes "
        "JPEG lossless, JPEG-LS, JPEG 2000 and RLE with python-gdcm, pylibjpeg-openjpeg, pylibjpeg-rle "
        "and pyjpegls; check they are installed, or convert the series to uncompressed",
        path,
    )


def _read_multiframe(src: FileSource, header: SliceHeader) -> Volume:
    """A single enhanced (multi-frame) CT object, read with highdicom's geometry handling."""

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
            f"cannot build a volume from the multi-frame image {header.member}: {' '.join(str(exc).split())}",
            src.path,
        ) from exc
    return from_highdicom(hvol)


def _read_stack(src: FileSource, stack: Stack, path: Path, dtype: Any) -> tuple[Volume, dict[str, Any]]:
    """Pixels of the chosen stack as a volume, plus the tilt description (or ``{}``)."""
    if stack.multiframe:
        h = stack.first
        check_voxel_count((h.number_of_frames, h.rows, h.columns), path, "the DICOM header")
        vol = _read_multiframe(src, h)
        return vol.with_array(vol.array.astype(dtype, copy=False)), {}
    geo = stack.geometry
    assert geo is not None  # single-frame stacks always carry their geometry
    h0 = geo.slices[0]
    shape = (len(geo.slices), h0.rows, h0.columns)
    check_voxel_count(shape, path, "the DICOM headers")  # before any pixel is decoded
    array = np.empty(shape, dtype=np.float32 if geo.lateral_mm is not None else dtype)
    for k, h in enumerate(progress(geo.slices, desc="DICOM slices")):
        array[k] = _read_pixels(src, h, path)
    if geo.lateral_mm is None:
        return Volume(array, geo.spacing, geo.origin, geo.direction), {}
    grid = tilt_grid(geo, h0.rows, h0.columns)
    check_voxel_count((shape[0], *grid.shape_yx), path, "the gantry-tilt correction")
    resampled = resample_tilted(array, grid, dtype=dtype)
    return Volume(resampled, geo.spacing, grid.origin, geo.direction), grid.to_metadata()


def read_dicom_series(
    path: str | Path,
    *,
    series: str | None = None,
    subfolder: str | None = None,
    dtype: Any = np.float32,
) -> Volume:
    """Read one DICOM image stack (folder searched recursively, ``.zip`` or DICOMDIR) as a volume.

    Files are recognised by their DICOM preamble whatever their name. The stack is chosen by the
    rules of :mod:`liverseg.io.dicom_select` (files left out are logged as WARNINGs and listed in
    the metadata) unless ``series`` names one.

    Args:
        path: folder, zip archive or DICOMDIR file.
        series: a SeriesInstanceUID, SeriesNumber or stack id (``liverseg dicom ls``) to read.
        subfolder: only consider files under this relative folder / zip member prefix
            (e.g. ``"MASKS_DICOM/liver"`` inside a 3D-IRCADb masks zip).
        dtype: output dtype (default float32).

    Returns:
        Volume, array ``(z, y, x)`` = stored value * RescaleSlope + RescaleIntercept (HU for CT),
        ordered along the slice normal (a gantry-tilted stack resampled onto a regular grid);
        ``metadata["source"]`` and ``metadata["dicom"]``: series / study / frame-of-reference UIDs,
        ``sop_instance_uids``, ``instance_numbers`` and ``files`` in slice order, ``identity``
        (:func:`~liverseg.io.dicom_identity.identity_from_dataset`), ``dropped_files``, ``modality``,
        ``patient_id``, ``container`` (``folder``/``zip``/``dicomdir``), ``selection`` (the chosen
        stack, alternatives, skipped files: :meth:`Selection.to_dict`), ``tilt`` (``None`` or
        the resampling, see :class:`~liverseg.io.dicom_tilt.TiltGrid`) and ``warnings``.

    Raises:
        InputError: missing path, empty folder, no DICOM images, no regular stack (the reason:
            single slice, gap, duplicates, ...), unknown ``series``, undecodable pixel data.
    """
    path = Path(path)
    with FileSource(path) as src:
        sel = _select(src, subfolder, series)
        stack = sel.chosen
        vol, tilt = _read_stack(src, stack, path, dtype)
        kind = src.kind
        with src.open_header(stack.first.member) as fh:
            identity = identity_from_dataset(pydicom.dcmread(fh, stop_before_pixels=True))
    warnings = sel.warnings()
    if tilt:
        warnings.append(describe_tilt(tilt["tilt_deg"], tilt["shape_yx"]))
    for w in warnings:
        log.warning("%s: %s", path, w)
    h0 = stack.first
    dicom_meta = {
        "series_instance_uid": stack.series_instance_uid,
        "study_instance_uid": h0.study_instance_uid,
        "frame_of_reference_uid": h0.frame_of_reference_uid,
        "sop_instance_uids": [h.sop_instance_uid for h in stack.headers],
        "instance_numbers": [h.instance_number for h in stack.headers],
        "files": [h.member for h in stack.headers],
        "dropped_files": [s.member for s in sel.dropped],
        "modality": h0.modality,
        "patient_id": h0.patient_id,
        "series_number": h0.series_number,
        "series_description": h0.series_description,
        "slice_thickness_mm": h0.slice_thickness,
        "transfer_syntax_uid": h0.transfer_syntax_uid,
        "container": kind,
        "n_series_found": len({s.series_instance_uid for s in sel.ranked}),
        "stack_id": stack.stack_id,
        "selection": sel.to_dict(),
        "tilt": tilt or None,
        "warnings": warnings,
        "identity": identity,
    }
    log.debug("%s: read %d slices %s, spacing %s mm", path, vol.shape[0], vol.shape, vol.spacing)
    return Volume(
        vol.array, vol.spacing, vol.origin, vol.direction, {"source": str(path), "dicom": dicom_meta}
    )


def _read_pixels(src: FileSource, h: SliceHeader, path: Path) -> np.ndarray:
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


def read_series_identity(
    path: str | Path, *, series: str | None = None, subfolder: str | None = None
) -> dict[str, str | None]:
    """Identity of the stack that :func:`~liverseg.io.read_dicom_series` reads from ``path``
    (same selection: :func:`~liverseg.io.dicom_series.inspect_dicom`; headers only).

    Raises:
        InputError: as the series reader does (no DICOM images, no regular stack, ...).
    """
    path = Path(path)
    chosen = inspect_dicom(path, series=series, subfolder=subfolder).chosen
    with FileSource(path) as src, src.open_header(chosen.first.member) as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
    return identity_from_dataset(ds)
