"""Per-stage training cache: canonical, resampled int16 HU + uint8 labels, one ``.npz`` per case.

Layout::

    cache_dir/<spec-hash>/manifest.json     spec, dataset fingerprint, cases, splits (a copy)
    cache_dir/<spec-hash>/<case>.npz        image int16 (z, y, x) HU, label uint8, spacing_zyx mm

The hash covers the stage grid of the :class:`StageSpec` (stage, spacing), the stored margin and the
cache format, so a grid change uses a new folder (a window change does not); a dataset fingerprint change rebuilds the folder. The manifest keeps the case
list, patient ids and splits so training runs from the cache alone when the prepared dataset is
absent (e.g. on a GPU machine that received only the cache).

Stage grids follow inference exactly: canonical orientation; for the ``tumor`` stage the liver box
(plus margin) is cropped on the canonical grid first, then resampled to the stage spacing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.data.dataset import load_dataset
from liverseg.data.slice_export import is_full_quality
from liverseg.errors import ConfigError, InputError
from liverseg.io import to_canonical
from liverseg.preprocessing import crop, label_bbox, resample_to_spacing
from liverseg.training.slabs import StageSpec
from liverseg.utils import atomic_path, atomic_write_text, progress

__all__ = ["CACHE_FORMAT", "CachedCase", "StageCache", "build_or_open_cache", "spec_hash", "to_stage_grid"]

log = logging.getLogger(__name__)
CACHE_FORMAT = "liverseg-train-cache"
CACHE_VERSION = 2
_HU_MIN, _HU_MAX = -32768, 32767


def spec_hash(spec: StageSpec, stored_margin_mm: float) -> str:
    """16 hex digits identifying the cached representation of ``spec``.

    Only what the cached arrays depend on enters the hash: the stage (whole slices or the liver
    box), the grid spacing and the stored margin. The window, the number of context slices and
    the classes are applied when samples are drawn, so stages that differ only in those share
    one cache.
    """
    grid = {"stage": spec.stage, "spacing_zyx": list(spec.spacing_zyx)}
    key = {"grid": grid, "stored_margin_mm": round(float(stored_margin_mm), 6), "v": CACHE_VERSION}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CachedCase:
    """One case on its stage grid, in RAM.

    Attributes:
        image: int16 HU ``(z, y, x)``; label: uint8 ``(z, y, x)`` (0/1/2).
        spacing_zyx: mm. liver_slices / tumor_slices: z indices containing liver (>= 1) / tumor.
        liver_box: bounding box of the liver on this grid (None without liver).
        full_quality: False for a clipped, lossy slice export (``dataset.json`` image_quality).
    """

    id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray
    spacing_zyx: tuple[float, float, float]
    full_quality: bool = True
    liver_slices: np.ndarray = field(init=False)
    tumor_slices: np.ndarray = field(init=False)
    liver_box: tuple[slice, slice, slice] | None = field(init=False)

    def __post_init__(self) -> None:
        liver = self.label >= 1
        self.liver_slices = np.flatnonzero(liver.any(axis=(1, 2)))
        self.tumor_slices = np.flatnonzero((self.label == 2).any(axis=(1, 2)))
        if self.liver_slices.size:
            idx = [np.flatnonzero(liver.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
            self.liver_box = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)  # type: ignore[assignment]
        else:
            self.liver_box = None


def to_stage_grid(image: Any, label: Any, spec: StageSpec, margin_mm: float) -> tuple[Any, Any] | None:
    """Map an ``(image, label)`` pair of Volumes onto the stage grid (canonical, cropped, resampled).

    Returns ``None`` for a tumor-stage case without liver (nothing to crop around).
    Images are resampled linearly, labels with nearest neighbour.
    """

    image, _ = to_canonical(image)
    label, _ = to_canonical(label)
    if spec.stage == "tumor":
        liver = np.asarray(label.array) >= 1
        if not liver.any():
            return None
        box = label_bbox(liver, label.spacing, margin_mm)
        image, label = crop(image, box), crop(label, box)
    image_r, _ = resample_to_spacing(image, spec.spacing_zyx, order=1)
    label_r, _ = resample_to_spacing(label, spec.spacing_zyx)  # a LabelMap: nearest-neighbour
    return image_r, label_r


class StageCache:
    """An opened cache folder: manifest plus lazily loaded (then kept) :class:`CachedCase` objects."""

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._cases: dict[str, CachedCase] = {}

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["dataset_fingerprint"])

    @property
    def case_ids(self) -> list[str]:
        """Ids of the cached cases (tumor stage: cases with liver only)."""
        return [c["id"] for c in self.manifest["cases"] if not c.get("skipped")]

    @property
    def all_case_ids(self) -> list[str]:
        return [c["id"] for c in self.manifest["cases"]]

    @property
    def patients(self) -> dict[str, str]:
        """case id -> patient id."""
        return {c["id"]: c["patient_id"] for c in self.manifest["cases"]}

    @property
    def full_quality(self) -> dict[str, bool]:
        """case id -> full-quality CT (False: a clipped slice export)."""
        return {c["id"]: bool(c.get("full_quality", True)) for c in self.manifest["cases"]}

    @property
    def splits(self) -> dict[str, Any] | None:
        return self.manifest.get("splits")

    def case(self, case_id: str) -> CachedCase:
        """Load (once) and return a cached case."""
        if case_id not in self._cases:
            if case_id not in self.case_ids:
                raise ConfigError(
                    f"case {case_id!r} is not in the training cache {self.folder} "
                    f"(cases: {', '.join(self.case_ids)})"
                )
            path = self.folder / f"{case_id}.npz"
            try:
                with np.load(path) as z:
                    self._cases[case_id] = CachedCase(
                        id=case_id,
                        patient_id=self.patients[case_id],
                        image=z["image"],
                        label=z["label"],
                        spacing_zyx=tuple(float(s) for s in z["spacing_zyx"]),  # type: ignore[arg-type]
                        full_quality=self.full_quality[case_id],
                    )
            except (OSError, KeyError, ValueError) as exc:
                raise InputError(
                    f"cannot read cached case ({exc}); delete the cache folder to rebuild", path
                ) from exc
        return self._cases[case_id]

    def preload(self, ids: list[str] | None = None) -> None:
        """Read the given (default: all) cases into RAM."""
        for cid in ids if ids is not None else self.case_ids:
            self.case(cid)

    def nbytes(self) -> int:
        """Bytes of the cached arrays on disk."""
        return sum(p.stat().st_size for p in self.folder.glob("*.npz"))


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("format") != CACHE_FORMAT or data.get("version") != CACHE_VERSION:
        return None
    return data


def _case_file_ok(folder: Path, entry: dict[str, Any]) -> bool:
    return bool(entry.get("skipped")) or (folder / f"{entry['id']}.npz").is_file()


def _build(folder: Path, dataset: Any, spec: StageSpec, margin_mm: float) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.npz"):
        stale.unlink()
    entries = []
    for info in progress(dataset.cases, desc=f"cache {spec.stage}", total=len(dataset.cases)):
        image, label = dataset.load_case(info.id)
        mapped = to_stage_grid(image, label, spec, margin_mm)
        entry: dict[str, Any] = {
            "id": info.id,
            "patient_id": info.patient_id,
            "full_quality": is_full_quality(info.extra),
        }
        if mapped is None:
            log.warning("case %s has no liver label: left out of the %s-stage cache", info.id, spec.stage)
            entry["skipped"] = "no liver in the label map"
        else:
            img, lab = mapped
            arr = np.clip(np.rint(np.asarray(img.array, dtype=np.float32)), _HU_MIN, _HU_MAX).astype(np.int16)
            lab_arr = np.asarray(lab.array, dtype=np.uint8)
            with atomic_path(folder / f"{info.id}.npz") as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, image=arr, label=lab_arr, spacing_zyx=np.asarray(img.spacing))
            entry.update(
                shape_zyx=list(arr.shape),
                spacing_zyx_mm=[round(s, 6) for s in img.spacing],
                liver_voxels=int((lab_arr >= 1).sum()),
                tumor_voxels=int((lab_arr == 2).sum()),
            )
        entries.append(entry)
    splits = dataset.splits.to_dict() if dataset.splits is not None else None
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "spec": spec.to_dict(),
        "stored_margin_mm": margin_mm,
        "dataset_name": dataset.name,
        "dataset_dir": str(dataset.root),
        "dataset_fingerprint": dataset.fingerprint,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cases": entries,
        "splits": splits,
    }
    atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def build_or_open_cache(
    dataset_dir: str | Path | None, cache_dir: str | Path, spec: StageSpec, *, margin_mm: float = 0.0
) -> StageCache:
    """Open the cache of ``spec``, (re)building it from the prepared dataset when needed.

    Args:
        dataset_dir: prepared dataset folder; may be None/absent when a valid cache exists.
        cache_dir: root of the cache (one sub-folder per spec hash).
        spec: the stage spec; ``margin_mm`` is the liver-box margin stored for the tumor stage
            (the spec's margin plus the training jitter).

    Raises:
        ConfigError: neither a dataset nor a cache for this spec is available (names ``data.dir``).
    """

    margin_mm = float(margin_mm) if spec.stage == "tumor" else 0.0
    folder = Path(cache_dir) / spec_hash(spec, margin_mm)
    manifest = _read_manifest(folder)
    have_data = dataset_dir is not None and (Path(dataset_dir) / "dataset.json").is_file()
    if not have_data:
        if manifest is None or not all(_case_file_ok(folder, e) for e in manifest["cases"]):
            raise ConfigError(
                f"data.dir: no prepared dataset at {dataset_dir} (expected a folder with dataset.json) "
                f"and no complete training cache for this stage at {folder}"
            )
        log.info("training from the cache %s (dataset folder absent)", folder)
        return StageCache(folder, manifest)
    try:
        dataset = load_dataset(dataset_dir)  # type: ignore[arg-type]
    except InputError as exc:
        raise ConfigError(f"data.dir: {exc}") from exc
    fresh = (
        manifest is not None
        and manifest["dataset_fingerprint"] == dataset.fingerprint
        and all(_case_file_ok(folder, e) for e in manifest["cases"])
    )
    if fresh:
        assert manifest is not None
        splits = dataset.splits.to_dict() if dataset.splits is not None else None
        if manifest.get("splits") != splits:  # splits are not part of the fingerprint: keep the copy current
            manifest["splits"] = splits
            atomic_write_text(folder / "manifest.json", json.dumps(manifest, indent=1) + "\n")
        return StageCache(folder, manifest)
    if manifest is not None:
        log.info("training cache %s is stale (dataset fingerprint or files changed): rebuilding", folder)
    else:
        log.info("building the training cache %s", folder)
    return StageCache(folder, _build(folder, dataset, spec, margin_mm))
