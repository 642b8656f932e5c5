"""Train a plan of `liverseg train` runs in parallel: the shipped cascade (final models and
leave-one-patient-out folds) and the synthetic-lesion experiment (docs/synthetic_lesions.md).

Every run is an ordinary `liverseg train --config ... --set ...` call; this script only decides
which runs exist and starts them side by side (one GPU is shared by all of them; on CPU use
`--max-parallel 1` and a small budget).

    python scripts/train_plan.py --plan all --device cuda --out runs/plan --budget-minutes 3.4
    python scripts/train_plan.py --plan experiment --device cpu --out runs/cpu --budget-minutes 5 --max-parallel 1

Real cases (prepared with `liverseg data prepare` into work_data/prepared): whole CTs
chaos_03, ircadb_01, ircadb_07, ircadb_17, and the LiTS-117 liver crop lits_117 (tumor stage only).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

WHOLE_CT = ("chaos_03", "ircadb_01", "ircadb_07", "ircadb_17")
TUMOR_STAGE_CASES = (*WHOLE_CT, "lits_117")
HEALTHY = ("chaos_03", "ircadb_07")
LIVER_CFG, TUMOR_CFG = "configs/shipped_liver.yaml", "configs/shipped_tumor.yaml"


@dataclass
class Run:
    name: str
    config: str
    overrides: list[str] = field(default_factory=list)
    workers: int = 1
    keep_weights: bool = True


def _ids(key: str, ids: tuple[str, ...] | list[str]) -> str:
    return f"data.{key}=[{', '.join(ids)}]"


def shipped_runs(steps: dict[str, int]) -> list[Run]:
    """Final stage 1 + 2 on every case, and leave-one-patient-out folds of both stages."""
    s1, s2 = steps["liver"], steps["tumor_final"]
    runs = [
        Run("s1_final", LIVER_CFG, [_ids("train_ids", WHOLE_CT), "data.val_ids=[]", *_steps(s1)], 1),
        Run("s2_final", TUMOR_CFG, [_ids("train_ids", TUMOR_STAGE_CASES), "data.val_ids=[]", *_steps(s2)], 3),
    ]
    for case in WHOLE_CT:
        rest = [c for c in WHOLE_CT if c != case]
        runs.append(
            Run(f"s1_lopo_{case}", LIVER_CFG, [_ids("train_ids", rest), "data.val_ids=[]", *_steps(s1)], 1)
        )
    return runs


def experiment_runs(steps: dict[str, int]) -> list[Run]:
    """Tumor stage, same network/steps/seed: real labels + synthetic lesions (also the shipped
    model's LOPO folds), real labels only, synthetic lesions only (healthy livers, no real tumor)."""
    n = steps["tumor_arm"]
    runs: list[Run] = []
    for case in TUMOR_STAGE_CASES:
        rest = [c for c in TUMOR_STAGE_CASES if c != case]
        base = [_ids("train_ids", rest), "data.val_ids=[]", *_steps(n)]
        runs.append(Run(f"s2_lopo_{case}", TUMOR_CFG, base, 2))  # arm real+synthetic
        runs.append(Run(f"exp_real_{case}", TUMOR_CFG, [*base, "augment.synthetic_lesions.p=0.0"], 1, False))
    synth_only = [
        "augment.synthetic_lesions.p=0.5",
        "sampling.tumor_fraction=0.0",
        "sampling.liver_fraction=0.8",
    ]
    runs.append(
        Run(
            "exp_synonly_all",
            TUMOR_CFG,
            [_ids("train_ids", HEALTHY), "data.val_ids=[]", *_steps(n), *synth_only],
            4,
            False,
        )
    )
    for case in HEALTHY:
        other = [c for c in HEALTHY if c != case]
        runs.append(
            Run(
                f"exp_synonly_{case}",
                TUMOR_CFG,
                [_ids("train_ids", other), "data.val_ids=[]", *_steps(n), *synth_only],
                4,
                False,
            )
        )
    return runs


def _steps(total: int, per_epoch: int = 40) -> list[str]:
    return [
        f"train.epochs={max(1, total // per_epoch)}",
        f"train.steps_per_epoch={per_epoch}",
        "train.val_every=1000",
    ]


def launch(
    runs: list[Run], out: Path, *, device: str, budget_minutes: float, max_parallel: int
) -> dict[str, int]:
    """Start the runs (at most ``max_parallel`` at once), wait, return exit codes by name."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    pending, active, codes = list(runs), {}, {}
    while pending or active:
        while pending and len(active) < max_parallel:
            run = pending.pop(0)
            cmd = [
                sys.executable,
                "-m",
                "liverseg",
                "--quiet",
                "train",
                "--config",
                run.config,
                "--out",
                str(out / run.name),
                "--half-weights",
                "--set",
                f"train.device={device}",
                "--set",
                f"train.budget_minutes={budget_minutes}",
                "--set",
                f"train.num_workers={run.workers}",
                "--set",
                "augment.on_device=true",
            ]
            for o in run.overrides:
                cmd += ["--set", o]
            log = open(out / f"{run.name}.log", "w")  # noqa: SIM115 (closed when the process ends)
            active[run.name] = (
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                log,
                time.time(),
            )
            print(f"started {run.name}", flush=True)
        for name, (proc, log, t0) in list(active.items()):
            if proc.poll() is not None:
                log.close()
                codes[name] = proc.returncode
                print(f"finished {name} rc={proc.returncode} in {time.time() - t0:.0f} s", flush=True)
                del active[name]
        time.sleep(1)
    return codes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", choices=("shipped", "experiment", "all"), default="all")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, default=Path("runs/plan"))
    p.add_argument("--budget-minutes", type=float, default=3.4)
    p.add_argument("--max-parallel", type=int, default=64)
    p.add_argument("--liver-steps", type=int, default=1200)
    p.add_argument("--tumor-final-steps", type=int, default=1200)
    p.add_argument("--tumor-arm-steps", type=int, default=600)
    p.add_argument("--only", nargs="*", help="run only these run names")
    args = p.parse_args()
    steps = {
        "liver": args.liver_steps,
        "tumor_final": args.tumor_final_steps,
        "tumor_arm": args.tumor_arm_steps,
    }
    runs: list[Run] = []
    if args.plan in ("shipped", "all"):
        runs += shipped_runs(steps)
    if args.plan in ("experiment", "all"):
        runs += experiment_runs(steps)
    if args.only:
        runs = [r for r in runs if r.name in set(args.only)]
    codes = launch(
        runs, args.out, device=args.device, budget_minutes=args.budget_minutes, max_parallel=args.max_parallel
    )
    failed = {k: v for k, v in codes.items() if v != 0}
    print(f"{len(codes) - len(failed)} of {len(codes)} runs succeeded; failed: {failed or 'none'}")


if __name__ == "__main__":
    main()
