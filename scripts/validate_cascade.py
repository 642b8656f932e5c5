"""Leave-one-patient-out validation of the cascade with the real `liverseg segment` pipeline.

For every held-out case, the stage checkpoints trained without that patient segment the case's
prepared CT on its original grid; the result is scored against the expert label with
`liverseg.metrics.evaluate_case` (liver Dice, ASSD, tumor Dice, lesion detection).

    python scripts/validate_cascade.py --dataset work_data/prepared --runs runs/gpu1/runs/plan \
        --json runs/lopo.json --markdown runs/lopo.md

Fold layout in --runs: s1_lopo_<case>/best.pt and s2_lopo_<case>/best.pt; a case without its own
stage-1 fold (the LiTS-117 liver crop, never used for stage 1) uses s1_final.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import case_scores, emit, fmt, score_cells

DEFAULT_MIN_MM3 = 10.0  # size floor of the main table (the shipped model's own default is in its model.json)


def _stage(runs: Path, stage: str, case: str) -> Path:
    own = runs / f"{stage}_lopo_{case}" / "best.pt"
    return own if own.exists() else runs / f"{stage}_final" / "best.pt"


def validate(
    dataset: Path,
    runs: Path,
    cases: list[str] | None,
    *,
    overrides: dict[str, Path],
    sweep: list[tuple[float, float]],
    min_confidence: float = 0.0,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Segment every held-out case with its own fold's cascade; score it.

    Returns ``(results, sweep_results)``: per case the scores with the product's post-processing
    (``--min-lesion-mm3`` default and the model's ``min_confidence`` object filter), and per case and (min_lesion_mm3, min_confidence) the lesion scores.
    """
    from liverseg.data.dataset import load_dataset
    from liverseg.inference import SegmentOptions, segment_volume
    from liverseg.inference.postprocess import filter_lesions_by_confidence, remove_small_lesions
    from liverseg.metrics import evaluate_case, lesion_detection

    ds = load_dataset(dataset)
    out: dict[str, dict] = {}
    swept: dict[str, dict] = {}
    for case in cases or list(ds.case_ids):
        s2 = overrides.get(f"s2:{case}", runs / f"s2_lopo_{case}" / "best.pt")
        if not s2.exists():
            continue
        s1 = overrides.get(f"s1:{case}", _stage(runs, "s1", case))
        image, ref = ds.load_case(case)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            model_dir.mkdir()
            (model_dir / "stage1.pt").symlink_to(s1.resolve())
            (model_dir / "stage2.pt").symlink_to(s2.resolve())
            opts = SegmentOptions(
                model=str(model_dir), device="cpu", min_lesion_mm3=0.0, keep_probabilities=True
            )
            t0 = time.perf_counter()
            result = segment_volume(image, opts)
            seconds = time.perf_counter() - t0
        raw = result.labels.array
        tumor_prob = (
            result.probabilities[2] if result.probabilities is not None else np.zeros(raw.shape, np.float32)
        )
        has_tumor = bool((ref.array == 2).any())
        swept[case] = {}
        for min_mm3, conf in sweep:
            lab = remove_small_lesions(raw, ref.spacing, min_mm3)
            lab = filter_lesions_by_confidence(lab, tumor_prob, conf)
            det = lesion_detection(lab == 2, ref.array == 2, ref.spacing)
            swept[case][f"{min_mm3:g}mm3_p{conf:g}"] = {
                "recall": det.get("recall") if has_tumor else None,
                "false_positive_lesions": det.get("n_false_positive"),
            }
        final = filter_lesions_by_confidence(
            remove_small_lesions(raw, ref.spacing, DEFAULT_MIN_MM3), tumor_prob, min_confidence
        )
        res = evaluate_case(final, ref.array, ref.spacing)
        out[case] = {
            "stage1": str(s1.parent.name),
            "stage2": str(s2.parent.name),
            **case_scores(res, has_tumor),
            "seconds": seconds,
        }
        print(case, {k: v for k, v in out[case].items() if k not in ("stage1", "stage2")}, flush=True)
    return out, swept


def sweep_markdown(swept: dict[str, dict]) -> str:
    """Mean lesion recall (tumor cases) and false positives per case, per post-processing setting."""
    keys = sorted({k for v in swept.values() for k in v}, key=lambda k: (float(k.split("mm3")[0]), k))
    rows = [
        "| min lesion mm3, min mean tumor probability | mean lesion recall | mean FP lesions per case |",
        "|---|---:|---:|",
    ]
    for key in keys:
        rec = [v[key]["recall"] for v in swept.values() if v[key]["recall"] is not None]
        fp = [v[key]["false_positive_lesions"] for v in swept.values()]
        rows.append(f"| {key} | {fmt(float(np.mean(rec))) if rec else '-'} | {fmt(float(np.mean(fp)), 1)} |")
    return "\n".join(rows)


def markdown(results: dict[str, dict]) -> str:
    rows = [
        "| held-out case | liver Dice | liver ASSD mm | tumor Dice | lesion recall | recall >= 10 mm | FP lesions |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case, r in results.items():
        rows.append(f"| {case} | {score_cells(r)}")
    ld = [r["liver_dice"] for r in results.values()]
    td = [r["tumor_dice"] for r in results.values() if r["tumor_dice"] is not None]
    rows.append(
        f"| mean +- std | {np.mean(ld):.3f} +- {np.std(ld):.3f} | | "
        f"{(f'{np.mean(td):.3f} +- {np.std(td):.3f}') if td else '-'} | | | |"
    )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=Path("work_data/prepared"))
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--cases", nargs="*")
    p.add_argument("--override", nargs="*", default=[], help="s1:CASE=ckpt or s2:CASE=ckpt")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    p.add_argument("--min-confidence", type=float, default=0.0, help="the model's lesion confidence filter")
    p.add_argument("--sweep-min-mm3", nargs="*", type=float, default=[10, 50, 100, 200])
    p.add_argument("--sweep-confidence", nargs="*", type=float, default=[0.0, 0.6, 0.7, 0.8])
    args = p.parse_args()
    overrides = {k: Path(v) for k, v in (o.split("=", 1) for o in args.override)}
    sweep = [(m, c) for m in args.sweep_min_mm3 for c in args.sweep_confidence]
    results, swept = validate(
        args.dataset,
        args.runs,
        args.cases,
        overrides=overrides,
        sweep=sweep,
        min_confidence=args.min_confidence,
    )
    emit(
        {"cases": results, "postprocess_sweep": swept},
        markdown(results) + "\n\n" + sweep_markdown(swept),
        args.json,
        args.markdown,
    )


if __name__ == "__main__":
    main()
