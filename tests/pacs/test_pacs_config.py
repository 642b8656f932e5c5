"""PACS settings: URL and credentials from the environment or a config file, never the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from liverseg.errors import ConfigError
from liverseg.pacs import load_pacs_config

URL = "http://127.0.0.1:8042/dicom-web"


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "pacs.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_environment_gives_url_and_credentials_and_repr_hides_them(tmp_path):
    env = {
        "LIVERSEG_PACS_URL": URL + "/",
        "LIVERSEG_PACS_USERNAME": "ris",
        "LIVERSEG_PACS_PASSWORD": "s3cret",
    }
    cfg = load_pacs_config(env={**env, "XDG_CONFIG_HOME": str(tmp_path)})
    assert (cfg.url, cfg.username, cfg.password) == (URL, "ris", "s3cret")
    assert "s3cret" not in repr(cfg) and "s3cret" not in cfg.describe()
    assert cfg.describe() == f"{URL} (user ris)"


def test_config_file_then_environment_override(tmp_path):
    path = _file(tmp_path, f"url: {URL}\nusername: a\npassword: b\ntimeout_s: 5\n")
    cfg = load_pacs_config(config_file=path, env={})
    assert (cfg.username, cfg.password, cfg.timeout_s) == ("a", "b", 5.0)
    cfg = load_pacs_config(config_file=path, env={"LIVERSEG_PACS_PASSWORD": "from-env"})
    assert cfg.password == "from-env"
    # the default location, and LIVERSEG_PACS_CONFIG
    (tmp_path / "liverseg").mkdir()
    (tmp_path / "liverseg" / "pacs.yaml").write_text("url: http://pacs.example/dicom-web\ntoken: t0k\n")
    (tmp_path / "liverseg" / "pacs.yaml").chmod(0o600)
    cfg = load_pacs_config(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert (
        cfg.url == "http://pacs.example/dicom-web"
        and cfg.token == "t0k"
        and cfg.describe().endswith("(bearer token)")
    )
    assert load_pacs_config(env={"LIVERSEG_PACS_CONFIG": str(path)}).username == "a"


@pytest.mark.parametrize(
    ("url", "env", "text", "mode", "message"),
    [
        ("http://ris:pw@127.0.0.1/dicom-web", {}, None, 0o600, "must not contain credentials"),
        ("ftp://host/x", {}, None, 0o600, "must be http"),
        (None, {}, None, 0o600, "no PACS URL"),
        (None, {}, f"url: {URL}\npassword: x\nusername: y\n", 0o644, "readable by others"),
        (None, {}, f"url: {URL}\nhost: x\n", 0o600, "unknown PACS config key"),
        (None, {}, f"url: {URL}\nusername: only\n", 0o600, "both a username and a password"),
        (None, {}, "- a list\n", 0o600, "expected a mapping"),
    ],
)
def test_refused_settings(tmp_path, url, env, text, mode, message):
    path = _file(tmp_path, text, mode) if text is not None else None
    with pytest.raises(ConfigError, match=message):
        load_pacs_config(url=url, config_file=path, env={"XDG_CONFIG_HOME": str(tmp_path / "none"), **env})


def test_cli_has_no_credential_options():
    from liverseg.cli.main import build_parser

    parser = build_parser()
    for command in ("find", "segment", "watch"):
        text = parser.parse_args(["pacs", command, *(["--study", "1"] if command == "segment" else [])])
        options = vars(text)
        assert not {"password", "username", "token", "user"} & set(options), options
