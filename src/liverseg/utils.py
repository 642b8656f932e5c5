"""Small shared helpers: atomic file writes, hashing, progress bars, code version.

Kept free of heavy imports; everything here is safe to use from any pipeline stage.

Atomic writes (:func:`atomic_path`): the data goes to a temporary file in the destination's
folder, which is flushed and fsynced (and optionally verified), then renamed onto the
destination, and the folder is fsynced, so after a crash or a full disk the destination holds
either its old content or the complete new file, never a partial one. Inside
:func:`output_transaction` the renames are deferred to the end of the block: a run that writes
several outputs either publishes all of them or, on any error, none (their temporary files are
removed).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from liverseg import __version__
from liverseg.errors import OutputError

__all__ = [
    "OutputTransaction",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "code_version",
    "ensure_parent",
    "fsync_dir",
    "output_transaction",
    "progress",
    "set_progress_enabled",
    "set_umask",
    "sha256_file",
    "written_path",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
_PROGRESS_ENABLED = True


def _read_umask() -> int:
    # Read once at import (os.umask can only be read by setting it, which is not thread-safe later).
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
_UMASK_LOCK = threading.Lock()


def set_umask(mask: int) -> int:
    """Set the process umask (and the permissions :func:`atomic_path` gives new files); returns
    the previous mask. Call it at process start, e.g. ``0o077`` for patient data (files 0600)."""
    global _UMASK
    with _UMASK_LOCK:
        previous = os.umask(mask)
        _UMASK = mask
    return previous


def ensure_parent(path: str | Path) -> Path:
    """Create the parent folder of ``path`` if needed; raise :class:`OutputError` if impossible."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder ({exc.strerror})", path.parent) from exc
    if not os.access(path.parent, os.W_OK):
        raise OutputError("the output folder is not writable", path.parent)
    return path


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder, so a rename or a new entry in it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # e.g. EINVAL on file systems without directory fsync
        log.debug("fsync of folder %s: %s", folder, exc)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # flushes the page cache: delayed write errors (ENOSPC, EIO) surface here
    finally:
        os.close(fd)


class OutputTransaction:
    """Temporary files written by :func:`atomic_path` inside :func:`output_transaction`, renamed
    onto their destinations together when the block succeeds."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def add(self, tmp: Path, final: Path) -> None:
        self._pending.append((tmp, final))

    def pending(self, final: Path) -> Path | None:
        """The temporary file that will become ``final``, if ``final`` was written here."""
        for tmp, dest in reversed(self._pending):
            if dest == final:
                return tmp
        return None

    def abort(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._pending.clear()

    def commit(self) -> None:
        done: list[Path] = []
        try:
            for tmp, final in self._pending:
                os.replace(tmp, final)
                done.append(final)
        except OSError as exc:
            self._pending = [(t, f) for t, f in self._pending if f not in done]
            self.abort()
            raise OutputError(
                f"cannot move the finished file into place ({exc.strerror or exc})", final
            ) from exc
        for folder in {final.parent for final in done}:
            fsync_dir(folder)
        self._pending.clear()


_TRANSACTION: contextvars.ContextVar[OutputTransaction | None] = contextvars.ContextVar(
    "liverseg_output_transaction", default=None
)


@contextlib.contextmanager
def output_transaction() -> Iterator[OutputTransaction]:
    """Publish every :func:`atomic_path` output of the block together, or none of them.

    Inside the block each output is written completely (flushed, fsynced, verified) under a
    temporary name beside its destination; the renames happen when the block ends without error.
    On any error the temporary files are removed and the destinations are left untouched. A
    nested call joins the outer transaction.
    """
    outer = _TRANSACTION.get()
    if outer is not None:
        yield outer
        return
    tx = OutputTransaction()
    token = _TRANSACTION.set(tx)
    try:
        yield tx
    except BaseException:
        tx.abort()
        raise
    finally:
        _TRANSACTION.reset(token)
    tx.commit()


def written_path(path: str | Path) -> Path:
    """Where the content just written for ``path`` can be read: inside an
    :func:`output_transaction` that has not ended, its temporary file; otherwise ``path``."""
    path = Path(path)
    tx = _TRANSACTION.get()
    pending = tx.pending(path) if tx is not None else None
    return pending if pending is not None else path


@contextlib.contextmanager
def atomic_path(
    path: str | Path, *, mode: int | None = None, verify: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    After the block the temporary file is fsynced and, when given, ``verify(tmp)`` runs (it
    raises to refuse the file); then the file is renamed onto ``path`` and the folder fsynced
    (inside :func:`output_transaction`, at the end of the transaction). Any failure removes the
    temporary file, so no partial output is ever left; an ``OSError`` (disk full, I/O error,
    permission) becomes an :class:`OutputError` naming ``path``. The temporary name keeps the
    final suffixes (``.nii.gz`` etc.) so format-sniffing writers work.

    Args:
        path: the destination.
        mode: permissions of the new file (default ``0o666`` minus the umask).
        verify: called with the complete temporary file before it is published.
    """
    path = ensure_parent(path)
    suffix = "".join(path.suffixes) or ".tmp"
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot create a file in the output folder ({exc.strerror or exc})", path) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            yield tmp
            _fsync_file(tmp)
        except OSError as exc:
            raise OutputError(f"cannot write the file ({exc.strerror or exc})", path) from exc
        if verify is not None:
            verify(tmp)
        os.chmod(tmp, (0o666 & ~_UMASK) if mode is None else mode)  # mkstemp makes 0600
        tx = _TRANSACTION.get()
        if tx is not None:
            tx.add(tmp, path)
            return
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, size check, rename)."""

    def same_size(tmp: Path) -> None:
        if tmp.stat().st_size != len(data):
            raise OutputError(f"wrote {tmp.stat().st_size} of {len(data)} bytes", path)

    with atomic_path(path, mode=mode, verify=same_size) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def set_progress_enabled(enabled: bool) -> None:
    """Globally switch progress bars on or off (``--quiet`` turns them off)."""
    global _PROGRESS_ENABLED
    _PROGRESS_ENABLED = enabled


def progress(iterable: Iterable[T], *, desc: str = "", total: int | None = None, **kw: Any) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm progress bar on stderr unless progress is disabled."""
    if not _PROGRESS_ENABLED:
        return iterable

    # disable=None: no bar when stderr is not a terminal (pipes, CI, subprocesses in tests)
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=None, **kw)


def code_version() -> str:
    """Package version plus the git commit (and ``-dirty``) when run from a checkout."""

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+g{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__
