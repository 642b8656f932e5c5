"""``liverseg data prepare``: convert a source layout into a prepared dataset folder.

For every case found by :func:`liverseg.data.layouts.discover_cases` it writes
``OUT/images/<id>.nii.gz`` (HU; int16 when every value is an integer in range, else float32)
and ``OUT/labels/<id>.nii.gz`` (uint8 0/1/2, same grid), computes the statistics of
:func:`liverseg.data.stats.case_statistics`, and (re)writes ``OUT/dataset.json`` after each case,
atomically. Preparing into an existing OUT updates it: cases with the same id are replaced, other
cases are kept (so several sources can be combined into one dataset), and splits are kept only
while the set of case ids is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from liverseg.data.cases import LayoutOptions, LoadedCase, SourceCase, natural_key
from liverseg.data.dataset import (
    DATASET_JSON,
    CaseInfo,
    PreparedDataset,
    Splits,
    load_dataset,
    write_dataset_json,
)
from liverseg.data.layouts import discover_cases
from liverseg.data.stats import case_statistics
from liverseg.io import write_volume
from liverseg.io.labels import check_label_map
from liverseg.utils import code_version, ensure_parent, progress, sha256_file

__all__ = ["prepare_case", "prepare_dataset"]

log = logging.getLogger(__name__)

_INT16 = np.iinfo(np.int16)


@dataclass
class _State:
    name: str
    created: str
    cases: dict[str, CaseInfo]
    splits: Splits | None
    split_ids: set[str] | None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _storage_array(image: np.ndarray) -> np.ndarray:
    """int16 when every HU value is an integer in the int16 range (lossless), else float32."""
    arr = np.asarray(image)
    if arr.dtype == np.int16:
        return arr
    if arr.size and arr.min() >= _INT16.min and arr.max() <= _INT16.max and np.array_equal(arr, np.rint(arr)):
        return arr.astype(np.int16)
    return arr.astype(np.float32, copy=False)


def prepare_case(out: Path, source: SourceCase, loaded: LoadedCase) -> CaseInfo:
    """Write one loaded case into ``out`` and return its manifest entry.

    Raises:
        GeometryError: label and image grids differ. InputError: label values outside 0/1/2.
        OutputError: the files cannot be written.
    """

    stats = case_statistics(loaded.image, loaded.label)
    image_rel, label_rel = f"images/{source.case_id}.nii.gz", f"labels/{source.case_id}.nii.gz"
    write_volume(loaded.image.with_array(_storage_array(loaded.image.array)), out / image_rel)
    write_volume(check_label_map(loaded.label), out / label_rel)
    extra: dict[str, object] = {"source_format": source.source_format, **loaded.extra}
    if loaded.warnings:
        extra["warnings"] = list(loaded.warnings)
    info = CaseInfo(
        id=source.case_id,
        patient_id=source.patient_id,
        image=image_rel,
        label=label_rel,
        source=str(Path(source.source).resolve()),
        shape_zyx=tuple(stats["shape_zyx"]),
        spacing_zyx_mm=tuple(stats["spacing_zyx_mm"]),
        hu_range=stats["hu_range"],
        liver_volume_ml=stats["liver_volume_ml"],
        tumor_volume_ml=stats["tumor_volume_ml"],
        tumor_components=stats["tumor_components"],
        image_sha256=sha256_file(out / image_rel),
        label_sha256=sha256_file(out / label_rel),
        mapping=loaded.mapping,
        extra=extra,
    )
    log.info(
        "%s: %s, spacing %s mm, liver %.1f ml, tumor %.1f ml in %d component(s)",
        info.id,
        "x".join(map(str, info.shape_zyx)),
        info.spacing_zyx_mm,
        info.liver_volume_ml,
        info.tumor_volume_ml,
        info.tumor_components,
    )
    return info


def _load_state(out: Path, name: str | None) -> _State:
    if not (out / DATASET_JSON).exists():
        return _State(name or out.resolve().name, _now(), {}, None, None)
    ds = load_dataset(out, check_files=False)
    log.info("%s: updating the existing dataset (%d case(s))", out, len(ds.cases))
    return _State(
        name or ds.name, ds.created or _now(), {c.id: c for c in ds.cases}, ds.splits, set(ds.case_ids)
    )


def _save(out: Path, state: _State) -> None:
    cases = sorted(state.cases.values(), key=lambda c: natural_key(c.id))
    formats = sorted({str(c.extra.get("source_format", "")) for c in cases} - {""})
    splits = state.splits if state.split_ids == set(state.cases) else None
    write_dataset_json(
        out,
        name=state.name,
        source_format=formats[0] if len(formats) == 1 else "mixed",
        created=state.created,
        cases=cases,
        splits=splits,
        extra={"updated": _now(), "code_version": code_version()},
    )


def prepare_dataset(
    src: str | Path,
    out: str | Path,
    fmt: str,
    *,
    options: LayoutOptions | None = None,
    name: str | None = None,
) -> PreparedDataset:
    """Convert the source tree ``src`` in layout ``fmt`` into the prepared dataset ``out``.

    Args:
        src: source folder (see :mod:`liverseg.data.layouts` for each format's layout).
        out: dataset folder; created, or updated when it already holds a ``dataset.json``.
        fmt: one of :data:`liverseg.data.layouts.LAYOUTS`.
        options: ``--spacing`` / ``--map`` options.
        name: dataset name (default: the existing name, else the folder name).

    Returns:
        The prepared dataset as :func:`~liverseg.data.dataset.load_dataset` reads it.

    Raises:
        ConfigError, InputError, GeometryError, OutputError: see the layouts; a failing case stops
        the run, the cases already written stay recorded in ``dataset.json``.
    """
    out = Path(out)
    sources = discover_cases(fmt, src, options)
    log.info("%s: %d %s case(s): %s", src, len(sources), fmt, ", ".join(s.case_id for s in sources))
    ensure_parent(out / DATASET_JSON)
    state = _load_state(out, name)
    for source in progress(sources, desc=f"prepare {fmt}", unit="case"):
        old = state.cases.get(source.case_id)
        if old is not None and old.source and Path(old.source) != Path(source.source).resolve():
            log.warning(
                "%s: replacing the case prepared from %s with %s", source.case_id, old.source, source.source
            )
        info = prepare_case(out, source, source.load())
        state.cases[source.case_id] = info
        _save(out, state)
    if state.splits is not None and state.split_ids != set(state.cases):
        log.warning(
            "%s: the set of cases changed; the old splits were removed, re-run `liverseg data split`", out
        )
    return load_dataset(out)
