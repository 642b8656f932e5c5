"""Evaluate a folder of predicted label maps against a folder of references.

Used by ``liverseg evaluate``. Files are matched by case name: the file name without its image
suffix (``.nii.gz``, ``.nii``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``; read with :func:`liverseg.io.read_volume`). A prepared dataset folder
(``dataset.json`` + ``labels/``, see docs/contracts.md) is accepted on either side and its
``labels/`` folder is used. Every matched pair must share one voxel grid (shape, spacing, origin,
direction): all grids are checked from the file headers before any case is evaluated, and a
mismatch is refused with a :class:`~liverseg.errors.GeometryError` naming the case(s) and both
grids -- never resampled silently. Cases present on one side only are reported, not fatal.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import GeometryError, InputError
from liverseg.io import LabelMap, read_grid, read_volume
from liverseg.io.itk_files import ITK_READ_SUFFIXES
from liverseg.metrics.evaluate import evaluate_case, flatten_case, summarize_cases
from liverseg.utils import atomic_write_text, progress

__all__ = ["EMPTY_MASK_POLICY", "EvaluationRun", "case_files", "evaluate_folders", "format_table"]

log = logging.getLogger(__name__)

SUFFIXES = ITK_READ_SUFFIXES
EMPTY_MASK_POLICY = (
    "both masks empty: Dice/Jaccard/precision/recall 1, VOE/RVD 0, surface distances 0; one mask "
    "empty: Dice 0, surface distances inf, undefined ratios (0/0) NaN; inf/NaN are written as null "
    "in JSON and left out of mean/std (counted in n_excluded)"
)


def case_name(path: Path) -> str | None:
    """Case name of a label file (name without its image suffix), or ``None`` if not an image."""
    lower = path.name.lower()
    for suffix in SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def case_files(folder: str | Path) -> dict[str, Path]:
    """Map case name -> label file of a folder (or of a prepared dataset's ``labels/``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            "expected a folder of label maps (.nii.gz/.nii/.nrrd/.mha), got no such folder", folder
        )
    if (folder / "dataset.json").is_file() and (folder / "labels").is_dir():
        folder = folder / "labels"
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = case_name(path)
        if name is None or not path.is_file() or path.name.startswith("."):
            continue
        if name in files:
            raise InputError(f"two files for case {name!r}: {files[name].name} and {path.name}", folder)
        files[name] = path
    if not files:
        raise InputError(f"no label maps ({', '.join(SUFFIXES)}) found in the folder", folder)
    return files


def _read_labels(path: Path) -> LabelMap:
    """The label map at ``path`` (uint8, values checked by :func:`liverseg.io.read_volume`)."""
    return read_volume(path, kind="label")


@dataclass
class EvaluationRun:
    """Result of :func:`evaluate_folders`: per-case results, summary and unmatched cases."""

    cases: list[dict[str, Any]]
    summary: dict[str, Any]
    missing_in_pred: list[str] = field(default_factory=list)
    missing_in_ref: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """Flat per-case rows (see :func:`liverseg.metrics.flatten_case`)."""
        return [flatten_case(c) for c in self.cases]

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict; non-finite floats become ``null`` (see :data:`EMPTY_MASK_POLICY`)."""
        return _json_safe(
            {
                "cases": self.cases,
                "summary": self.summary,
                "missing_in_pred": self.missing_in_pred,
                "missing_in_ref": self.missing_in_ref,
                "empty_mask_policy": EMPTY_MASK_POLICY,
            }
        )

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_json_dict` atomically (strict JSON, no NaN/Infinity tokens)."""
        text = json.dumps(self.to_json_dict(), indent=2, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    def write_csv(self, path: str | Path) -> Path:
        """Write one row per case (all flat metrics; inf/NaN written as ``inf``/``nan``) atomically."""
        rows = self.rows()
        fields: list[str] = []
        for row in rows:
            fields.extend(k for k in row if k not in fields)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return atomic_write_text(path, buf.getvalue())


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def evaluate_folders(pred_dir: str | Path, ref_dir: str | Path, *, surface: bool = True) -> EvaluationRun:
    """Evaluate every case present in both folders (see the module docstring).

    Raises:
        InputError: a folder is missing/empty, a file is unreadable or not a 0/1/2 label map,
            or no case name is shared by the two folders.
        GeometryError: a prediction's grid differs from its reference's (all such cases named).
    """
    preds, refs = case_files(pred_dir), case_files(ref_dir)
    matched = sorted(set(preds) & set(refs))
    missing_in_pred = sorted(set(refs) - set(preds))
    missing_in_ref = sorted(set(preds) - set(refs))
    if missing_in_pred:
        log.warning(
            "%d reference case(s) have no prediction: %s", len(missing_in_pred), ", ".join(missing_in_pred)
        )
    if missing_in_ref:
        log.warning("%d prediction(s) have no reference: %s", len(missing_in_ref), ", ".join(missing_in_ref))
    if not matched:
        raise InputError(
            f"no case name is shared by the predictions ({', '.join(sorted(preds)[:5])}, ...) "
            f"and the references ({', '.join(sorted(refs)[:5])}, ...)",
            pred_dir,
        )
    mismatches = []
    for name in matched:
        g_pred, g_ref = read_grid(preds[name]), read_grid(refs[name])  # headers only
        if not g_pred.same_as(g_ref):
            mismatches.append(
                f"case {name!r}: prediction {g_pred.describe()} vs reference {g_ref.describe()}"
            )
    if mismatches:
        raise GeometryError(
            "prediction and reference grids differ (resample the prediction onto the "
            "reference grid first): " + "; ".join(mismatches)
        )
    cases: list[dict[str, Any]] = []
    for name in progress(matched, desc="evaluate", total=len(matched)):
        pred, ref = _read_labels(preds[name]), _read_labels(refs[name])
        result = evaluate_case(pred.array, ref.array, ref.spacing, surface=surface)
        cases.append({"case": name, **result})
        log.debug(
            "%s: liver Dice %.4f, tumor Dice %.4f", name, result["liver"]["dice"], result["tumor"]["dice"]
        )
    return EvaluationRun(cases, summarize_cases(cases), missing_in_pred, missing_in_ref)


TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("liver_dice", "liver Dice", "{:.4f}"),
    ("liver_assd", "liver ASSD", "{:.2f}"),
    ("liver_hd95", "liver HD95", "{:.2f}"),
    ("tumor_dice", "tumor Dice", "{:.4f}"),
    ("tumor_assd", "tumor ASSD", "{:.2f}"),
    ("tumor_hd95", "tumor HD95", "{:.2f}"),
    ("lesion_recall", "lesion recall", "{:.3f}"),
    ("lesion_n_false_positive", "FP lesions", "{:.0f}"),
)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return fmt.format(value)


def format_table(run: EvaluationRun) -> str:
    """Plain-text table: one row per case, then mean +- std, exclusions and the global Dice."""
    header = ["case", *(title for _, title, _ in TABLE_COLUMNS)]
    body = [[row["case"], *(_cell(row.get(k), f) for k, _, f in TABLE_COLUMNS)] for row in run.rows()]
    metrics = run.summary["metrics"]
    mean_row, excl_row = ["mean +- std"], ["n excluded"]
    for key, _, fmt in TABLE_COLUMNS:
        s = metrics.get(key)
        if s is None:
            mean_row.append("-")
            excl_row.append("-")
            continue
        std = "" if math.isnan(s["std"]) else f" +- {_cell(s['std'], fmt)}"
        mean_row.append(_cell(s["mean"], fmt) + std)
        excl_row.append(str(s["n_excluded"]))
    table = [header, *body, mean_row, excl_row]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in table
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(body) + 2, "-" * len(lines[0]))
    gd = run.summary["global_dice"]
    lines.append(
        f"global Dice: liver {_cell(gd['liver'], '{:.4f}')}, tumor {_cell(gd['tumor'], '{:.4f}')} "
        f"({run.summary['n_cases']} cases)"
    )
    det = run.summary.get("lesion_detection") or {}
    if det:
        lines.append(
            f"lesions: {det['n_detected']}/{det['n_ref']} detected (recall {_cell(det['recall'], '{:.3f}')}; "
            f">= 10 mm {_cell(det['recall_measurable'], '{:.3f}')}, < 10 mm {_cell(det['recall_small'], '{:.3f}')}), "
            f"precision {_cell(det['precision'], '{:.3f}')}, {det['n_false_positive']} false positive(s)"
        )
    if run.missing_in_pred:
        lines.append(f"missing predictions ({len(run.missing_in_pred)}): {', '.join(run.missing_in_pred)}")
    if run.missing_in_ref:
        lines.append(
            f"predictions without reference ({len(run.missing_in_ref)}): {', '.join(run.missing_in_ref)}"
        )
    return "\n".join(lines)
