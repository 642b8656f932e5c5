"""Small shared helpers: atomic file writes, hashing, progress bars, code version.

Kept free of heavy imports; everything here is safe to use from any pipeline stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from liverseg.errors import OutputError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "code_version",
    "ensure_parent",
    "progress",
    "set_progress_enabled",
    "sha256_file",
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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A failure (exception) removes the temporary file, so no partial output is ever left. The
    temporary name keeps the final suffixes (``.nii.gz`` etc.) so format-sniffing writers work.
    """
    path = ensure_parent(path)
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; use the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


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
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (pipes, CI, subprocesses in tests)
    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=None, **kw)


def code_version() -> str:
    """Package version plus the git commit (and ``-dirty``) when run from a checkout."""
    from liverseg import __version__

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
