"""Files of the service: data-dir layout, durable uploads and upload validation.

Layout under the data dir::

    incoming/<study_id>/                                              an upload being received
    studies/<study_id>/input.nii.gz | input.nii | input.zip      the upload, as received
    studies/<study_id>/output/labels.nii.gz, report.json, report.html, seg.dcm, sr.dcm
    studies/<study_id>/output/viewer/ct.nii.gz, labels.nii.gz, lesions.npz, viewer.json   viewer cache
    corrections/<problem_id>.nii.gz | <problem_id>.painted.nii.gz    corrected label maps
    models/<sha256>.pt | models/<sha256>/                             registered models
    secret.key                                                        pseudonym key (--deidentify)

Every file is written through :func:`liverseg.utils.atomic_path` and fsynced before the request
that brought it is answered. The data is patient data: folders are created 0700 and files 0600
(:meth:`Storage.harden_permissions` fixes an older data dir at start). An upload is received and
validated in ``incoming/``; its folder moves to ``studies/`` only to be registered in the
database at once (and is removed if that fails), so a study folder without a database row can
only be left by a crash in between; :meth:`Storage.sweep_orphans` removes those at start.

Uploaded volumes are validated from their header first (shape x bytes per voxel, geometry),
before any voxel is decompressed, and decompression stops where the header says the voxels end.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import posixpath
import shutil
import stat
import time
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from starlette.concurrency import run_in_threadpool

from liverseg.errors import InputError
from liverseg.io import Grid, LabelMap, read_grid
from liverseg.io.limits import check_voxel_count
from liverseg.io.nifti_check import check_nifti_file, read_nifti_header
from liverseg.service import volumes
from liverseg.service.config import UploadLimits
from liverseg.utils import atomic_path, fsync_dir

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
DIR_MODE, FILE_MODE = 0o700, 0o600
_SUBDIRS = ("studies", "incoming", "corrections", "models")


class UploadTooLargeError(InputError):
    """The request body is larger than the configured limit (HTTP 413)."""


@dataclass(frozen=True)
class StoredFile:
    """A file written durably: its path, size in bytes and sha256."""

    path: Path
    size: int
    sha256: str


class Storage:
    """Paths inside the data dir (created on demand, private: folders 0700, files 0600)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir).resolve()
        for folder in (self.root, *(self.root / sub for sub in _SUBDIRS)):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(folder, DIR_MODE)

    def study_dir(self, study_id: str) -> Path:
        if not study_id.isalnum():
            raise InputError(f"study id must be alphanumeric, got {study_id!r}")
        return self.root / "studies" / study_id

    def incoming_dir(self, study_id: str) -> Path:
        """A new, private folder receiving the upload of ``study_id`` (not yet a study)."""
        if not study_id.isalnum():
            raise InputError(f"study id must be alphanumeric, got {study_id!r}")
        folder = self.root / "incoming" / study_id
        folder.mkdir(mode=DIR_MODE)
        return folder

    def publish(self, incoming: Path, study_id: str) -> Path:
        """Move a validated upload folder to ``studies/<study_id>`` (atomic rename, fsynced)."""
        final = self.study_dir(study_id)
        os.rename(incoming, final)
        fsync_dir(final.parent)
        fsync_dir(incoming.parent)
        return final

    def output_dir(self, study_id: str) -> Path:
        return self.study_dir(study_id) / "output"

    def viewer_dir(self, study_id: str) -> Path:
        return self.output_dir(study_id) / "viewer"

    def correction_file(self, name: str) -> Path:
        """Path of the corrected label map (or an upload in progress) ``name`` of a problem report."""
        return self.root / "corrections" / name

    def model_path(self, sha256: str) -> Path:
        return self.root / "models" / f"{sha256}.pt"

    def harden_permissions(self) -> int:
        """Make every folder 0700 and file 0600 under the data dir; returns how many changed.

        Runs at start: a data dir written by an older liverseg (0755/0644) is fixed once.
        """
        changed = 0
        for folder, dirs, files in os.walk(self.root):
            entries = [(folder, DIR_MODE)] + [(os.path.join(folder, f), FILE_MODE) for f in files]
            for name, mode in entries:
                st = os.lstat(name)
                if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
                    continue
                os.chmod(name, mode)
                changed += 1
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        if changed:
            log.info("data dir %s: set %d folder/file permissions to 0700/0600", self.root, changed)
        return changed

    def sweep_orphans(self, known_study_ids: Iterable[str], grace_s: float = 600.0) -> list[str]:
        """Remove study folders without a database row and abandoned uploads in ``incoming/``.

        Only entries untouched for ``grace_s`` seconds are removed (another process may be
        publishing one right now). Returns the removed folder names (study ids).
        """
        known = set(known_study_ids)
        cutoff = time.time() - grace_s
        removed: list[str] = []
        for parent, only_unknown in ((self.root / "studies", True), (self.root / "incoming", False)):
            for entry in sorted(parent.iterdir()):
                if (only_unknown and entry.name in known) or _newest_mtime(entry) > cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry.name)
                log.warning("removed %s/%s: no database row (an interrupted upload)", parent.name, entry.name)
        return removed


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, _dirs, files in os.walk(path):
            for name in [folder, *(os.path.join(folder, f) for f in files)]:
                newest = max(newest, os.lstat(name).st_mtime)
    return newest


async def save_stream(chunks: AsyncIterator[bytes], dest: Path, *, max_bytes: int) -> StoredFile:
    """Write an async byte stream to ``dest`` atomically (mode 0600) and fsync it (file and folder).

    The event loop only receives the bytes: writing (1 MiB at a time), fsyncing and renaming run
    in the threadpool. Raises :class:`UploadTooLargeError` as soon as more than ``max_bytes``
    arrive (nothing is left).
    """
    h = hashlib.sha256()
    size = 0
    writer = atomic_path(dest, mode=FILE_MODE)
    tmp = await run_in_threadpool(writer.__enter__)
    try:
        with open(tmp, "wb", buffering=0) as fh:
            buf = bytearray()
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLargeError(f"upload larger than the limit of {max_bytes} bytes")
                h.update(chunk)
                buf += chunk
                if len(buf) >= _CHUNK:
                    await run_in_threadpool(fh.write, bytes(buf))
                    buf.clear()
            await run_in_threadpool(fh.write, bytes(buf))
        if size == 0:
            raise InputError("the upload is empty (0 bytes)")
    except BaseException as exc:
        await run_in_threadpool(writer.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await run_in_threadpool(writer.__exit__, None, None, None)  # fsync, rename, fsync the folder
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


def _header_shape(path: Path) -> tuple[tuple[int, ...], int]:
    """(data shape in NIfTI order x, y, z, ..., bytes per voxel) from the raw header."""
    header = read_nifti_header(path)
    shape = tuple(int(s) for s in header["dim"][1 : 1 + int(header["dim"][0])])
    try:
        itemsize = header.get_data_dtype().itemsize
    except Exception as exc:  # nibabel raises for unknown datatype codes
        raise InputError("unsupported NIfTI voxel data type", path) from exc
    return shape, itemsize


def validate_nifti(path: Path, limits: UploadLimits) -> dict[str, object]:
    """Check ``path`` is a complete 3D NIfTI before anything else reads it.

    From the header first (nothing decompressed): a 3D shape (a 4D file with one volume is
    accepted) within the voxel limits; then :func:`liverseg.io.nifti_check.check_nifti_file`:
    geometry, scaling, completeness and finite voxels, decompressing no further than the voxels
    the header announces. Returns ``{"shape_xyz": [...]}``.
    """
    shape, itemsize = _header_shape(path)
    spatial = shape[:3]
    if len(shape) < 3 or any(s < 1 for s in spatial) or any(s != 1 for s in shape[3:]):
        raise InputError(f"expected a 3D NIfTI volume, got data shape {shape}")
    if min(spatial) < 2 and max(spatial) < 2:
        raise InputError(f"expected a 3D NIfTI volume, got data shape {shape}")
    check_voxel_count(spatial, path.name, "the NIfTI header")
    expected = int(np.prod(spatial, dtype=np.int64)) * itemsize
    if expected > limits.max_uncompressed_bytes:
        raise InputError(
            f"NIfTI voxel data of {expected} bytes exceeds the limit of {limits.max_uncompressed_bytes} bytes"
        )
    check_nifti_file(path)
    return {"shape_xyz": list(spatial)}


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


def validate_label_map(path: Path, reference_grid: dict[str, object]) -> LabelMap:
    """Check a corrected label map: same grid as the study, readable, values in {0, 1, 2}.

    The grid is compared from the header before any voxel is decompressed (a small gzip file
    may announce a huge volume); then the file is read as a :class:`LabelMap` (its values
    checked). ``reference_grid`` is :meth:`Volume.geometry` of the study's image (input
    geometry). Returns the label map.
    """

    study = Grid.from_geometry(reference_grid)
    header = read_grid(path)  # header only: size limit, 3D, geometry
    if header.shape != study.shape:
        raise InputError(
            f"label map shape (z, y, x) must be {study.shape} like the study, got {header.shape}"
        )
    study.require_same(header, "label map", reference="study", error=InputError)
    return volumes.read_label_volume(path)  # InputError naming the values unless all are in {0, 1, 2}
