"""Per-case statistics of a prepared case and the ``liverseg data stats`` table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cc3d
import numpy as np

from liverseg.io.labels import check_label_map

if TYPE_CHECKING:
    from liverseg.data.dataset import CaseInfo, PreparedDataset
    from liverseg.io import Volume

__all__ = ["case_statistics", "count_tumor_components", "hu_range", "stats_table"]

LIVER, TUMOR = 1, 2


def hu_range(image: np.ndarray) -> dict[str, float]:
    """Intensity range of a CT array (HU): ``{"p0.5", "p99.5", "min", "max"}``, rounded to 0.01."""
    arr = np.asarray(image)
    p_lo, p_hi = np.percentile(arr, [0.5, 99.5])
    return {
        "p0.5": round(float(p_lo), 2),
        "p99.5": round(float(p_hi), 2),
        "min": round(float(arr.min()), 2),
        "max": round(float(arr.max()), 2),
    }


def count_tumor_components(label: np.ndarray) -> int:
    """Number of 26-connected components of the tumor label (2) in a ``(z, y, x)`` label array."""
    mask = np.ascontiguousarray(label == TUMOR, dtype=np.uint8)
    if not mask.any():
        return 0
    _, n = cc3d.connected_components(mask, connectivity=26, return_N=True)
    return int(n)


def case_statistics(image: Volume, label: Volume) -> dict[str, Any]:
    """Geometry, HU range and label volumes of one case.

    Args:
        image: CT in HU, array ``(z, y, x)``.
        label: uint8 0/1/2 on the image's grid.

    Returns:
        ``shape_zyx``, ``spacing_zyx_mm``, ``hu_range`` (see :func:`hu_range`), ``liver_volume_ml``
        (labels 1 and 2: the whole liver, tumors included), ``tumor_volume_ml`` (label 2) and
        ``tumor_components`` (26-connectivity).
    """
    image.require_same_grid(label, what="label")
    lab = check_label_map(label).array
    voxel_ml = image.voxel_volume_ml
    return {
        "shape_zyx": list(image.shape),
        "spacing_zyx_mm": [round(float(s), 6) for s in image.spacing],
        "hu_range": hu_range(image.array),
        "liver_volume_ml": round(float(np.count_nonzero(lab >= LIVER)) * voxel_ml, 6),
        "tumor_volume_ml": round(float(np.count_nonzero(lab == TUMOR)) * voxel_ml, 6),
        "tumor_components": count_tumor_components(lab),
    }


def _row(c: CaseInfo) -> list[str]:
    hu = c.hu_range
    return [
        c.id,
        c.patient_id,
        "x".join(str(s) for s in c.shape_zyx),
        " x ".join(f"{s:.3g}" for s in c.spacing_zyx_mm),
        f"{c.liver_volume_ml:.1f}",
        f"{c.tumor_volume_ml:.1f}",
        str(c.tumor_components),
        f"{hu.get('p0.5', float('nan')):.0f}..{hu.get('p99.5', float('nan')):.0f}",
        f"{hu.get('min', float('nan')):.0f}..{hu.get('max', float('nan')):.0f}",
    ]


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header, *rows]):
        lines.append(
            "  ".join(
                str(v).ljust(w) if i < 2 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def stats_table(dataset: PreparedDataset) -> str:
    """A plain-text table, one row per case plus totals (what ``liverseg data stats`` prints).

    Columns: case id, patient, shape ``z x y x x``, spacing mm ``(z, y, x)``, liver ml (whole
    liver), tumor ml, tumor components, HU p0.5..p99.5, HU min..max.
    """
    header = [
        "case",
        "patient",
        "shape_zyx",
        "spacing_zyx_mm",
        "liver_ml",
        "tumor_ml",
        "tumors",
        "HU_p0.5..p99.5",
        "HU_min..max",
    ]
    cases = list(dataset.cases)
    rows = [_row(c) for c in cases]
    n_tumor = sum(c.has_tumor for c in cases)
    rows.append(
        [
            f"total: {len(cases)} cases",
            f"{len(dataset.patients)} patients",
            f"{sum(int(np.prod(c.shape_zyx)) for c in cases) / 1e6:.1f} Mvox",
            "",
            f"{sum(c.liver_volume_ml for c in cases):.1f}",
            f"{sum(c.tumor_volume_ml for c in cases):.1f}",
            str(sum(c.tumor_components for c in cases)),
            f"{n_tumor} with tumor",
            "",
        ]
    )
    text = _render(header, rows)
    foot = [f"dataset {dataset.name}: fingerprint {dataset.fingerprint[:16]}"]
    if dataset.splits is not None:
        s = dataset.splits
        foot.append(
            f"splits: {len(s.folds)} folds ({s.method}, seed {s.seed}), test: {', '.join(s.test) or '-'}"
        )
    return text + "\n" + "\n".join(foot)
