"""ONNX exports go to the user cache only, keyed by the checkpoint's sha256: a read-only model
folder (an installed site-packages) works and is never written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from liverseg.inference import loading
from liverseg.models import build_model
from liverseg.training.checkpoint import save_checkpoint
from liverseg.training.slabs import StageSpec
from liverseg.utils import sha256_file

SPEC = StageSpec(
    stage="single",
    classes=("background", "liver", "tumor"),
    context_slices=1,
    spacing_zyx=(None, 1.5, 1.5),
    window=(50.0, 400.0),
)


def _checkpoint(folder: Path) -> Path:
    model = build_model("unet", 3, 3, features=4, depth=2)
    return save_checkpoint(
        folder / "stage.pt",
        model,
        spec=SPEC,
        model_name="unet",
        model_kwargs={"features": 4, "depth": 2},
        config={},
        dataset_fingerprint=None,
        metrics={},
    )


@pytest.fixture
def read_only_model(tmp_path: Path):
    folder = tmp_path / "site-packages" / "liverseg" / "catalog" / "m"
    folder.mkdir(parents=True)
    ckpt = _checkpoint(folder)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    yield ckpt
    folder.chmod(stat.S_IRWXU)


def test_export_goes_to_the_user_cache_only(tmp_path: Path, read_only_model: Path, monkeypatch) -> None:
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    before = sorted(os.listdir(read_only_model.parent))

    runner = loading._stage_runner(read_only_model, "cpu", "onnx", 2)

    assert sorted(os.listdir(read_only_model.parent)) == before  # nothing written beside the weights
    digest = sha256_file(read_only_model)
    exported = list((cache / "liverseg" / "onnx").iterdir())
    assert len(exported) == 1 and digest in exported[0].name
    assert not [p for p in exported[0].parent.iterdir() if p.name.startswith(".")]  # no temporary left
    probs = runner.backend.probabilities(np.zeros((1, 3, 32, 32), np.float32))
    assert probs.shape == (1, 3, 32, 32) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    # a second load reuses the cached graph (no export)
    mtime = exported[0].stat().st_mtime_ns
    monkeypatch.setattr("liverseg.models.export_onnx", lambda *a, **k: pytest.fail("exported twice"))
    loading._stage_runner(read_only_model, "cpu", "onnx", 2)
    assert exported[0].stat().st_mtime_ns == mtime


def test_cache_dir_follows_xdg_and_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert loading.onnx_cache_dir() == tmp_path / "c" / "liverseg" / "onnx"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec ignores relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert loading.onnx_cache_dir() == tmp_path / "home" / ".cache" / "liverseg" / "onnx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert loading.onnx_cache_dir() == tmp_path / "home" / ".cache" / "liverseg" / "onnx"


def test_cache_key_changes_with_the_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    a = _checkpoint(tmp_path / "a")
    b = _checkpoint(tmp_path / "b")  # another random initialisation: other weights, other key
    assert loading._onnx_cache_path(a) != loading._onnx_cache_path(b)
    assert loading._onnx_cache_path(a).parent == loading.onnx_cache_dir()
