"""``liverseg lesion-realism``: synthetic vs real lesion statistics on a prepared dataset.

For every case of the dataset (in canonical orientation, so array axis 0 is axial) the real
tumors (label 2) are measured, then synthetic lesions are inserted ``seeds`` times with different
seeds (real tumors stay in place and are avoided) and the synthetic lesions alone are measured
with the same code (:mod:`liverseg.augment.realism`).
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.augment.gallery import Panel, lesion_panel, panel_gallery
from liverseg.augment.lesions import insert_lesions
from liverseg.augment.params import LesionParams
from liverseg.augment.realism import (
    STATISTICS,
    LesionStats,
    comparison_table,
    lesion_statistics,
    summarize,
    values_of,
)
from liverseg.data import load_dataset
from liverseg.errors import InputError
from liverseg.io import to_canonical
from liverseg.utils import atomic_write_text, code_version, progress

__all__ = ["RealismResult", "run_realism"]

log = logging.getLogger(__name__)


@dataclass
class RealismResult:
    """Everything ``liverseg lesion-realism`` reports."""

    dataset: str
    cases: list[str]
    seeds: int
    params: LesionParams
    real: list[LesionStats] = field(default_factory=list)
    synthetic: list[LesionStats] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    inserted: int = 0
    skipped: int = 0
    shrunk: int = 0
    real_panels: list[tuple[float, Panel]] = field(default_factory=list)
    synthetic_panels: list[tuple[float, Panel]] = field(default_factory=list)

    def table(self) -> str:
        """The markdown comparison table (see :func:`~liverseg.augment.realism.comparison_table`)."""
        return comparison_table(self.real, self.synthetic)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary with per-lesion values."""
        return {
            "dataset": self.dataset,
            "cases": self.cases,
            "excluded": self.excluded,
            "seeds": self.seeds,
            "code_version": code_version(),
            "params": self.params.to_dict(),
            "inserted": self.inserted,
            "skipped": self.skipped,
            "shrunk": self.shrunk,
            "statistics": {
                attr: {
                    "min_diameter_mm": min_d,
                    "real": summarize(values_of(self.real, attr, min_d)),
                    "synthetic": summarize(values_of(self.synthetic, attr, min_d)),
                }
                for attr, _, min_d in STATISTICS
            },
            "lesions": [x.to_dict() for x in (*self.real, *self.synthetic)],
        }

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`summary` (NaN as null) atomically."""
        text = json.dumps(_nan_to_none(self.summary()), indent=2)
        return atomic_write_text(path, text + "\n")

    def write_markdown(self, path: str | Path) -> Path:
        """Write the table and the run's provenance as a markdown fragment."""
        excluded = "".join(f" Excluded {cid}: {why}." for cid, why in self.excluded.items())
        lines = [
            f"Dataset `{self.dataset}`: {len(self.cases)} case(s) ({', '.join(self.cases)}), "
            f"{self.seeds} seed(s) per case; {self.inserted} synthetic lesions inserted, "
            f"{self.shrunk} of them shrunk to fit, {self.skipped} skipped (no room).{excluded} "
            f"Code {code_version()}.",
            "",
            "Cells: median [quartiles] (min..max, n).",
            "",
            self.table(),
            "",
        ]
        return atomic_write_text(path, "\n".join(lines))

    def write_gallery(self, path: str | Path, *, per_row: int = 6) -> Path:
        """Real tumors (top row) and synthetic lesions (bottom row), spread over sizes, no outline."""
        rows = [
            ("real", _spread(self.real_panels, per_row)),
            ("synthetic", _spread(self.synthetic_panels, per_row)),
        ]
        return panel_gallery(rows, path)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _spread(panels: Sequence[tuple[float, Panel]], n: int) -> list[Panel]:
    """Up to ``n`` panels evenly spread over the size order."""
    ordered = sorted(panels, key=lambda t: t[0])
    if len(ordered) <= n:
        return [p for _, p in ordered]
    idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [ordered[i][1] for i in idx]


def _panel_hook(image: np.ndarray, spacing: Sequence[float], sink: list[tuple[float, Panel]], case: str):
    def hook(box: tuple[slice, ...], comp: np.ndarray, stats: LesionStats) -> None:
        title = f"{case}: {stats.equivalent_diameter_mm:.0f} mm, {stats.contrast_hu:+.0f} HU"
        sink.append((stats.equivalent_diameter_mm, lesion_panel(image[box], comp, spacing, title)))

    return hook


def run_realism(
    prepared_dir: str | Path,
    *,
    seeds: int = 3,
    count: int | None = None,
    params: LesionParams | None = None,
    case_ids: Sequence[str] | None = None,
) -> RealismResult:
    """Measure real and synthetic lesions of a prepared dataset (see the module docstring).

    Args:
        prepared_dir: a ``liverseg data prepare`` output folder.
        seeds: insertions per case (seeds derived from the case id, reproducible).
        count: lesions per insertion (default: drawn from ``params.count``).
        params: lesion parameters (default :class:`LesionParams`).
        case_ids: restrict to these cases (default: all).

    Cases whose spacing was assumed at preparation (``mapping.spacing_assumed``, e.g. the LiTS
    crop stored as MRC) are excluded: every statistic here is in mm.

    Raises:
        InputError: no such dataset, unknown case ids, or no case with a liver.
    """

    params = params or LesionParams()
    if seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {seeds}")
    ds = load_dataset(prepared_dir)
    ids = list(case_ids) if case_ids else ds.case_ids
    unknown = sorted(set(ids) - set(ds.case_ids))
    if unknown:
        raise InputError(f"unknown case id(s) {unknown}; the dataset has {ds.case_ids}", prepared_dir)
    result = RealismResult(dataset=str(prepared_dir), cases=[], seeds=seeds, params=params)
    for case_id in progress(ids, desc="lesion realism"):
        if ds.case(case_id).mapping.get("spacing_assumed"):
            # sizes, edge widths and smoothing scales in mm would all be wrong
            result.excluded[case_id] = "its voxel spacing is not known (assumed at preparation)"
            log.warning("case %s excluded: %s", case_id, result.excluded[case_id])
            continue
        image, label = ds.load_case(case_id)
        image, _ = to_canonical(image)
        label, _ = to_canonical(label)
        img, lab, sp = image.array, label.array, image.spacing
        if not (lab > 0).any():
            log.info("case %s has no liver label: skipped", case_id)
            continue
        result.cases.append(case_id)
        result.real += lesion_statistics(
            img,
            lab,
            sp,
            case=case_id,
            source="real",
            on_lesion=_panel_hook(img, sp, result.real_panels, case_id),
        )
        for s in range(seeds):
            rng = np.random.default_rng([zlib.crc32(case_id.encode()), s])
            ins = insert_lesions(img, lab, sp, params, rng=rng, count=count)
            result.inserted += len(ins.lesions)
            result.skipped += len(ins.skipped)
            result.shrunk += sum(r.shrunk for r in ins.lesions)
            hook = _panel_hook(ins.image, sp, result.synthetic_panels, case_id) if s == 0 else None
            # every inserted lesion, tumor or not (a cyst is labelled liver)
            new = ins.mask & (lab != 2) if ins.mask is not None else np.zeros(lab.shape, bool)
            result.synthetic += lesion_statistics(
                ins.image, ins.label, sp, lesions=new, case=case_id, source="synthetic", on_lesion=hook
            )
        log.info(
            "case %s: %d real lesion(s) measured", case_id, sum(1 for x in result.real if x.case == case_id)
        )
    if not result.cases:
        raise InputError("no case of the dataset has a liver label; nothing to compare", prepared_dir)
    return result
