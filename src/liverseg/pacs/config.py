"""Where the PACS is and how to log in: from the environment or a config file, never the command line.

Sources, first found wins for each value:

1. the URL given by the caller (``--url`` / ``--pacs-url``: a URL is not a secret, but it must
   not carry ``user:password@``);
2. environment variables ``LIVERSEG_PACS_URL``, ``LIVERSEG_PACS_USERNAME``,
   ``LIVERSEG_PACS_PASSWORD``, ``LIVERSEG_PACS_TOKEN`` (a bearer token);
3. a YAML (or JSON) file: ``--pacs-config FILE``, else ``LIVERSEG_PACS_CONFIG``, else
   ``$XDG_CONFIG_HOME/liverseg/pacs.yaml`` (``~/.config/liverseg/pacs.yaml``) when it exists,
   with the keys ``url``, ``username``, ``password``, ``token``, ``ca_bundle`` (a CA file for
   HTTPS), ``verify_tls`` (default true) and ``timeout_s`` (default 60).

A config file that holds a password or token must not be readable by group or others (like
``ssh`` refuses such keys): ``chmod 600``. Secrets never appear in ``repr``, logs or messages.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from liverseg.errors import ConfigError

__all__ = ["ENV", "PacsConfig", "default_config_path", "load_pacs_config"]

ENV = {
    "url": "LIVERSEG_PACS_URL",
    "username": "LIVERSEG_PACS_USERNAME",
    "password": "LIVERSEG_PACS_PASSWORD",
    "token": "LIVERSEG_PACS_TOKEN",
    "config": "LIVERSEG_PACS_CONFIG",
}
_KEYS = {"url", "username", "password", "token", "ca_bundle", "verify_tls", "timeout_s"}


@dataclass(frozen=True)
class PacsConfig:
    """A DICOMweb server and its credentials.

    Attributes:
        url: the DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``.
        username, password: HTTP basic authentication (both or neither).
        token: a bearer token (instead of basic authentication).
        ca_bundle: CA certificate file for HTTPS (``None``: the system's).
        verify_tls: check the server certificate (default true).
        timeout_s: per-request timeout in seconds.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    verify_tls: bool = True
    timeout_s: float = 60.0

    def describe(self) -> str:
        """The URL and the kind of authentication, without secrets (for logs and the web page)."""
        auth = (
            "bearer token"
            if self.token
            else (f"user {self.username}" if self.username else "no authentication")
        )
        return f"{self.url} ({auth})"


def default_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/liverseg/pacs.yaml`` (``~/.config/liverseg/pacs.yaml``)."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "liverseg" / "pacs.yaml"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the PACS config file ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: the PACS config file is not valid YAML/JSON ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {sorted(_KEYS)}, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown PACS config key(s) {unknown}; expected some of {sorted(_KEYS)}")
    if (data.get("password") or data.get("token")) and os.name == "posix":
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path}: holds a password or token but is readable by others (mode {oct(mode & 0o777)}); "
                f"run chmod 600 {path}"
            )
    return data


def _check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the PACS URL ({where}) must be http(s)://host[:port]/path, got {url!r}")
    if parts.username or parts.password:
        raise ConfigError(
            f"the PACS URL ({where}) must not contain credentials (they would show in process lists and "
            f"logs); put them in {ENV['username']}/{ENV['password']} or the PACS config file"
        )
    return url.rstrip("/")


def load_pacs_config(
    url: str | None = None,
    config_file: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
) -> PacsConfig:
    """Build the PACS settings from ``url``, the environment and the config file (see module docstring).

    Raises:
        ConfigError: no URL anywhere, a malformed URL or one with credentials, an unreadable or
            unknown-key config file, a config file with secrets readable by others, a username
            without password.
    """
    path = (
        Path(config_file) if config_file else (Path(env[ENV["config"]]) if env.get(ENV["config"]) else None)
    )
    if path is None and default_config_path(env).is_file():
        path = default_config_path(env)
    data = _read_file(path) if path is not None else {}

    def pick(key: str) -> Any:
        value = env.get(ENV[key]) if key in ENV else None
        return value if value not in (None, "") else data.get(key)

    chosen_url = url or pick("url")
    if not chosen_url:
        raise ConfigError(
            f"no PACS URL: give --url, set {ENV['url']}, or write url: in {path or default_config_path(env)}"
        )
    where = "--url" if url else (ENV["url"] if env.get(ENV["url"]) else str(path))
    username, password, token = pick("username"), pick("password"), pick("token")
    if bool(username) != bool(password):
        raise ConfigError("PACS basic authentication needs both a username and a password")
    try:
        timeout = float(data.get("timeout_s", 60.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: timeout_s must be a number of seconds, got {data.get('timeout_s')!r}"
        ) from exc
    return PacsConfig(
        url=_check_url(str(chosen_url), where),
        username=str(username) if username else None,
        password=str(password) if password else None,
        token=str(token) if token else None,
        ca_bundle=str(data["ca_bundle"]) if data.get("ca_bundle") else None,
        verify_tls=bool(data.get("verify_tls", True)),
        timeout_s=timeout,
    )
