"""Defaults shared by the web application and its CLI commands (``liverseg serve|users|db``),
importable without the ``service`` extra so that ``liverseg --help`` lists those commands."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_ALLOWED_HOSTS", "DEFAULT_DATA_DIR"]

DEFAULT_DATA_DIR = Path("liverseg-data")
#: Host headers accepted by default: the service on this machine only (``--allowed-hosts`` adds
#: the names clients use, e.g. the reverse proxy's public name).
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
