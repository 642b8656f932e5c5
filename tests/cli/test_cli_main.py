"""The CLI contract: --help/--version, exit codes 0/1/2, one-line errors, tracebacks only with --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from liverseg import __version__
from liverseg.cli.main import COMMAND_MODULES, build_parser, main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liverseg", *args], capture_output=True, text=True, timeout=120
    )


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("segment", "data", "evaluate", "train", "serve"):
        assert cmd in out


def test_every_subcommand_has_documented_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert len(COMMAND_MODULES) >= 10
    for name, sp in sub.choices.items():
        help_text = sp.format_help()
        assert "usage:" in help_text and len(help_text) > 80, name


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["segment"])  # missing INPUT and -o
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_failure_is_one_line_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.nii.gz"
    res = _run("segment", str(missing), "-o", str(tmp_path / "out.nii.gz"))
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "nope.nii.gz" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "out.nii.gz").exists()


def test_debug_shows_traceback(tmp_path: Path) -> None:
    res = _run("--debug", "segment", str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path / "o.nii.gz"))
    assert res.returncode == 1
    assert "Traceback" in res.stderr
