"""Files of the service: data-dir layout, durable uploads and upload validation.

Layout under the data dir::

    studies/<study_id>/input.nii.gz | input.nii | input.zip      the upload, as received
    studies/<study_id>/output/labels.nii.gz, report.json, report.html, seg.dcm, sr.dcm
    studies/<study_id>/output/viewer/ct.nii.gz, labels.nii.gz, lesions.npz, viewer.json   viewer cache
    corrections/<problem_id>.nii.gz | <problem_id>.painted.nii.gz    corrected label maps
    models/<sha256>.pt | models/<sha256>/                             registered models
    secret.key                                                        pseudonym key (--deidentify)

Every file is written through :func:`liverseg.utils.atomic_path` and fsynced before the request
that brought it is answered.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import posixpath
import stat
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from liverseg.errors import InputError
from liverseg.service.config import UploadLimits
from liverseg.utils import atomic_path

__all__ = [
    "Storage",
    "StoredFile",
    "fsync_dir",
    "save_stream",
    "sniff_kind",
    "validate_dicom_zip",
    "validate_label_map",
    "validate_nifti",
]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_NIFTI_DTYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8}


class UploadTooLargeError(InputError):
    """The request body is larger than the configured limit (HTTP 413)."""


@dataclass(frozen=True)
class StoredFile:
    """A file written durably: its path, size in bytes and sha256."""

    path: Path
    size: int
    sha256: str


class Storage:
    """Paths inside the data dir (created on demand)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir).resolve()
        for sub in ("studies", "corrections", "models"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def study_dir(self, study_id: str) -> Path:
        if not study_id.isalnum():
            raise InputError(f"study id must be alphanumeric, got {study_id!r}")
        return self.root / "studies" / study_id

    def output_dir(self, study_id: str) -> Path:
        return self.study_dir(study_id) / "output"

    def viewer_dir(self, study_id: str) -> Path:
        return self.output_dir(study_id) / "viewer"

    def correction_path(self, problem_id: int, *, gz: bool = True) -> Path:
        return self.root / "corrections" / f"{int(problem_id)}.nii{'.gz' if gz else ''}"

    def model_path(self, sha256: str) -> Path:
        return self.root / "models" / f"{sha256}.pt"


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def save_stream(chunks: AsyncIterator[bytes], dest: Path, *, max_bytes: int) -> StoredFile:
    """Write an async byte stream to ``dest`` atomically and fsync it (file and folder).

    Raises :class:`UploadTooLargeError` as soon as more than ``max_bytes`` arrive (nothing is left).
    """
    h = hashlib.sha256()
    size = 0
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLargeError(f"upload larger than the limit of {max_bytes} bytes")
                h.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if size == 0:
            raise InputError("the upload is empty (0 bytes)")
    fsync_dir(dest.parent)
    return StoredFile(dest, size, h.hexdigest())


def sniff_kind(head: bytes) -> str:
    """``"nifti-gz"``, ``"nifti"`` or ``"zip"`` from the first bytes of a file; else InputError."""
    if head[:2] == b"\x1f\x8b":
        return "nifti-gz"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) >= 348 and head[344:347] in (b"n+1", b"ni1"):
        return "nifti"
    if len(head) >= 540 and head[4:7] in (b"n+2",):
        return "nifti"
    raise InputError(
        "expected a NIfTI file (.nii or .nii.gz) or a zip of a DICOM series, got a file that is neither"
    )


def _read_nifti_header(fh: BinaryIO) -> tuple[tuple[int, ...], int, int]:
    """(spatial shape, bytes per voxel, vox_offset) from a NIfTI-1/2 header."""
    import nibabel as nib

    raw = fh.read(544)
    try:
        if len(raw) >= 348 and raw[344:347] in (b"n+1", b"ni1"):
            hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(raw[:348]))
        else:
            hdr = nib.Nifti2Header.from_fileobj(io.BytesIO(raw))
    except Exception as exc:
        raise InputError(f"not a valid NIfTI header ({exc})") from exc
    shape = tuple(int(s) for s in hdr.get_data_shape())
    code = int(hdr["datatype"])
    return shape, _NIFTI_DTYPE_BYTES.get(code, 0), int(hdr["vox_offset"])


def validate_nifti(path: Path, limits: UploadLimits) -> dict[str, object]:
    """Check ``path`` is a complete 3D NIfTI (header sane, voxel data present, size within limits).

    Returns ``{"shape_xyz": [...]}``. A 4D file with one volume is accepted.
    """
    opener = gzip.open if _is_gz(path) else open
    try:
        with opener(path, "rb") as fh:
            shape, nbytes, offset = _read_nifti_header(fh)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read the NIfTI file ({exc})", path.name) from exc
    spatial = shape[:3]
    if len(shape) < 3 or any(s < 1 for s in spatial) or any(s != 1 for s in shape[3:]):
        raise InputError(f"expected a 3D NIfTI volume, got data shape {shape}")
    if min(spatial) < 2 and max(spatial) < 2:
        raise InputError(f"expected a 3D NIfTI volume, got data shape {shape}")
    if nbytes == 0:
        raise InputError("unsupported NIfTI voxel data type")
    expected = int(np.prod(spatial)) * nbytes
    if expected > limits.max_uncompressed_bytes:
        raise InputError(
            f"NIfTI voxel data of {expected} bytes exceeds the limit of {limits.max_uncompressed_bytes} bytes"
        )
    # read through the data: catches truncated files and corrupt gzip streams, bounded by the limit
    total = 0
    try:
        with opener(path, "rb") as fh:
            while block := fh.read(_CHUNK):
                total += len(block)
                if total > offset + expected + _CHUNK:
                    break
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"the NIfTI file is corrupt or truncated ({exc})") from exc
    if total < offset + expected:
        raise InputError(
            f"the NIfTI file is truncated: header promises {offset + expected} bytes, file has {total}"
        )
    return {"shape_xyz": list(spatial)}


def _is_gz(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _bad_member_name(name: str) -> bool:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return True
    parts = posixpath.normpath(norm).split("/")
    return ".." in norm.split("/") or ".." in parts


def validate_dicom_zip(path: Path, limits: UploadLimits) -> dict[str, object]:
    """Check a zip of a DICOM series without extracting it.

    Rejects: entries with absolute paths or ``..``, symbolic links, more than ``max_zip_files``
    entries, a total uncompressed size over ``max_uncompressed_bytes``, and zips in which no entry
    is a DICOM image. Returns ``{"files": n, "dicom_images": k}``.
    """
    import pydicom

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"not a readable zip file ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_files:
            raise InputError(f"zip has {len(infos)} entries, the limit is {limits.max_zip_files}")
        total = 0
        for info in infos:
            if _bad_member_name(info.filename):
                raise InputError(f"zip entry with an absolute path or '..' is not allowed: {info.filename!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(f"zip entry is a symbolic link, not allowed: {info.filename!r}")
            total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise InputError(
                f"zip uncompressed size {total} bytes exceeds the limit of {limits.max_uncompressed_bytes} bytes"
            )
        files = [i for i in infos if not i.is_dir()]
        images = 0
        for info in files[:50]:
            if images >= 3:
                break
            try:
                with zf.open(info) as fh:
                    data = fh.read(min(info.file_size, 64 * 1024 * 1024))
                ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=False)
            except Exception:
                continue
            if "Rows" in ds and "Columns" in ds:
                images += 1
        if images == 0:
            raise InputError("expected a zip of DICOM image files, found no DICOM image among its entries")
    return {"files": len(files), "dicom_images_checked": images}


def validate_label_map(path: Path, reference_grid: dict[str, object]) -> None:
    """Check a corrected label map: readable, values in {0, 1, 2}, same grid as the study.

    ``reference_grid`` is :meth:`Volume.geometry` of the study's image (input geometry).
    """
    from liverseg.service.volumes import read_label_volume

    vol = read_label_volume(path)  # InputError naming the values unless all are in {0, 1, 2}
    got = vol.geometry()
    shape = tuple(reference_grid["shape_zyx"])  # type: ignore[arg-type]
    if tuple(got["shape_zyx"]) != shape:
        raise InputError(
            f"label map shape (z, y, x) must be {shape} like the study, got {tuple(got['shape_zyx'])}"
        )
    for key, tol in (("spacing_zyx_mm", 1e-3), ("origin_lps_mm", 1e-2), ("direction", 1e-3)):
        if not np.allclose(np.asarray(got[key]), np.asarray(reference_grid[key]), atol=tol):
            raise InputError(f"label map {key} must be {reference_grid[key]} like the study, got {got[key]}")
