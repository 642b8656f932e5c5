"""Evaluate the synthetic-lesion experiment runs of `scripts/train_plan.py` on held-out real cases.

Each held-out case is predicted on the tumor-stage grid inside its reference liver box (+ the
stage margin), i.e. with a perfect stage 1, and post-processed as `liverseg segment` does
(largest liver component, hole filling, lesions < 10 mm^3 removed). Scores per case: tumor Dice,
lesion recall (all, and lesions with longest axial diameter >= 10 mm), false-positive lesions;
on tumor-free livers the number of predicted lesions.

    python scripts/eval_tumor_experiment.py --runs runs/plan --json results.json --markdown table.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _results import emit, fmt

TUMOR_CASES = ("ircadb_01", "ircadb_17", "lits_117")
HEALTHY = ("chaos_03", "ircadb_07")
ARMS = {
    "real labels + synthetic lesions": lambda case: f"s2_lopo_{case}",
    "real labels only": lambda case: f"exp_real_{case}",
    "synthetic lesions only": lambda case: (
        "exp_synonly_all" if case in TUMOR_CASES else f"exp_synonly_{case}"
    ),
}


def _checkpoint(run: Path) -> Path | None:
    for name in ("best.pt", "last.pt"):
        if (run / name).exists():
            return run / name
    return None


def evaluate_run(run: Path, case_id: str, device: str) -> dict:
    import torch

    from liverseg.inference.postprocess import postprocess_labels
    from liverseg.metrics import dice, lesion_detection
    from liverseg.training.cache import build_or_open_cache
    from liverseg.training.checkpoint import load_checkpoint
    from liverseg.training.config_io import load_config
    from liverseg.training.evaluation import predict_probabilities, validation_region

    ckpt = _checkpoint(run)
    if ckpt is None:
        return {"error": f"no checkpoint in {run}"}
    config = load_config(run / "config.yaml")
    loaded = load_checkpoint(ckpt, device=device)
    spec = loaded.spec
    margin = spec.crop_margin_mm + config.sampling.margin_jitter_mm
    cache = build_or_open_cache(config.data.dir, config.data.cache_dir, spec, margin_mm=margin)
    case = cache.case(case_id)
    region = validation_region(case, spec)
    probs = predict_probabilities(loaded.model, case.image[region], spec, device=torch.device(device))
    pred = postprocess_labels(probs.argmax(0).astype(np.uint8), case.spacing_zyx, min_lesion_mm3=10.0)
    ref = case.label[region]
    det = lesion_detection(pred == 2, ref == 2, case.spacing_zyx)
    out = {
        "run": run.name,
        "steps": int(loaded.meta.get("epoch", -1)) + 1,
        "tumor_dice": float(dice(pred == 2, ref == 2)) if (ref == 2).any() else None,
        "liver_dice": float(dice(pred >= 1, ref >= 1)),
        "n_ref_lesions": det.get("n_ref"),
        "n_pred_lesions": det.get("n_pred"),
        "recall": det.get("recall"),
        "recall_ge10mm": det.get("recall_measurable"),
        "false_positive_lesions": det.get("n_false_positive"),
    }
    return out


def markdown(results: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| arm | case | tumor Dice | lesion recall | recall >= 10 mm | FP lesions | liver Dice |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for arm, cases in results.items():
        for case, r in cases.items():
            if "error" in r:
                lines.append(f"| {arm} | {case} | {r['error']} | | | | |")
                continue
            lines.append(
                f"| {arm} | {case} | {fmt(r['tumor_dice'])} | {fmt(r['recall'])} | "
                f"{fmt(r['recall_ge10mm'])} | {fmt(r['false_positive_lesions'])} | {fmt(r['liver_dice'])} |"
            )
    lines.append("")
    lines.append(
        "| arm | mean tumor Dice (tumor cases) | mean lesion recall | mean FP lesions / tumor-free liver |"
    )
    lines.append("|---|---:|---:|---:|")
    for arm, cases in results.items():
        td = [
            r["tumor_dice"] for c, r in cases.items() if c in TUMOR_CASES and r.get("tumor_dice") is not None
        ]
        rc = [r["recall"] for c, r in cases.items() if c in TUMOR_CASES and r.get("recall") is not None]
        fp = [
            r["n_pred_lesions"]
            for c, r in cases.items()
            if c in HEALTHY and r.get("n_pred_lesions") is not None
        ]
        mean = lambda xs: f"{np.mean(xs):.3f}" if xs else "-"  # noqa: E731
        lines.append(f"| {arm} | {mean(td)} | {mean(rc)} | {mean(fp)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs/plan"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()
    results: dict[str, dict[str, dict]] = {}
    for arm, name_of in ARMS.items():
        results[arm] = {}
        for case in (*TUMOR_CASES, *HEALTHY):
            run = args.runs / name_of(case)
            try:
                results[arm][case] = (
                    evaluate_run(run, case, args.device) if run.exists() else {"error": "not run"}
                )
            except Exception as exc:  # one broken run must not hide the others
                results[arm][case] = {"error": f"{type(exc).__name__}: {exc}"}
    emit(results, markdown(results), args.json, args.markdown)


if __name__ == "__main__":
    main()
