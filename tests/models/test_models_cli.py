"""``liverseg models``: the table of registered networks."""

from __future__ import annotations

import argparse
import json

import pytest

from liverseg.cli import models as cli_models
from liverseg.errors import ConfigError
from liverseg.models import MODELS, model_info


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="liverseg")
    cli_models.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_table_lists_every_model_with_size_and_cost(capsys):
    assert _run(["models", "--in-channels", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "description"] and "GFLOPs/256x256" in lines[0]
    rows = {line.split()[0]: line for line in lines[2 : 2 + len(MODELS)]}
    assert list(rows) == list(MODELS)
    info = model_info("mobileunet", 3, 256)
    assert f"{info['params'] / 1e6:.2f}" in rows["mobileunet"]
    assert f"{info['gflops']:.2f}" in rows["mobileunet"]
    assert "width_mult=1.0" in rows["mobileunet"]
    assert "(in_channels=3;" in out


def test_json_output_and_options(capsys):
    assert _run(["models", "--json", "--in-channels", "1", "--out-channels", "2", "--size", "128"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(MODELS)
    unet = rows[0]
    assert (unet["in_channels"], unet["out_channels"], unet["size"]) == (1, 2, 128)
    assert unet["gflops"] == pytest.approx(model_info("unet", 1, 128, out_channels=2)["gflops"])
    assert unet["kwargs"] == {"features": 32, "depth": 4, "dropout": 0.2}


def test_bad_channel_count_is_a_user_error():
    with pytest.raises(ConfigError, match="in_channels must be >= 1, got 0"):
        _run(["models", "--in-channels", "0"])
