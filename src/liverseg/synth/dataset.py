"""Write phantoms as a prepared dataset (the ``liverseg data prepare`` layout), for training smoke
runs, tests and demos without real data.

Case ``i`` of seed ``S`` is drawn from ``np.random.default_rng([S, i])``, so a case does not depend
on how many cases are written. Every ``tumor_free_every``-th case (ids ``synth_001``,
``synth_006``, ... for the default 5) has no tumor, so a small dataset has both kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.data.dataset import DATASET_JSON, CaseInfo, PreparedDataset, load_dataset, write_dataset_json
from liverseg.data.splits import make_splits
from liverseg.data.stats import case_statistics
from liverseg.errors import ConfigError, OutputError
from liverseg.io import write_volume
from liverseg.synth.phantom import DEFAULT_SHAPE, DEFAULT_SPACING, GENERATOR, make_phantom
from liverseg.utils import progress, sha256_file

__all__ = ["case_id", "has_tumors", "write_phantom_dataset"]

log = logging.getLogger(__name__)

SOURCE_FORMAT = "synthetic"


def case_id(index: int) -> str:
    """The id of phantom case ``index``: ``synth_000``, ``synth_001``, ..."""
    return f"synth_{index:03d}"


def has_tumors(index: int, tumor_free_every: int) -> bool:
    """Whether case ``index`` gets tumors (``tumor_free_every`` 0 means every case has tumors)."""
    return tumor_free_every <= 0 or index % tumor_free_every != 1 % tumor_free_every


def _check_existing(root: Path) -> None:
    manifest = root / DATASET_JSON
    if not manifest.exists():
        return
    try:
        existing = load_dataset(root, check_files=False)
    except Exception as exc:
        raise OutputError(
            f"holds a {DATASET_JSON} that cannot be read ({exc}); refusing to overwrite", root
        ) from exc
    if existing.manifest.get("source_format") != SOURCE_FORMAT:
        raise OutputError(
            f"holds a prepared dataset of real data (source_format "
            f"{existing.manifest.get('source_format')!r}); phantoms are only written to an empty folder or "
            f"over earlier phantoms",
            root,
        )


def write_phantom_dataset(
    out: str | Path,
    *,
    cases: int = 10,
    seed: int = 0,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    tumor_free_every: int = 5,
    folds: int | None = None,
    name: str | None = None,
) -> PreparedDataset:
    """Write ``cases`` phantoms to ``out`` as a prepared dataset and return it (loaded back).

    Args:
        out: dataset folder (created; an earlier phantom dataset there is replaced, a dataset of
            real data is never overwritten).
        cases: number of cases (>= 1).
        seed: non-negative base seed.
        shape, spacing: grid ``(z, y, x)`` and voxel size in mm of every case.
        tumor_free_every: every K-th case (index ``i % K == 1``) has no tumor; 0 = all have tumors.
        folds: when given, also store patient-level splits (``liverseg data split``) with ``seed``.
        name: dataset name (default ``phantoms_seed<S>``).

    Files: ``images/<id>.nii.gz`` (int16 HU), ``labels/<id>.nii.gz`` (uint8 0/1/2),
    ``dataset.json`` (contract fields plus ``synthetic``, ``generator`` and per-case lesion records).
    """
    if int(cases) < 1:
        raise ConfigError(f"--cases must be at least 1, got {cases}")
    if int(seed) < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    root = Path(out)
    _check_existing(root)
    infos: list[CaseInfo] = []
    for i in progress(range(int(cases)), desc="phantoms", total=int(cases)):
        cid = case_id(i)
        tumors = has_tumors(i, tumor_free_every)
        image, label, info = make_phantom(
            np.random.default_rng([int(seed), i]), shape, spacing, tumors=tumors
        )
        image_path = write_volume(
            image.with_array(image.array.astype(np.int16)), root / "images" / f"{cid}.nii.gz"
        )
        label_path = write_volume(label, root / "labels" / f"{cid}.nii.gz")
        stats = case_statistics(image, label)
        lesions = [
            {k: rec[k] for k in ("id", "diameter_mm", "kind", "contrast_hu", "center_voxel_zyx", "volume_ml")}
            for rec in info["lesions"]
        ]
        extra: dict[str, Any] = {
            "synthetic": True,
            "generator": GENERATOR,
            "seed": [int(seed), i],
            "liver_hu": info["liver_hu"],
            "noise_sigma_hu": info["noise_sigma_hu"],
            "lesions": lesions,
        }
        infos.append(
            CaseInfo(
                id=cid,
                patient_id=cid,
                image=f"images/{cid}.nii.gz",
                label=f"labels/{cid}.nii.gz",
                source=f"synthetic phantom (seed {int(seed)}, case {i})",
                shape_zyx=tuple(stats["shape_zyx"]),  # type: ignore[arg-type]
                spacing_zyx_mm=tuple(stats["spacing_zyx_mm"]),  # type: ignore[arg-type]
                hu_range=stats["hu_range"],
                liver_volume_ml=stats["liver_volume_ml"],
                tumor_volume_ml=stats["tumor_volume_ml"],
                tumor_components=stats["tumor_components"],
                image_sha256=sha256_file(image_path),
                label_sha256=sha256_file(label_path),
                mapping={"1": "liver (phantom)", "2": "tumor (phantom lesions)"},
                extra=extra,
            )
        )
    _remove_stale(root, {c.id for c in infos})
    splits = None
    if folds is not None:
        splits = make_splits(infos, folds=int(folds), seed=int(seed))
    write_dataset_json(
        root,
        name=name or f"phantoms_seed{int(seed)}",
        source_format=SOURCE_FORMAT,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        cases=infos,
        splits=splits,
        extra={
            "synthetic": True,
            "generator": GENERATOR,
            "note": "synthetic phantoms made by liverseg synth: not patient data, never report them as real",
        },
    )
    log.info("wrote %d phantom case(s) to %s", len(infos), root)
    return load_dataset(root)


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Delete phantom files of an earlier, larger run that are not part of this dataset."""
    for sub in ("images", "labels"):
        for path in (root / sub).glob("synth_*.nii.gz"):
            if path.name[: -len(".nii.gz")] not in keep:
                log.debug("removing stale phantom file %s", path)
                path.unlink()
