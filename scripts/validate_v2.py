"""Cross-validation of liver-cascade 0.2.0 through the product's own pipeline, and 0.1.0 beside it.

Step 1, ``segment``: every held-out case of every fold is segmented by that fold's cascade
(`train_plan_v2.py` runs ``s1_f{k}`` + ``s2_f{k}``) with `liverseg.inference.segment_volume` (the
`liverseg segment` path: canonical orientation, stage 1, crop, stage 2, post-processing, inverse
mapping), on the case's own grid. The lesion candidates (tumor components above a 10 mm^3 floor)
are described by `liverseg.inference.lesion_confidence.candidate_features` and marked true or
false against the expert label; label maps, component maps and features are saved per case.
``--model liver-cascade@0.1.0`` segments the same cases with a fixed model instead (0.1.0 never
saw the slice exports: they are held out for it too).

Step 2, ``score``: for fold k a lesion model is fitted on the candidates of the *other* folds
(thresholds are not tuned: a calibrated 0.5 decides), applied to fold k, and every case is scored
with `liverseg.metrics.evaluate_case`; tables are reported separately for full-quality CT and
for the slice exports. The lesion model shipped with 0.2.0 is fitted on all folds' candidates.

    python scripts/validate_v2.py segment --runs runs/v2 --out runs/v2_cv
    python scripts/validate_v2.py segment --model liver-cascade@0.1.0 --out runs/v1_cv
    python scripts/validate_v2.py score --cv runs/v2_cv --json docs/results/cv_v2.json --markdown runs/cv_v2.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
from _results import case_scores, emit, score_cells

CANDIDATE_FLOOR_MM3 = 10.0


def _fold_model(runs: Path, k: int, dest: Path) -> Path:
    """A model folder (copies of the fold's checkpoints, ONNX cached beside them)."""
    folder = dest / f"fold_{k}"
    folder.mkdir(parents=True, exist_ok=True)
    for stage, run in (("stage1.pt", f"s1_f{k}"), ("stage2.pt", f"s2_f{k}")):
        if not (folder / stage).exists():
            shutil.copy2(runs / run / "best.pt", folder / stage)
    info = {
        "name": f"cv-fold-{k}",
        "version": "cv",
        "stages": {"liver": "stage1.pt", "tumor": "stage2.pt"},
        "cpu_backend": "onnx",
        "postprocess": {"min_lesion_mm3": CANDIDATE_FLOOR_MM3, "min_lesion_confidence": 0.0},
    }
    (folder / "model.json").write_text(json.dumps(info, indent=1))
    return folder


def segment_case(model: str, image, ref, out: Path, case: str, fold: int, *, own_postprocess: bool) -> dict:
    """Segment one case, save labels/components/features, return its record.

    ``own_postprocess``: keep the model's own lesion post-processing (a fixed, shipped model);
    otherwise every candidate above the 10 mm^3 floor is kept for the lesion model.
    """
    from liverseg.inference import SegmentOptions, segment_volume
    from liverseg.inference.lesion_confidence import candidate_features

    opts = SegmentOptions(
        model=model,
        device="cpu",
        backend="onnx",
        min_lesion_mm3=None if own_postprocess else CANDIDATE_FLOOR_MM3,
        keep_probabilities=True,
    )
    t0 = time.perf_counter()
    result = segment_volume(image, opts)
    seconds = time.perf_counter() - t0
    labels = result.labels.array
    tumor_prob = (
        result.probabilities[2] if result.probabilities is not None else np.zeros(labels.shape, np.float32)
    )
    comps, cands = candidate_features(labels, tumor_prob, np.asarray(image.array), image.spacing)
    ref_tumor = np.asarray(ref.array) == 2
    hit = set(np.unique(comps[ref_tumor]).tolist()) - {0}
    np.savez_compressed(out / f"{case}.npz", labels=labels, comps=comps)
    return {
        "case": case,
        "fold": fold,
        "seconds": round(seconds, 2),
        "liver_found": result.liver_found,
        "candidates": [{"index": c.index, "real": c.index in hit, **c.features} for c in cands],
        "warnings": result.warnings,
    }


def cmd_segment(args: argparse.Namespace) -> None:
    from liverseg.data.dataset import load_dataset

    ds = load_dataset(args.dataset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folds = ds.splits.folds if ds.splits is not None else ()
    for k, (_, val) in enumerate(folds):
        model = args.model or str(_fold_model(Path(args.runs), k, out / "models"))
        for case in val:
            if args.cases and case not in args.cases:
                continue
            rec_path = out / f"{case}.json"
            if rec_path.exists():
                continue
            image, ref = ds.load_case(case)
            rec = segment_case(model, image, ref, out, case, k, own_postprocess=bool(args.model))
            rec["model"] = model
            rec_path.write_text(json.dumps(rec, indent=1))
            n_real = sum(c["real"] for c in rec["candidates"])
            print(
                f"fold {k} {case}: {rec['seconds']} s, {len(rec['candidates'])} candidates ({n_real} real)",
                flush=True,
            )


def choose_threshold(conf: np.ndarray, real: np.ndarray, n_cases: int, max_fp_per_case: float) -> float:
    """The lowest confirmation threshold (0.50, 0.55, ... 0.95) whose false candidates per case stay
    within ``max_fp_per_case`` on these (training-fold) candidates; 0.5 is the calibrated Bayes
    rule and the floor, so the threshold only ever trades recall for fewer false lesions."""
    for t in np.arange(0.5, 0.951, 0.05):
        if float(((conf >= t) & (real == 0)).sum()) / max(n_cases, 1) <= max_fp_per_case:
            return round(float(t), 2)
    return 0.95


def _apply(comps: np.ndarray, labels: np.ndarray, keep: set[int]) -> np.ndarray:
    """Labels with every tumor component not in ``keep`` relabelled liver."""
    out = labels.copy()
    drop = (comps > 0) & ~np.isin(comps, list(keep) or [-1])
    out[drop] = 1
    return out


def cmd_score(args: argparse.Namespace) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from liverseg.data.dataset import load_dataset
    from liverseg.data.slice_export import is_full_quality
    from liverseg.inference.lesion_confidence import FEATURES, LesionCandidate, LesionModel, fit_lesion_model
    from liverseg.io import read_volume
    from liverseg.metrics import evaluate_case

    if args.bayes:
        args.max_fp_per_case = None
    ds = load_dataset(args.dataset)
    cv = Path(args.cv)
    recs = {p.stem: json.loads(p.read_text()) for p in sorted(cv.glob("*.json"))}
    folds = sorted({r["fold"] for r in recs.values()})

    def xy(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        rows = [c for r in records for c in r["candidates"]]
        return (
            np.array([[c[f] for f in FEATURES] for c in rows]).reshape(-1, len(FEATURES)),
            np.array([c["real"] for c in rows], dtype=float),
        )

    def fit(records: list[dict]) -> LesionModel:
        """Lesion model and confirmation threshold from these (training-fold) records only."""
        x, y = xy(records)
        model = fit_lesion_model(x, y)
        if args.max_fp_per_case is None:
            return model
        conf = model.confidence([LesionCandidate(0, dict(zip(FEATURES, row, strict=True))) for row in x])
        threshold = choose_threshold(conf, y, len(records), args.max_fp_per_case)
        return dataclasses.replace(
            model, confirm_threshold=threshold, list_threshold=min(model.list_threshold, threshold)
        )

    models: dict[int, LesionModel | None] = {}
    for k in folds:
        models[k] = None if args.no_lesion_model else fit([r for r in recs.values() if r["fold"] != k])
        if models[k] is not None:
            print(f"fold {k}: confirmation threshold {models[k].confirm_threshold:.2f}", flush=True)
    results = {}
    for case, rec in recs.items():
        info = ds.case(case)
        ref = read_volume(ds.label_path(case), kind="label")  # the image is not needed here
        with np.load(cv / f"{case}.npz") as z:
            labels, comps = z["labels"], z["comps"]
        model = models[rec["fold"]]
        if model is not None and rec["candidates"]:
            cands = [LesionCandidate(c["index"], {f: c[f] for f in FEATURES}) for c in rec["candidates"]]
            conf = model.confidence(cands)
            keep = {c.index for c, p in zip(cands, conf, strict=True) if p >= model.confirm_threshold}
        elif args.min_mm3 is not None:
            keep = {c["index"] for c in rec["candidates"] if 10 ** c["log_volume"] >= args.min_mm3}
        else:
            keep = {c["index"] for c in rec["candidates"]}
        final = _apply(comps, labels, keep)
        res = evaluate_case(final, ref.array, ref.spacing)
        results[case] = {
            "fold": rec["fold"],
            "full_quality": is_full_quality(info.extra),
            **case_scores(res, has_tumor=bool((ref.array == 2).any())),
            "n_ref_ge10mm": (res.get("lesions") or {}).get("n_ref_measurable"),
            "seconds": rec["seconds"],
        }
        print(
            case,
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in results[case].items()},
            flush=True,
        )
    final_model = None if args.no_lesion_model else fit(list(recs.values())).to_dict()
    emit(
        {
            "cases": results,
            "lesion_models": {str(k): m.to_dict() for k, m in models.items() if m},
            "final_lesion_model": final_model,
        },
        markdown(results),
        Path(args.json) if args.json else None,
        Path(args.markdown) if args.markdown else None,
    )


def _mean(vals: list) -> str:
    v = [x for x in vals if x is not None and np.isfinite(x)]
    return f"{np.mean(v):.3f} +- {np.std(v):.3f}" if v else "-"


def markdown(results: dict[str, dict]) -> str:
    out = []
    for title, fq in (("Full-quality CT", True), ("Slice exports (clipped, JPEG)", False)):
        rows = {c: r for c, r in results.items() if r["full_quality"] == fq}
        if not rows:
            continue
        out += [
            f"**{title}** ({len(rows)} cases)",
            "",
            "| case | fold | liver Dice | liver ASSD mm | tumor Dice | lesion recall | recall >= 10 mm | FP lesions |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c, r in rows.items():
            out.append(f"| {c} | {r['fold']} | {score_cells(r)}")
        det = sum((r["lesion_recall_ge10mm"] or 0) * (r["n_ref_ge10mm"] or 0) for r in rows.values())
        n10 = sum(r["n_ref_ge10mm"] or 0 for r in rows.values())
        out.append(
            f"| mean +- std | | {_mean([r['liver_dice'] for r in rows.values()])} | "
            f"{_mean([r['liver_assd_mm'] for r in rows.values()])} | {_mean([r['tumor_dice'] for r in rows.values()])} | "
            f"{_mean([r['lesion_recall'] for r in rows.values()])} | "
            f"{(f'{det / n10:.3f} pooled ({n10} lesions)') if n10 else '-'} | "
            f"{_mean([float(r['false_positive_lesions'] or 0) for r in rows.values()])} |"
        )
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment")
    s.add_argument("--dataset", default="work_data/prepared")
    s.add_argument("--runs", default="runs/v2", help="train_plan_v2 run folder (s1_f{k}, s2_f{k})")
    s.add_argument("--model", help="segment with this model instead of the fold cascades")
    s.add_argument("--out", required=True)
    s.add_argument("--cases", nargs="*")
    s.set_defaults(func=cmd_segment)
    c = sub.add_parser("score")
    c.add_argument("--dataset", default="work_data/prepared")
    c.add_argument("--cv", required=True)
    c.add_argument("--no-lesion-model", action="store_true", help="keep every candidate (or --min-mm3)")
    c.add_argument("--min-mm3", type=float, help="without a lesion model: size floor")
    c.add_argument(
        "--max-fp-per-case",
        type=float,
        default=1.0,
        help="confirmation threshold: the lowest >= 0.5 that keeps the training folds' false lesions per "
        "case within this (default 1, the issue's target); --bayes confirms at 0.5 instead",
    )
    c.add_argument("--bayes", action="store_true", help="confirm at the calibrated 0.5, no threshold search")
    c.add_argument("--json")
    c.add_argument("--markdown")
    c.set_defaults(func=cmd_score)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
