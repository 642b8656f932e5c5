"""Where DICOM files come from: a folder (searched recursively), a ``.zip`` archive or a DICOMDIR.

All are handled through :class:`FileSource`, which lists candidate members by a *relative*
POSIX name (the file path relative to the folder -- for a DICOMDIR, to the DICOMDIR's folder --
or the zip member name) and opens them as binary streams. A DICOMDIR lists the files of a
media export (CD, DVD, USB stick); pydicom's ``FileSet`` reads it and only the files it
references are members (a referenced file that is missing is reported and left out). Zip members are read in memory and never extracted, so member names such as
``../../etc/passwd`` or ``/abs/path`` cannot write anywhere; they are skipped with a warning
all the same, because a legitimate series never contains them.

DICOM files are recognised by the ``DICM`` magic at byte 128 (Part 10 preamble), never by the
file extension (3D-IRCADb files have none, CHAOS names contain commas).
"""

from __future__ import annotations

import contextlib
import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pydicom
from pydicom.fileset import FileSet

from liverseg.errors import InputError

__all__ = ["DICOMDIR_SOP_CLASS", "FileSource", "is_dicom_file", "is_dicom_stream", "is_dicomdir"]

log = logging.getLogger(__name__)

_PREAMBLE = 128
_MAGIC = b"DICM"
# A single CT slice is well under this; a bigger member is either not a slice or a zip bomb.
_MAX_MEMBER_BYTES = 2 * 1024**3


def is_dicom_stream(fh: BinaryIO) -> bool:
    """True when the stream starts with a DICOM Part 10 preamble (``DICM`` at offset 128).

    The stream position is restored for seekable streams.
    """
    head = fh.read(_PREAMBLE + len(_MAGIC))
    with contextlib.suppress(OSError, io.UnsupportedOperation):
        fh.seek(-len(head), io.SEEK_CUR)
    return len(head) == _PREAMBLE + len(_MAGIC) and head[_PREAMBLE:] == _MAGIC


def is_dicom_file(path: str | Path) -> bool:
    """True when ``path`` is a regular file with a DICOM Part 10 preamble (extension ignored)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            return is_dicom_stream(fh)
    except OSError:
        return False


DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


def is_dicomdir(path: str | Path) -> bool:
    """True when ``path`` is a DICOM file whose SOP class is the Media Storage Directory."""
    if not is_dicom_file(path):
        return False

    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:  # malformed meta information: not a usable DICOMDIR
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS


class FileSource:
    """A folder, zip archive or DICOMDIR holding (possibly) DICOM files.

    Args:
        path: an existing folder, ``.zip`` file or DICOMDIR file.

    Raises:
        InputError: the path does not exist, is neither a folder nor a readable zip archive nor
            a DICOMDIR, or holds no files at all.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("does not exist; expected a DICOM folder, .zip archive or DICOMDIR", self.path)
        self._zip: zipfile.ZipFile | None = None
        self._root = self.path
        if self.path.is_dir():
            self.kind = "folder"
            self._members = sorted(
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            )
        elif self.path.is_file() and is_dicomdir(self.path):
            self.kind = "dicomdir"
            self._root = self.path.parent
            self._members = self._dicomdir_members()
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(f"cannot open the zip archive ({exc})", self.path) from exc
            self._members = sorted(self._safe_zip_members(self._zip))
        else:
            raise InputError(
                "expected a DICOM series folder, a .zip archive or a DICOMDIR, got a file that is none of them",
                self.path,
            )
        if not self._members:
            what = {
                "folder": "folder is empty",
                "zip": "zip archive holds no files",
                "dicomdir": "DICOMDIR references no existing files",
            }[self.kind]
            raise InputError(f"the {what}; expected DICOM slices", self.path)

    def _dicomdir_members(self) -> list[str]:
        try:
            fileset = FileSet(self.path)
        except Exception as exc:  # pydicom raises several types for a malformed DICOMDIR
            raise InputError(f"cannot read the DICOMDIR ({type(exc).__name__}: {exc})", self.path) from exc
        members, missing = [], []
        root = self._root.resolve()
        for instance in fileset:
            file = Path(instance.path).resolve()
            if not file.is_relative_to(root):
                log.warning("%s: skipping a DICOMDIR record outside its folder: %s", self.path, file)
                continue
            if file.is_file():
                members.append(file.relative_to(root).as_posix())
            else:
                missing.append(file.relative_to(root).as_posix())
        if missing:
            log.warning(
                "%s: %d file(s) listed in the DICOMDIR are missing (e.g. %s)",
                self.path,
                len(missing),
                ", ".join(missing[:3]),
            )
        return sorted(set(members))

    def _safe_zip_members(self, zf: zipfile.ZipFile) -> Iterator[str]:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                log.warning("%s: skipping unsafe zip member name %r", self.path, name)
                continue
            if info.file_size > _MAX_MEMBER_BYTES:
                log.warning(
                    "%s: skipping oversized zip member %r (%d bytes)", self.path, name, info.file_size
                )
                continue
            if parts and parts[0] == "__MACOSX":
                continue
            yield name

    @property
    def members(self) -> list[str]:
        """Relative POSIX names of all regular files (sorted by name; the order carries no meaning)."""
        return list(self._members)

    @contextlib.contextmanager
    def open(self, member: str) -> Iterator[BinaryIO]:
        """Open one member for binary reading (a seekable stream)."""
        if self._zip is not None:
            # Zip member streams are seekable but backward seeks re-decompress; read the bytes
            # once (a slice is ~0.5 MB) and hand out an in-memory stream.
            with self._zip.open(member) as fh:
                yield io.BytesIO(fh.read())
        else:
            with open(self._root / member, "rb") as fh:
                yield fh

    @contextlib.contextmanager
    def open_header(self, member: str, nbytes: int = 64 * 1024) -> Iterator[BinaryIO]:
        """Open a member for reading its header only.

        For zip members this decompresses only the first ``nbytes`` (plus what the DICOM parser
        asks for beyond them), which keeps the header scan of large archives cheap.
        """
        if self._zip is not None:
            with self._zip.open(member) as fh:
                yield fh  # ZipExtFile: seekable (Python >= 3.7), forward reads are cheap
        else:
            with open(self._root / member, "rb") as fh:
                yield fh

    def is_dicom(self, member: str) -> bool:
        """True when ``member`` has the DICOM Part 10 preamble."""
        try:
            with self.open_header(member) as fh:
                return is_dicom_stream(fh)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            log.debug("%s: cannot read %s (%s)", self.path, member, exc)
            return False

    def close(self) -> None:
        """Close the underlying zip archive (no-op for folders)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
