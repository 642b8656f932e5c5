"""``read_volume`` / ``write_volume``: one entry point for every supported CT and label format.

Dispatch is by what the path *is*, not only by its name:

* a folder, or a zip archive (by its magic bytes)        -> DICOM series
* a file with the DICOM preamble (``DICM`` at byte 128)  -> a DICOMDIR (the export it lists),
  a DICOM-SEG (labels), an enhanced multi-frame image, or an error explaining that a single
  slice is not a volume
* ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` -> SimpleITK
* 2D picture formats (PNG, JPEG, ...) and anything else  -> :class:`InputError`
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from liverseg.errors import InputError
from liverseg.io.dicom_seg import read_dicom_seg
from liverseg.io.dicom_series import read_dicom_series
from liverseg.io.itk_files import ITK_READ_SUFFIXES, read_itk_file, suffix_of, write_itk_file
from liverseg.io.labels import check_label_map
from liverseg.io.limits import check_finite
from liverseg.io.sources import DICOMDIR_SOP_CLASS, is_dicom_file
from liverseg.io.volume import Volume

__all__ = ["read_volume", "write_volume"]

log = logging.getLogger(__name__)

_PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_SUPPORTED = ".nii, .nii.gz, .nrrd, .mha, .mhd, a DICOM folder, .zip or DICOMDIR, a DICOM-SEG file (labels)"


def _read_dicom_file(path: Path, kind: str, reference: Volume | None, series: str | None) -> Volume:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise InputError(f"unreadable DICOM file ({type(exc).__name__}: {exc})", path) from exc
    media_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
    if DICOMDIR_SOP_CLASS in (media_class, str(ds.get("SOPClassUID", ""))):
        return read_dicom_series(path, series=series)
    if str(ds.get("SOPClassUID", "")) == _SEG_SOP_CLASS:
        if kind != "label":
            raise InputError(
                "expected a CT image, got a DICOM-SEG segmentation; read it with kind='label'", path
            )

        return read_dicom_seg(path, reference)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        return read_dicom_series(path.parent, series=str(ds.get("SeriesInstanceUID")))
    raise InputError(
        "expected a 3D CT volume, got a single DICOM slice; give the folder (or .zip) holding the "
        "whole series",
        path,
    )


def read_volume(
    path: str | Path,
    *,
    kind: Literal["image", "label"] = "image",
    allow_binary_255: bool = False,
    reference: Volume | None = None,
    series: str | None = None,
) -> Volume:
    """Read a CT image or label map from any supported format.

    Args:
        path: .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file, a DICOM series folder or .zip, or a
            DICOM-SEG file (``kind="label"``).
        kind: ``"image"`` returns a float32 :class:`Volume` (HU for CT); ``"label"`` returns a
            :class:`~liverseg.io.labels.LabelMap` (uint8, values in {0, 1, 2}, checked).
        allow_binary_255: for labels, accept a 0/255 binary mask unchanged (the caller maps 255).
        reference: for DICOM-SEG, the image whose grid the labels are placed on.
        series: for DICOM input, the series to read (SeriesInstanceUID, SeriesNumber or stack id
            of ``liverseg dicom ls``) instead of the automatic choice.

    Returns:
        Volume with array ``(z, y, x)``, spacing mm ``(z, y, x)``, LPS origin and direction;
        ``metadata["source"] = str(path)`` (and ``metadata["dicom"]`` for DICOM input).

    Raises:
        InputError: the path does not exist, is empty, corrupt/truncated, 2D or 4D, of an
            unknown format, larger than :data:`liverseg.io.limits.MAX_VOXELS` (checked from the
            header), has an impossible geometry (zero, negative or non-finite spacing, singular
            or sheared direction), holds NaN/infinite voxels, or (labels) holds values outside
            {0, 1, 2}; ``series`` given for a non-DICOM input.
    """
    if kind not in ("image", "label"):
        raise InputError(f"expected kind 'image' or 'label', got {kind!r}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"does not exist; expected {_SUPPORTED}", path)
    suffix = suffix_of(path)
    if path.is_file() and is_dicom_file(path):
        volume = _read_dicom_file(path, kind, reference, series)
    elif path.is_dir() or (path.is_file() and suffix not in ITK_READ_SUFFIXES and zipfile.is_zipfile(path)):
        volume = read_dicom_series(path, series=series)
    elif suffix in ITK_READ_SUFFIXES:
        if series is not None:
            raise InputError(
                f"a series ({series}) can only be chosen in DICOM input, got a {suffix} file", path
            )
        volume = read_itk_file(path, kind=kind)  # checks its own voxels (NIfTI: on the raw bytes)
    elif suffix in _PICTURE_SUFFIXES:
        raise InputError(
            f"expected a 3D CT volume ({_SUPPORTED}), got a 2D {suffix[1:].upper()} picture; a folder "
            "of PNG slices can be read with liverseg.io.read_png_stack",
            path,
        )
    else:
        raise InputError(f"unknown format {suffix or '(no extension)'!r}; expected {_SUPPORTED}", path)

    if suffix not in ITK_READ_SUFFIXES or path.is_dir():
        check_finite(volume.array, path)  # DICOM: e.g. a NaN RescaleSlope
    metadata = {**volume.metadata, "source": str(path)}
    if kind == "image":
        if volume.shape[0] < 2:
            raise InputError(f"expected a 3D CT volume with several slices, got shape {volume.shape}", path)
        array = volume.array if volume.array.dtype == np.float32 else volume.array.astype(np.float32)
        return Volume(array, volume.spacing, volume.origin, volume.direction, metadata)
    return check_label_map(
        volume.with_array(volume.array, **metadata), path=path, allow_binary_255=allow_binary_255
    )


def write_volume(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` atomically; the format follows the suffix (.nii.gz, .nii, .nrrd, .mha).

    The file holds exactly the volume's geometry (spacing, origin, direction) and dtype, so
    :func:`read_volume` of the result gives the same grid and values. A
    :class:`~liverseg.io.labels.LabelMap` is stored as uint8 (its values were checked when it
    was built); a plain :class:`Volume` keeps its dtype (bool is stored as uint8). The output
    folder is created if needed.

    Args:
        volume: the volume (or label map) to write.
        path: output file; its suffix picks the format.

    Raises:
        OutputError: unsupported suffix, folder not creatable/writable, or the write failed
            (no partial file is left behind).
    """
    path = Path(path)
    out = write_itk_file(volume, path)
    log.debug("wrote %s %s to %s", volume.shape, volume.array.dtype, out)
    return out
