"""liver-cascade 0.2.0: every training run of the release, its cross-validation and its ablations.

The runs are ordinary `liverseg train --config ... --set ...` calls (configs/v2_liver.yaml,
configs/v2_tumor.yaml); this script decides which runs exist and where their data comes from.
It has three steps, so that the work fits a lent GPU machine (two calls of at most 64 MiB each):

    # here, once: caches of both stages from the prepared dataset, packed for transport (~90 MB
    # in three parts), plus the wheels the GPU machine lacks (monai, pydicom, cc3d for Python 3.12)
    python scripts/train_plan_v2.py pack --dataset work_data/prepared --out .gpu
    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
        -d .gpu/whl monai==1.6.1 pydicom==3.0.2 connected-components-3d==4.1.1
    # GPU machine, call 1 (carry .gpu/part1_liver.pack .gpu/part1_tumor.pack .gpu/whl .gpu/plan.json):
    # copy to a work folder outside the checkout, unpack part 1, start the stage-1 runs detached
    python3 scripts/train_plan_v2.py start --dir .gpu --work /tmp/lsg
    # call 2, at once (carry .gpu/part2_tumor.pack): unpack part 2, run stage 2 and the
    # ablations, wait for every run, collect weights and summaries into $OUT
    python3 scripts/train_plan_v2.py finish --dir .gpu --work /tmp/lsg --out $OUT

The work folder lies outside the checkout because a later call re-sends the checkout and removes
ignored paths it does not carry again (learnt the hard way: the first attempt unpacked into
`.gpu/` and lost part 1 at call 2).

On a machine that holds the prepared dataset, `run` does everything in one process tree
(`--device cpu --max-parallel 1` for a slow CPU reproduction with a small budget):

    python scripts/train_plan_v2.py run --dataset work_data/prepared --out runs/v2 --device cuda

Runs (folds are the dataset's `liverseg data split --folds 5 --seed 0` splits):

* `s1_f{k}`, `s1_final`: stage 1 (liver) on the fold's training cases / all cases (whole CTs only;
  the LiTS-117 liver crop is no whole CT);
* `s2_f{k}`, `s2_final`: stage 2 (liver + tumor), the release recipe;
* ablations of stage 2, scored by the training loop's validation on the fold's held-out cases
  (per-case Dice on the stage grid, liver box from the reference: a proxy, the release table
  uses `liverseg segment`): `abl_noexp_f{k}` (full-quality training cases only: no slice exports),
  `abl_nosyn_f{k}` (no synthetic lesions), `abl_wide_f{k}` (the 0.1.0 window W400/L50 instead of
  the exports' -40..160 HU), `abl_big_f{k}` (32 instead of 16 base features).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LIVER_CFG, TUMOR_CFG = "configs/v2_liver.yaml", "configs/v2_tumor.yaml"
NOT_WHOLE_CT = ("lits_117",)  # a 128^3 liver crop: stage 2 only
ABLATION_FOLDS = {"noexp": 5, "nosyn": 5, "wide": 5, "big": 3}


@dataclass
class Run:
    """One `liverseg train` call."""

    name: str
    config: str
    overrides: list[str] = field(default_factory=list)
    workers: int = 1
    nice: int = 0
    keep_weights: bool = True


def _ids(key: str, ids: list[str]) -> str:
    return f"data.{key}=[{', '.join(ids)}]"


def plan_runs(dataset_json: dict, *, stage: str | None = None) -> list[Run]:
    """Every run of the release (see the module docstring), from the dataset's cases and splits."""
    cases = dataset_json["cases"]
    folds = dataset_json["splits"]["folds"]
    whole = [c["id"] for c in cases if c["id"] not in NOT_WHOLE_CT]
    full_quality = {c["id"] for c in cases if (c.get("image_quality") or {}).get("full_quality", True)}
    all_ids = [c["id"] for c in cases]
    runs: list[Run] = []
    for k, fold in enumerate(folds):
        train, val = list(fold["train"]), list(fold["val"])
        runs.append(
            Run(
                f"s1_f{k}",
                LIVER_CFG,
                [_ids("train_ids", [c for c in train if c in whole]), "data.val_ids=[]"],
                1,
                2,
            )
        )
        runs.append(Run(f"s2_f{k}", TUMOR_CFG, [_ids("train_ids", train), "data.val_ids=[]"], 2, 0))
        ablations = {
            "noexp": [_ids("train_ids", [c for c in train if c in full_quality])],
            "nosyn": [_ids("train_ids", train), "augment.synthetic_lesions.p=0.0"],
            "wide": [_ids("train_ids", train), "stage.window=[50, 400]"],
            "big": [_ids("train_ids", train), "model.kwargs.features=32"],
        }
        for arm, extra in ablations.items():
            if k < ABLATION_FOLDS[arm]:
                runs.append(Run(f"abl_{arm}_f{k}", TUMOR_CFG, [*extra, _ids("val_ids", val)], 1, 15, False))
    runs.append(Run("s1_final", LIVER_CFG, [_ids("train_ids", whole), "data.val_ids=[]"], 1, 2))
    runs.append(Run("s2_final", TUMOR_CFG, [_ids("train_ids", all_ids), "data.val_ids=[]"], 2, 0))
    if stage is not None:
        runs = [r for r in runs if (r.config == LIVER_CFG) == (stage == "liver")]
    return runs


def _command(run: Run, out: Path, *, device: str, budget: float, cache_dir: str, data_dir: str) -> list[str]:
    cmd = [
        "nice", "-n", str(run.nice), sys.executable, "-m", "liverseg", "--quiet", "train",
        "--config", run.config, "--out", str(out / run.name), "--half-weights",
        "--set", f"train.device={device}", "--set", f"train.budget_minutes={budget}",
        "--set", f"train.num_workers={run.workers}", "--set", "train.epochs=100000",
        "--set", "train.steps_per_epoch=100", "--set", "train.val_every=100000",
        "--set", f"data.cache_dir={cache_dir}", "--set", f"data.dir={data_dir}",
    ]  # fmt: skip
    for o in run.overrides:
        cmd += ["--set", o]
    return cmd


def launch(
    runs: list[Run],
    out: Path,
    *,
    device: str,
    budget: float,
    cache_dir: str,
    data_dir: str,
    max_parallel: int,
) -> list[subprocess.Popen]:
    """Start runs (all at once up to ``max_parallel``; the rest when one ends); returns when all started."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root / "src"), env.get("PYTHONPATH", "")) if p)
    procs: list[subprocess.Popen] = []
    for run in runs:
        while sum(p.poll() is None for p in procs) >= max_parallel:
            time.sleep(1)
        log = open(out / f"{run.name}.log", "w")  # noqa: SIM115 (the child owns it)
        cmd = _command(run, out, device=device, budget=budget, cache_dir=cache_dir, data_dir=data_dir)
        procs.append(
            subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
            )
        )
        print(f"started {run.name}", flush=True)
    return procs


def wait_for(out: Path, names: list[str], timeout_s: float) -> dict[str, str]:
    """Wait until every run wrote summary.json (or the timeout); name -> 'done' or 'missing'."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if all((out / n / "summary.json").is_file() for n in names):
            break
        time.sleep(5)
    return {n: "done" if (out / n / "summary.json").is_file() else "missing" for n in names}


def collect(runs_dir: Path, runs: list[Run], dest: Path, *, chunk_mb: float = 15.5) -> list[Path]:
    """Summaries and log tails into ``results.json``; kept checkpoints (best.pt) into tar chunks."""
    dest.mkdir(parents=True, exist_ok=True)
    results = {}
    for run in runs:
        s = runs_dir / run.name / "summary.json"
        log = runs_dir / f"{run.name}.log"
        results[run.name] = {
            "run": asdict(run),
            "summary": json.loads(s.read_text()) if s.is_file() else None,
            "log_tail": log.read_text(errors="replace")[-3000:] if log.is_file() else None,
        }
    (dest / "results.json").write_text(json.dumps(results, indent=1, default=str))
    chunks: list[list[Run]] = []
    size = 0.0
    for run in runs:
        ckpt = runs_dir / run.name / "best.pt"
        if not (run.keep_weights and ckpt.is_file()):
            continue
        mb = ckpt.stat().st_size / 1e6
        if not chunks or size + mb > chunk_mb:
            chunks.append([])
            size = 0.0
        chunks[-1].append(run)
        size += mb
    files = [dest / "results.json"]
    for n, chunk in enumerate(chunks, start=1):
        files.append(dest / f"weights_{n}.tar")
        with tarfile.open(files[-1], "w") as tar:
            for run in chunk:
                tar.add(runs_dir / run.name / "best.pt", arcname=f"{run.name}/best.pt")
                tar.add(runs_dir / run.name / "config.yaml", arcname=f"{run.name}/config.yaml")
    return files


# ------------------------------------------------------------------------------------ commands
def cmd_pack(args: argparse.Namespace) -> None:
    """Build both stage caches from the prepared dataset and pack them into two transport parts."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from liverseg.training.cache import build_or_open_cache
    from liverseg.training.config_io import load_config
    from liverseg.training.transport import pack_cache

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = json.loads((Path(args.dataset) / "dataset.json").read_text())
    windows = {
        c["id"]: tuple(c["image_quality"]["window_hu"])
        for c in ds["cases"]
        if not (c.get("image_quality") or {}).get("full_quality", True)
    }
    caches = {}
    for name, path in (("liver", LIVER_CFG), ("tumor", TUMOR_CFG)):
        cfg = load_config(path, [f"data.dir={args.dataset}", f"data.cache_dir={args.cache_dir}"])
        margin = cfg.spec.crop_margin_mm + cfg.sampling.margin_jitter_mm
        caches[name] = build_or_open_cache(cfg.data.dir, cfg.data.cache_dir, cfg.spec, margin_mm=margin)
    tumor_ids = caches["tumor"].case_ids
    sizes = {c: (caches["tumor"].folder / f"{c}.npz").stat().st_size for c in tumor_ids}
    part1, budget, acc = [], args.part1_tumor_mb * 1e6 * 2.2, 0.0  # npz int16 -> packed ~1/2.2
    for c in sorted(tumor_ids, key=lambda c: sizes[c]):
        if acc + sizes[c] <= budget:
            part1.append(c)
            acc += sizes[c]
    part2 = [c for c in tumor_ids if c not in part1]
    pack_cache(caches["liver"], out / "part1_liver.pack", windows=windows)
    pack_cache(caches["tumor"], out / "part1_tumor.pack", case_ids=part1, windows=windows)
    pack_cache(caches["tumor"], out / "part2_tumor.pack", case_ids=part2, windows=windows)
    (out / "plan.json").write_text(json.dumps({"dataset": ds}, indent=1))
    for p in sorted(out.glob("*.pack")):
        print(f"{p.name}: {p.stat().st_size / 1e6:.1f} MB")


def _only(runs: list[Run], names: list[str] | None) -> list[Run]:
    return [r for r in runs if r.name in set(names)] if names else runs


def _unpack(folder: Path, pattern: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from liverseg.training.transport import unpack_cache

    for pack in sorted(folder.glob(pattern)):
        t = time.time()
        print(
            f"unpacked {pack.name} -> {unpack_cache([pack], folder / 'cache')} in {time.time() - t:.0f} s",
            flush=True,
        )


def _stage_work(args: argparse.Namespace, pattern: str) -> Path:
    """Copy the packs matching ``pattern`` (and the plan, wheels) into the work folder, unpack them."""
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = Path(args.dir)
    for f in [*src.glob(pattern), src / "plan.json"]:
        if f.is_file():
            shutil.copy2(f, work / f.name)
    wheels = sorted((src / "whl").glob("*.whl")) if (src / "whl").is_dir() else []
    if wheels and not (work / "site").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--target", str(work / "site"), *map(str, wheels)],
            check=True,
        )  # fmt: skip
    if (work / "site").is_dir():
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(work / "site"), os.environ.get("PYTHONPATH", "")) if p
        )
        sys.path.insert(0, str(work / "site"))
    _unpack(work, pattern)
    return work


def cmd_start(args: argparse.Namespace) -> None:
    """GPU machine, call 1: unpack part 1 into the work folder, start the stage-1 runs detached."""
    work = _stage_work(args, "part1_*.pack")
    ds = json.loads((work / "plan.json").read_text())["dataset"]
    launch(
        _only(plan_runs(ds, stage="liver"), args.only), work / "runs", device=args.device,
        budget=args.budget_minutes, cache_dir=str(work / "cache"), data_dir=str(work / "no-dataset"),
        max_parallel=64,
    )  # fmt: skip


def cmd_finish(args: argparse.Namespace) -> None:
    """GPU machine, call 2: unpack part 2, run stage 2 and the ablations, wait for all, collect."""
    work = _stage_work(args, "part2_*.pack")
    ds = json.loads((work / "plan.json").read_text())["dataset"]
    launch(
        _only(plan_runs(ds, stage="tumor"), args.only), work / "runs", device=args.device,
        budget=args.budget_minutes, cache_dir=str(work / "cache"), data_dir=str(work / "no-dataset"),
        max_parallel=64,
    )  # fmt: skip
    all_runs = _only(plan_runs(ds), args.only)
    status = wait_for(work / "runs", [r.name for r in all_runs], args.wait_minutes * 60)
    print(json.dumps(status, indent=1))
    for f in collect(work / "runs", all_runs, Path(args.out)):
        print(f"{f.name}: {f.stat().st_size / 1e6:.1f} MB")


def cmd_run(args: argparse.Namespace) -> None:
    """Everything on one machine that holds the prepared dataset."""
    ds = json.loads((Path(args.dataset) / "dataset.json").read_text())
    runs = _only(plan_runs(ds), args.only)
    out = Path(args.out)
    procs = launch(
        runs, out, device=args.device, budget=args.budget_minutes, cache_dir=args.cache_dir,
        data_dir=args.dataset, max_parallel=args.max_parallel,
    )  # fmt: skip
    for p in procs:
        p.wait()
    for f in collect(out, runs, out / "collected"):
        print(f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--dataset", default="work_data/prepared")
    a.add_argument("--cache-dir", default="work_data/cache")
    a.add_argument("--out", default=".gpu")
    a.add_argument("--part1-tumor-mb", type=float, default=20.0, help="stage-2 data to send with call 1")
    a.set_defaults(func=cmd_pack)
    for name, func in (("start", cmd_start), ("finish", cmd_finish)):
        b = sub.add_parser(name)
        b.add_argument("--dir", default=".gpu", help="where the carried packs, plan and wheels arrive")
        b.add_argument("--work", default="/tmp/lsg", help="work folder outside the checkout")
        b.add_argument("--device", default="cuda")
        b.add_argument("--budget-minutes", type=float, default=7.0)
        b.add_argument("--only", nargs="*", help="run only these run names (tests)")
        if name == "finish":
            b.add_argument("--out", required=True)
            b.add_argument("--wait-minutes", type=float, default=8.5)
        b.set_defaults(func=func)
    r = sub.add_parser("run")
    r.add_argument("--dataset", default="work_data/prepared")
    r.add_argument("--cache-dir", default="work_data/cache")
    r.add_argument("--out", default="runs/v2")
    r.add_argument("--device", default="cuda")
    r.add_argument("--budget-minutes", type=float, default=7.0)
    r.add_argument("--max-parallel", type=int, default=64)
    r.add_argument("--only", nargs="*")
    r.set_defaults(func=cmd_run)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
