"""``liverseg segment`` on a folder of cases or a manifest: the cohort options and the summary.

The work itself is :func:`liverseg.cohort.run_cohort`; this module parses the cohort options,
builds the engine and prints the end-of-run summary (stdout).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from liverseg.errors import LiversegError

log = logging.getLogger(__name__)

__all__ = ["add_cohort_arguments", "check_single_case", "is_cohort", "run_cohort_command"]

RAY_OPTIONS = ("address", "num_workers", "cpus_per_worker", "gpus_per_worker", "memory_per_worker")


def add_cohort_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of a cohort run (INPUT a folder of cases or a manifest .csv)."""
    g = p.add_argument_group(
        "cohort (INPUT a folder of cases or a manifest .csv with a 'path' column; see docs/cohort.md)"
    )
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one case after another in this process (default); ray: a pool of Ray workers",
    )
    g.add_argument(
        "--force", action="store_true", help="redo cases already finished with the same input and model"
    )
    g.add_argument(
        "--address",
        help="Ray cluster: 'auto' (this machine's cluster) or HOST:PORT of the head (default: start a "
        "local Ray)",
    )
    g.add_argument("--num-workers", type=int, help="Ray workers (default: as many as the cluster holds)")
    g.add_argument("--cpus-per-worker", type=float, help="CPUs per Ray worker (default 1)")
    g.add_argument("--gpus-per-worker", type=float, help="GPUs per Ray worker, fractions allowed (default 0)")
    g.add_argument(
        "--memory-per-worker",
        type=float,
        metavar="GB",
        help="memory per Ray worker in GB: scheduling, and a cap on CPU workers (default 4)",
    )


def run_cohort_command(args: argparse.Namespace, options) -> int:
    """Run a cohort for ``liverseg segment`` and print the summary; the exit code."""
    from liverseg.cohort import CohortConfig, discover_cases, make_engine, run_cohort

    single = [
        opt
        for opt, value in (
            ("--dicom-seg", args.dicom_seg),
            ("--dicom-sr", args.dicom_sr),
            ("--series", args.series),
            ("--probabilities", args.probabilities),
        )
        if value
    ]
    if single:
        raise LiversegError(
            f"{', '.join(single)}: single-case option(s), not for a folder of cases or a manifest"
        )
    if args.input.is_dir() and args.output.resolve() == args.input.resolve():
        raise LiversegError(
            f"{args.output}: the output folder is the input folder; its label maps would be taken "
            "for cases (or overwrite them): choose another folder"
        )
    cases = discover_cases(args.input)
    engine = make_engine(args.engine, **{k: getattr(args, k) for k in RAY_OPTIONS})
    config = CohortConfig(
        out_dir=args.output,
        options=options,
        report_dir=args.report,
        html_dir=args.html,
        overlays_dir=args.overlays,
        force=args.force,
    )
    summary = run_cohort(cases, config, engine, show_progress=not args.quiet)
    failed = [r for r in summary.rows if r["status"] == "failed"]
    if failed:
        width = max(len(r["case"]) for r in failed)
        print(f"{'case':<{width}}  status  reason")
        for r in failed:
            print(f"{r['case']:<{width}}  FAILED  {r['error']}")
    no_liver = sum(r["status"] == "ok" and r["liver_found"] is False for r in summary.rows)
    flagged = sum(r["status"] == "ok" and bool(r["warnings"]) for r in summary.rows)
    print(
        f"{summary.count('ok')} of {len(summary.rows)} case(s) succeeded "
        f"({summary.resumed} kept from an earlier run, {no_liver} without liver, {flagged} with warnings)"
    )
    if summary.segmented:
        print(
            f"{summary.segmented} case(s) run in {summary.seconds:.1f} s ({summary.cases_per_minute:.1f} "
            f"cases/min) on {max(1, len(summary.workers))} {summary.engine} worker(s)"
        )
    print(
        f"cohort table: {summary.table_csv}"
        + (f" and {summary.table_parquet}" if summary.table_parquet else "")
    )
    return summary.exit_code


def is_cohort(path: Path) -> bool:
    """True when ``path`` is a folder of cases or a manifest (see :mod:`liverseg.cohort.cases`)."""
    from liverseg.cohort.cases import is_cohort_input

    return is_cohort_input(path)


def check_single_case(args: argparse.Namespace) -> None:
    """Refuse the cohort options when INPUT is one CT."""
    given = [f"--{k.replace('_', '-')}" for k in RAY_OPTIONS if getattr(args, k) is not None]
    given += ["--engine ray"] if args.engine != "local" else []
    given += ["--force"] if args.force else []
    if given:
        raise LiversegError(
            f"{', '.join(given)}: cohort option(s), for a folder of cases or a manifest .csv (INPUT is one CT)"
        )
