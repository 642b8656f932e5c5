"""Cache packs for transport (liverseg.training.transport)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from liverseg.errors import InputError
from liverseg.training.cache import StageCache
from liverseg.training.transport import pack_cache, unpack_cache


def _cache(folder: Path) -> StageCache:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cases = []
    for cid in ("a", "b", "c"):
        image = rng.integers(-1000, 1500, (4, 16, 16)).astype(np.int16)
        label = rng.integers(0, 3, (4, 16, 16)).astype(np.uint8)
        np.savez_compressed(
            folder / f"{cid}.npz", image=image, label=label, spacing_zyx=np.array([3.0, 1.0, 1.0])
        )
        cases.append({"id": cid, "patient_id": cid, "full_quality": cid != "c"})
    manifest = {"format": "liverseg-train-cache", "version": 2, "dataset_fingerprint": "f", "cases": cases}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return StageCache(folder, manifest)


def test_pack_unpack_round_trip_in_parts(tmp_path: Path) -> None:
    cache = _cache(tmp_path / "cache" / "abc123")
    p1 = pack_cache(cache, tmp_path / "p1.pack", case_ids=["a"], windows={"a": (-40.0, 160.0)})
    p2 = pack_cache(cache, tmp_path / "p2.pack", case_ids=["b", "c"])
    folder = unpack_cache([p1, p2], tmp_path / "remote")
    assert folder.name == "abc123"
    remote = StageCache(folder, json.loads((folder / "manifest.json").read_text()))
    assert remote.case_ids == ["a", "b", "c"] and remote.full_quality == {"a": True, "b": True, "c": False}
    for cid, (lo, hi) in (("a", (-40, 160)), ("b", (-200, 300)), ("c", (-200, 300))):
        orig, back = cache.case(cid), remote.case(cid)
        assert np.array_equal(orig.label, back.label)
        expected = np.clip(orig.image, lo, hi)
        assert np.abs(back.image.astype(float) - expected).max() <= (hi - lo) / 255 / 2 + 0.5
        assert back.spacing_zyx == (3.0, 1.0, 1.0)


def test_unpack_refuses_foreign_files_and_mixed_caches(tmp_path: Path) -> None:
    bad = tmp_path / "x.pack"
    bad.write_bytes(b"not a tar")
    with pytest.raises(InputError, match="cannot unpack"):
        unpack_cache([bad], tmp_path / "r")
    a = pack_cache(_cache(tmp_path / "c1" / "h1"), tmp_path / "a.pack")
    b = pack_cache(_cache(tmp_path / "c2" / "h2"), tmp_path / "b.pack")
    with pytest.raises(InputError, match="mixed"):
        unpack_cache([a, b], tmp_path / "r2")
    with pytest.raises(InputError, match="not in the training cache"):
        pack_cache(_cache(tmp_path / "c3" / "h3"), tmp_path / "c.pack", case_ids=["zzz"])
