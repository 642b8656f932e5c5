"""A compact, portable form of a training cache, for training on a machine without the dataset.

A training cache (:mod:`liverseg.training.cache`) stores int16 HU, which a lent GPU machine
cannot receive in full (its transfer limit is tens of MB, the cache of 37 patients is ~200 MB).
A *pack* keeps what the network can see and drops what it cannot:

* each case's HU are quantised to 8 bits over a per-case **transport window**: a slice export is
  already 8-bit over its own window (``dataset.json`` ``image_quality.window_hu``), so nothing is
  lost; a full-quality CT keeps ``default_window_hu`` (-200..300 HU by default, 2 HU steps:
  wider than any stage window used, far below CT noise); values outside are clipped;
* arrays are compressed with LZMA (lossless on the 8-bit data);
* cases can be split over several pack files (:func:`pack_cache` ``case_ids``), unpacked one
  after another into the same cache folder.

:func:`unpack_cache` writes an ordinary cache folder (same spec hash, manifest and ``.npz``
layout), so ``liverseg train`` runs from it with ``data.dir`` absent. The reconstruction error is
at most half a quantisation step (<= 1 HU for full-quality CT within the window).
"""

from __future__ import annotations

import io
import json
import logging
import lzma
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import InputError
from liverseg.training.cache import StageCache
from liverseg.utils import atomic_path, atomic_write_text

__all__ = ["DEFAULT_TRANSPORT_WINDOW_HU", "PACK_FORMAT", "pack_cache", "unpack_cache"]

log = logging.getLogger(__name__)

PACK_FORMAT = "liverseg-cache-pack"
PACK_VERSION = 1
DEFAULT_TRANSPORT_WINDOW_HU = (-200.0, 300.0)


def _quantise(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.rint(np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def _dequantise(q: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.rint(lo + q.astype(np.float32) * ((hi - lo) / 255.0)).astype(np.int16)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def pack_cache(
    cache: StageCache,
    out: str | Path,
    *,
    case_ids: Iterable[str] | None = None,
    windows: dict[str, tuple[float, float]] | None = None,
    default_window_hu: tuple[float, float] = DEFAULT_TRANSPORT_WINDOW_HU,
) -> Path:
    """Write ``cache`` (or the cases ``case_ids`` of it) into one pack file ``out``.

    Args:
        cache: an opened training cache.
        out: the pack file (a tar of LZMA-compressed arrays and the cache manifest).
        case_ids: the cases to include (default: every cached case).
        windows: per-case transport window ``(low, high)`` HU (e.g. a slice export's own window);
            other cases use ``default_window_hu``.

    Returns:
        ``out``.
    """
    ids = list(case_ids) if case_ids is not None else cache.case_ids
    unknown = sorted(set(ids) - set(cache.case_ids))
    if unknown:
        raise InputError(f"cases {unknown} are not in the training cache {cache.folder}")
    windows = windows or {}
    out = Path(out)
    with atomic_path(out) as tmp, tarfile.open(tmp, "w") as tar:
        meta: dict[str, Any] = {
            "format": PACK_FORMAT,
            "version": PACK_VERSION,
            "cache_folder": cache.folder.name,
            "manifest": cache.manifest,
            "cases": {},
        }
        for cid in ids:
            case = cache.case(cid)
            window = tuple(float(v) for v in windows.get(cid, default_window_hu))
            q = _quantise(case.image, window)  # type: ignore[arg-type]
            _add(tar, f"{cid}.image.xz", lzma.compress(q.tobytes(), preset=6))
            _add(tar, f"{cid}.label.xz", lzma.compress(np.ascontiguousarray(case.label).tobytes(), preset=6))
            meta["cases"][cid] = {
                "shape_zyx": list(q.shape),
                "spacing_zyx": list(case.spacing_zyx),
                "window_hu": list(window),
            }
        _add(tar, "pack.json", json.dumps(meta, indent=1).encode())
    log.info(
        "packed %d case(s) of %s into %s (%.1f MB)", len(ids), cache.folder, out, out.stat().st_size / 1e6
    )
    return out


def unpack_cache(packs: Sequence[str | Path], cache_dir: str | Path) -> Path:
    """Unpack pack files (of one cache) into ``cache_dir/<spec hash>/``; returns that folder.

    Raises:
        InputError: not a pack file, or packs of different caches.
    """
    folder: Path | None = None
    for pack in packs:
        pack = Path(pack)
        try:
            with tarfile.open(pack, "r") as tar:
                members = {m.name: m for m in tar.getmembers()}
                if "pack.json" not in members:
                    raise InputError(
                        f"not a liverseg cache pack (no pack.json; expected {PACK_FORMAT})", pack
                    )
                meta = json.loads(tar.extractfile(members["pack.json"]).read())  # type: ignore[union-attr]
                if meta.get("format") != PACK_FORMAT or meta.get("version") != PACK_VERSION:
                    raise InputError(
                        f"expected a {PACK_FORMAT} v{PACK_VERSION} file, got {meta.get('format')} "
                        f"v{meta.get('version')}",
                        pack,
                    )
                target = Path(cache_dir) / meta["cache_folder"]
                if folder is not None and target != folder:
                    raise InputError(f"pack of cache {target.name} mixed with packs of {folder.name}", pack)
                folder = target
                folder.mkdir(parents=True, exist_ok=True)
                for cid, info in meta["cases"].items():
                    shape = tuple(info["shape_zyx"])
                    raw = lzma.decompress(tar.extractfile(members[f"{cid}.image.xz"]).read())  # type: ignore[union-attr]
                    image = _dequantise(np.frombuffer(raw, np.uint8).reshape(shape), tuple(info["window_hu"]))
                    raw = lzma.decompress(tar.extractfile(members[f"{cid}.label.xz"]).read())  # type: ignore[union-attr]
                    label = np.frombuffer(raw, np.uint8).reshape(shape)
                    with atomic_path(folder / f"{cid}.npz") as tmp, open(tmp, "wb") as fh:
                        np.savez(fh, image=image, label=label, spacing_zyx=np.asarray(info["spacing_zyx"]))
                manifest = dict(meta["manifest"])
                manifest["unpacked_from"] = sorted(set(manifest.get("unpacked_from", [])) | {pack.name})
                atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1) + "\n")
        except (tarfile.TarError, lzma.LZMAError, KeyError, ValueError, OSError) as exc:
            raise InputError(f"cannot unpack the cache pack ({exc})", pack) from exc
    if folder is None:
        raise InputError("no pack files given")
    return folder
