"""Ablation table of liver-cascade 0.2.0 (docs/experiments.md) from the GPU run's summaries.

The ablation runs of `train_plan_v2.py` report the training loop's validation on their fold's
held-out cases (per-case Dice on the stage-2 grid inside the reference liver box: a proxy). This
script scores the release recipe's own fold checkpoints (`s2_f{k}/best.pt`) with the same
function on the same cases, so every arm is compared on identical cases, and prints the table
(mean over cases, split into full-quality CT and slice exports, with the training steps each
arm reached: the arms shared one GPU and 16 CPU cores, and did not get equal steps).

    python scripts/ablation_table.py --runs runs/v2 --ablations runs/v2/gpu_ablations.json \
        --cache-dir work_data/cache --dataset work_data/prepared --json docs/results/ablations_v2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _results import emit, fmt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ARMS = {
    "release": "release recipe (exports, synthetic lesions p 0.1, window -40..160 HU, 16 features)",
    "noexp": "without the slice exports (full-quality cases only)",
    "nosyn": "without synthetic lesions",
    "wide": "0.1.0's window W400/L50 instead of -40..160 HU",
    "big": "32 instead of 16 base features",
}


def main() -> None:
    import torch

    from liverseg.data.dataset import load_dataset
    from liverseg.data.slice_export import is_full_quality
    from liverseg.training.cache import build_or_open_cache
    from liverseg.training.checkpoint import load_checkpoint
    from liverseg.training.evaluation import validate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs/v2"))
    p.add_argument("--ablations", type=Path, default=Path("runs/v2/gpu_ablations.json"))
    p.add_argument("--dataset", default="work_data/prepared")
    p.add_argument("--cache-dir", default="work_data/cache")
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args()
    abl = {k: v for k, v in json.loads(args.ablations.read_text()).items() if k != "logcsv"}
    ds = load_dataset(args.dataset, check_files=False)
    fq = {c.id: is_full_quality(c.extra) for c in ds.cases}
    rows: dict[str, dict] = {}
    for name, summary in abl.items():
        _, arm, fold = name.split("_")
        rows[name] = {
            "arm": arm,
            "fold": int(fold[1:]),
            "steps": summary["steps"],
            "per_case": summary["best_per_case"],
        }
    folds = sorted({r["fold"] for r in rows.values()})
    gpu_results = json.loads((args.runs.parent / "v2" / "gpu_results.json").read_text())
    for k in folds:
        loaded = load_checkpoint(args.runs / f"s2_f{k}" / "best.pt", device="cpu")
        spec = loaded.spec
        cache = build_or_open_cache(args.dataset, args.cache_dir, spec, margin_mm=spec.crop_margin_mm + 10.0)
        val = [c for c in ds.splits.folds[k][1] if c in cache.case_ids]
        with torch.no_grad():
            res = validate(
                loaded.model.eval(),
                [cache.case(c) for c in val],
                spec,
                device=torch.device("cpu"),
                batch_size=8,
            )
        summ = gpu_results.get(f"s2_f{k}", {})
        steps = (summ.get("summary") or {}).get("steps")
        rows[f"abl_release_f{k}"] = {"arm": "release", "fold": k, "steps": steps, "per_case": res["per_case"]}
        print(
            f"fold {k}: release {res['dice_liver']:.3f} / {res.get('dice_tumor', float('nan')):.3f}",
            flush=True,
        )
    # paired: each arm against the release recipe on exactly the arm's own held-out cases
    table = [
        "| arm | folds | steps (arm vs release) | cases FQ + exports | liver Dice arm / release | tumor Dice arm / release |",
        "|---|---|---|---|---|---|",
    ]
    out: dict[str, dict] = {}
    release = {r["fold"]: r for r in rows.values() if r["arm"] == "release"}
    for arm, label in ARMS.items():
        rs = sorted((r for r in rows.values() if r["arm"] == arm), key=lambda r: r["fold"])
        if not rs or arm == "release":
            continue
        pairs: dict[str, list[tuple[float, float]]] = {m: [] for m in ("dice_liver", "dice_tumor")}
        n_fq = n_ex = 0
        for r in rs:
            for case, v in r["per_case"].items():
                ref = release[r["fold"]]["per_case"].get(case, {})
                n_fq, n_ex = n_fq + fq[case], n_ex + (not fq[case])
                for m, ps in pairs.items():
                    if m in v and m in ref and np.isfinite(v[m]) and np.isfinite(ref[m]):
                        ps.append((v[m], ref[m]))
        means = {
            m: (float(np.mean([a for a, _ in ps])), float(np.mean([b for _, b in ps])))
            for m, ps in pairs.items()
            if ps
        }
        out[arm] = {
            "label": label,
            "folds": [r["fold"] for r in rs],
            "steps": [r["steps"] for r in rs],
            "release_steps": [release[r["fold"]]["steps"] for r in rs],
            "cases_full_quality": n_fq,
            "cases_exports": n_ex,
            **{f"{m}_arm": v[0] for m, v in means.items()},
            **{f"{m}_release": v[1] for m, v in means.items()},
        }
        cells = [
            f"{fmt(means[m][0])} / {fmt(means[m][1])}" if m in means else "-"
            for m in ("dice_liver", "dice_tumor")
        ]
        steps = f"{'/'.join(map(str, out[arm]['steps']))} vs {'/'.join(map(str, out[arm]['release_steps']))}"
        table.append(
            f"| {label} | {','.join(map(str, out[arm]['folds']))} | {steps} | {n_fq} + {n_ex} | {cells[0]} | {cells[1]} |"
        )
    emit({"arms": out, "runs": rows}, "\n".join(table), args.json, args.markdown)


if __name__ == "__main__":
    main()
