"""Where DICOM files come from: a folder (searched recursively) or a ``.zip`` archive.

Both are handled through :class:`FileSource`, which lists candidate members by a *relative*
POSIX name (the file path relative to the folder, or the zip member name) and opens them as
binary streams. Zip members are read in memory and never extracted, so member names such as
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

from liverseg.errors import InputError

__all__ = ["FileSource", "is_dicom_file", "is_dicom_stream"]

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


class FileSource:
    """A folder or zip archive holding (possibly) DICOM files.

    Args:
        path: an existing folder or ``.zip`` file.

    Raises:
        InputError: the path does not exist, is neither a folder nor a readable zip archive, or
            holds no files at all.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("does not exist; expected a DICOM folder or .zip archive", self.path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self.kind = "folder"
            self._members = sorted(
                p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()
            )
        elif zipfile.is_zipfile(self.path):
            self.kind = "zip"
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(f"cannot open the zip archive ({exc})", self.path) from exc
            self._members = sorted(self._safe_zip_members(self._zip))
        else:
            raise InputError(
                "expected a DICOM series folder or a .zip archive of one, got a file that is neither",
                self.path,
            )
        if not self._members:
            what = "folder is empty" if self.kind == "folder" else "zip archive holds no files"
            raise InputError(f"the {what}; expected DICOM slices", self.path)

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
            with open(self.path / member, "rb") as fh:
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
            with open(self.path / member, "rb") as fh:
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
