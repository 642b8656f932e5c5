"""Exceptions that carry a message meant for the user.

The CLI prints ``str(error)`` as one line and exits 1; everything else is a bug and gets a
traceback with ``--debug``. Messages name what was expected and what was received.
"""

from __future__ import annotations

from pathlib import Path


class LiversegError(Exception):
    """Base class of every error whose message is meant for the user."""


class InputError(LiversegError):
    """An input file, folder or array is missing, unreadable or not what was expected."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class GeometryError(LiversegError):
    """Two volumes that must share a voxel grid do not, or a geometry is invalid."""


class ConfigError(LiversegError):
    """A configuration value is missing, unknown or of the wrong type."""


class OutputError(LiversegError):
    """An output cannot be written (folder not writable, disk full, ...)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class PacsError(LiversegError):
    """A PACS (DICOMweb) request failed: unreachable, refused, or answered with an error."""


class MissingExtraError(LiversegError, ImportError):
    """An optional part of liverseg is used without its pip extra installed (see
    :mod:`liverseg.extras`); the message names the extra to install."""
