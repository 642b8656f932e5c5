"""``liverseg compare``: train several networks on the same patient-level folds under the same
wall-clock budget, evaluate every held-out case at full resolution on its original grid, and write
the comparison table (Markdown, CSV, bar chart) plus one row per case.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liverseg.data.dataset import load_dataset
from liverseg.errors import ConfigError
from liverseg.metrics import evaluate_case
from liverseg.models.info import model_info
from liverseg.training.checkpoint import load_checkpoint
from liverseg.training.config import TrainConfig
from liverseg.training.config_io import load_config
from liverseg.training.experiments import bar_chart, mean_std, variant, write_csv, write_markdown
from liverseg.training.folds import leave_one_patient_out
from liverseg.training.fullres import predict_case
from liverseg.training.runtime import resolve_device
from liverseg.training.trainer import train
from liverseg.utils import atomic_write_text

__all__ = ["compare"]

log = logging.getLogger(__name__)
_CASE_METRICS = ("liver_dice", "tumor_dice", "liver_voe", "tumor_voe", "liver_assd", "tumor_assd")
SUMMARY_COLUMNS = (
    "network",
    "model",
    "stage",
    "params_M",
    "gflops",
    "train_steps",
    "train_ms_per_step",
    "train_s_per_epoch",
    "infer_ms_per_slice",
    "liver_dice",
    "tumor_dice",
    "liver_voe",
    "tumor_voe",
    "liver_assd_mm",
    "tumor_assd_mm",
    "cases",
)


def _folds(dataset: Any) -> list[tuple[list[str], list[str]]]:
    if dataset.splits is not None and dataset.splits.folds:
        return [(list(tr), list(va)) for tr, va in dataset.splits.folds]
    return leave_one_patient_out({c.id: c.patient_id for c in dataset.cases}, dataset.test_ids)


def _evaluate_fold(
    config: TrainConfig, run_dir: Path, dataset: Any, val_ids: Sequence[str], name: str, fold: int
) -> list[dict[str, Any]]:
    device = resolve_device(config.train)
    loaded = load_checkpoint(run_dir / "best.pt", device=device)
    rows = []
    for cid in val_ids:
        image, ref = dataset.load_case(cid)
        pred, timing = predict_case(
            loaded, image, reference=ref, device=device, batch_size=config.train.val_batch_size
        )
        res = evaluate_case(pred, np.asarray(ref.array), ref.spacing, lesions=False)
        row = {"network": name, "fold": fold, "case": cid, "ms_per_slice": timing["ms_per_slice"]}
        for cls in ("liver", "tumor"):
            for metric in ("dice", "voe", "assd"):
                row[f"{cls}_{metric}"] = float(res[cls][metric])
        if loaded.spec.out_channels < 3:  # a liver-only model says nothing about tumors
            row.update(tumor_dice=float("nan"), tumor_voe=float("nan"), tumor_assd=float("nan"))
        rows.append(row)
        del image, ref
    del loaded
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def _summary_row(
    name: str, config: TrainConfig, summaries: list[dict[str, Any]], cases: list[dict[str, Any]]
) -> dict[str, Any]:
    spec = config.spec
    info = model_info(
        config.model.name,
        spec.in_channels,
        config.sampling.size,
        out_channels=spec.out_channels,
        **dict(config.model.kwargs),
    )
    row: dict[str, Any] = {
        "network": name,
        "model": config.model.name,
        "stage": spec.stage,
        "params_M": info["params"] / 1e6,
        "gflops": info["gflops"],
        "cases": len(cases),
    }
    for col, key in (
        ("train_steps", "steps"),
        ("train_ms_per_step", "ms_per_step"),
        ("train_s_per_epoch", "seconds_per_epoch"),
    ):
        values = [s[key] for s in summaries if s.get(key)]
        row[col] = float(np.mean(values)) if values else float("nan")
    row["infer_ms_per_slice"] = mean_std([c["ms_per_slice"] for c in cases])[0]
    for key in _CASE_METRICS:
        m, s, _, excl = mean_std([c[key] for c in cases])
        col = key + ("_mm" if key.endswith("assd") else "")
        if np.isnan(m):
            row[col] = "-"
        else:
            row[col] = f"{m:.3f} ± {s:.3f}" + (f" ({excl} excl.)" if excl else "")
        row[f"{key}_mean"], row[f"{key}_std"] = m, s
    return row


def compare(
    config_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    folds: int | None = None,
    budget_minutes: float | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Train and evaluate each config on the same folds; returns ``{"summary": rows, "cases": rows}``.

    Args:
        config_paths: stage configs (one network each; ``name`` labels the row).
        folds: use the first ``folds`` folds (default all: dataset.json splits, else
            leave-one-patient-out).
        budget_minutes: wall-clock budget of every training run (overrides the configs').

    Raises:
        ConfigError: configs on different datasets, no prepared dataset, a fold count out of range.
    """

    out_dir = Path(out_dir)
    configs = [load_config(p, overrides) for p in config_paths]
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        names = [f"{c.name}_{i}" for i, c in enumerate(configs)]
    dirs = {str(Path(c.data.dir).resolve()) if c.data.dir else None for c in configs}
    if len(dirs) != 1 or None in dirs:
        raise ConfigError(
            f"data.dir: every compared config must use the same prepared dataset, got {sorted(map(str, dirs))}"
        )
    dataset = load_dataset(configs[0].data.dir)  # type: ignore[arg-type]
    all_folds = _folds(dataset)
    k = len(all_folds) if folds is None else folds
    if not 1 <= k <= len(all_folds):
        raise ConfigError(f"--folds: expected 1..{len(all_folds)} (the dataset's folds), got {folds}")
    summary_rows, case_rows, runs = [], [], {}
    for name, config in zip(names, configs, strict=True):
        sets = [f"name={name}"] + ([f"train.budget_minutes={budget_minutes}"] if budget_minutes else [])
        summaries, cases = [], []
        for fold in range(k):
            train_ids, val_ids = all_folds[fold]
            cfg = variant(
                config,
                [
                    *sets,
                    "data.fold=null",
                    f"data.train_ids={json.dumps(train_ids)}",
                    f"data.val_ids={json.dumps(val_ids)}",
                ],
            )
            run_dir = out_dir / name / f"fold{fold}"
            log.info(
                "compare: %s fold %d/%d (%d train, %d held out)",
                name,
                fold + 1,
                k,
                len(train_ids),
                len(val_ids),
            )

            summaries.append(train(cfg, run_dir))
            cases.extend(_evaluate_fold(cfg, run_dir, dataset, val_ids, name, fold))
        runs[name] = summaries
        summary_rows.append(_summary_row(name, config, summaries, cases))
        case_rows.extend(cases)
    _write(out_dir, summary_rows, case_rows, k, budget_minutes)
    atomic_write_text(
        out_dir / "compare.json",
        json.dumps({"summary": summary_rows, "cases": case_rows, "runs": runs}, indent=2, default=str) + "\n",
    )
    return {"summary": summary_rows, "cases": case_rows}


def _write(
    out_dir: Path, summary: list[dict[str, Any]], cases: list[dict[str, Any]], k: int, budget: float | None
) -> None:
    notes = [
        f"{k} patient-level fold(s); every held-out case evaluated at full resolution on its original grid; "
        "mean ± std over cases (non-finite values, e.g. ASSD to an empty mask, excluded and counted).",
        f"Wall-clock budget per training run: {budget} min." if budget else "Budget: each config's own.",
        "GFLOPs: one forward pass of one slice at the config's sampling.size; tumor-stage rows use the "
        "reference liver box (oracle stage 1).",
    ]
    write_markdown(out_dir / "compare.md", "Network comparison", summary, SUMMARY_COLUMNS, notes)
    numeric = (
        [c for c in summary[0] if c not in SUMMARY_COLUMNS or c in ("params_M", "gflops")] if summary else []
    )
    write_csv(
        out_dir / "compare.csv",
        summary,
        [
            "network",
            "model",
            "stage",
            "cases",
            "train_steps",
            "train_ms_per_step",
            "train_s_per_epoch",
            "infer_ms_per_slice",
            *numeric,
        ],
    )
    write_csv(
        out_dir / "compare_cases.csv", cases, ["network", "fold", "case", *_CASE_METRICS, "ms_per_slice"]
    )
    write_markdown(
        out_dir / "compare_cases.md",
        "Per-case results",
        cases,
        ["network", "fold", "case", *_CASE_METRICS, "ms_per_slice"],
    )
    bar_chart(
        out_dir / "compare.png",
        [r["network"] for r in summary],
        {
            "liver Dice": ([r["liver_dice_mean"] for r in summary], [r["liver_dice_std"] for r in summary]),
            "tumor Dice": ([r["tumor_dice_mean"] for r in summary], [r["tumor_dice_std"] for r in summary]),
        },
        ylabel="Dice per case (mean ± std)",
        title="Network comparison (held-out cases)",
    )
