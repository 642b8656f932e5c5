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
import json
import tempfile
from pathlib import Path

import numpy as np
from _results import fmt


def _stage(runs: Path, stage: str, case: str) -> Path:
    own = runs / f"{stage}_lopo_{case}" / "best.pt"
    return own if own.exists() else runs / f"{stage}_final" / "best.pt"


def validate(dataset: Path, runs: Path, cases: list[str] | None, *, overrides: dict[str, Path]) -> dict[str, dict]:
    from liverseg.data.dataset import load_dataset
    from liverseg.inference import SegmentOptions, run_segment
    from liverseg.io import read_volume
    from liverseg.metrics import evaluate_case

    ds = load_dataset(dataset)
    out: dict[str, dict] = {}
    for case in cases or list(ds.case_ids):
        s2 = overrides.get(f"s2:{case}", runs / f"s2_lopo_{case}" / "best.pt")
        if not s2.exists():
            continue
        s1 = overrides.get(f"s1:{case}", _stage(runs, "s1", case))
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = Path(tmp) / "model"
            model_dir.mkdir()
            (model_dir / "stage1.pt").symlink_to(s1.resolve())
            (model_dir / "stage2.pt").symlink_to(s2.resolve())
            pred_path = Path(tmp) / "pred.nii.gz"
            report = run_segment(ds.image_path(case), pred_path, options=SegmentOptions(model=str(model_dir), device="cpu"))
            pred = read_volume(pred_path, kind="label")
        ref = read_volume(ds.label_path(case), kind="label")
        res = evaluate_case(pred.array, ref.array, ref.spacing)
        out[case] = {
            "stage1": str(s1.parent.name), "stage2": str(s2.parent.name),
            "liver_dice": res["liver"]["dice"], "liver_assd_mm": res["liver"].get("assd"),
            "tumor_dice": res["tumor"]["dice"] if ref.array.max() == 2 else None,
            "lesion_recall": (res.get("lesions") or {}).get("recall") if ref.array.max() == 2 else None,
            "lesion_recall_ge10mm": (res.get("lesions") or {}).get("recall_measurable") if ref.array.max() == 2 else None,
            "false_positive_lesions": (res.get("lesions") or {}).get("n_false_positive"),
            "ref_lesions": (res.get("lesions") or {}).get("n_ref"),
            "runtime_s": report["timings_s"].get("total"),
        }
        print(case, {k: v for k, v in out[case].items() if k not in ("stage1", "stage2")}, flush=True)
    return out


def markdown(results: dict[str, dict]) -> str:
    rows = ["| held-out case | liver Dice | liver ASSD mm | tumor Dice | lesion recall | recall >= 10 mm | FP lesions |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for case, r in results.items():
        rows.append(f"| {case} | {fmt(r['liver_dice'])} | {fmt(r['liver_assd_mm'], 2)} | {fmt(r['tumor_dice'])} | "
                    f"{fmt(r['lesion_recall'])} | {fmt(r['lesion_recall_ge10mm'])} | {fmt(r['false_positive_lesions'])} |")
    ld = [r["liver_dice"] for r in results.values()]
    td = [r["tumor_dice"] for r in results.values() if r["tumor_dice"] is not None]
    rows.append(f"| mean +- std | {np.mean(ld):.3f} +- {np.std(ld):.3f} | | "
                f"{(f'{np.mean(td):.3f} +- {np.std(td):.3f}') if td else '-'} | | | |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, default=Path("work_data/prepared"))
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--cases", nargs="*")
    p.add_argument("--override", nargs="*", default=[], help="s1:CASE=ckpt or s2:CASE=ckpt")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()
    overrides = {k: Path(v) for k, v in (o.split("=", 1) for o in args.override)}
    results = validate(args.dataset, args.runs, args.cases, overrides=overrides)
    table = markdown(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
