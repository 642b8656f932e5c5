"""``liverseg data ...``: prepare datasets, make splits, print statistics.

One ``_register_<name>`` function per subcommand adds its parser and one ``cmd_<name>`` runs it;
a new subcommand (e.g. ``export-corrections``) adds its pair and an entry to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from liverseg.errors import ConfigError

__all__ = ["SUBCOMMANDS", "cmd_prepare", "cmd_split", "cmd_stats", "register"]

log = logging.getLogger(__name__)

#: the keys of :data:`liverseg.data.layouts.LAYOUTS`, spelled out so that building the parser
#: (``liverseg --help``) does not import the data and io packages (tests/cli/test_cli_imports.py
#: checks they agree)
LAYOUT_NAMES = ("lits", "msd", "ircadb", "chaos", "png-slices", "nifti-pairs", "mrc", "slice-export")


def _parse_map(items: list[str] | None) -> dict[int, int] | None:
    if not items:
        return None
    out: dict[int, int] = {}
    for item in items:
        for part in item.split(","):
            src, sep, dst = part.partition("=")
            try:
                if not sep:
                    raise ValueError
                out[int(src)] = int(dst)
            except ValueError as exc:
                raise ConfigError(f"--map expects SRC=DST integer pairs such as 255=1, got {part!r}") from exc
    return out


# ------------------------------------------------------------------------------------ prepare
def cmd_prepare(args: argparse.Namespace) -> int:
    """Run ``liverseg data prepare``."""
    from liverseg.data.cases import LayoutOptions
    from liverseg.data.prepare import prepare_dataset

    options = LayoutOptions(
        spacing_zyx=tuple(args.spacing) if args.spacing else None,
        value_map=_parse_map(args.map),
        window_hu=tuple(args.window) if args.window else None,
        channel=args.channel,
        spacing_csv=args.spacing_csv,
        case_prefix=args.case_prefix,
    )
    ds = prepare_dataset(args.src, args.out, args.format, options=options, name=args.name)
    log.info("prepared %s: %d case(s), fingerprint %s", ds.root, len(ds.cases), ds.fingerprint)
    return 0


def _register_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="convert LiTS/MSD/3D-IRCADb/CHAOS/PNG/NIfTI/MRC/slice-export data into a prepared dataset",
        description="Write OUT/images/<case>.nii.gz, OUT/labels/<case>.nii.gz (0 background, 1 liver, "
        "2 tumor) and OUT/dataset.json. Re-running into an existing OUT updates it (same case ids).",
    )
    p.add_argument("--format", required=True, choices=list(LAYOUT_NAMES), help="source layout")
    p.add_argument("src", help="source folder")
    p.add_argument("out", help="prepared dataset folder (created or updated)")
    p.add_argument(
        "--spacing",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size in mm for sources that store none (mrc, png-slices, slice-export); mrc and "
        "png-slices default to 1 1 1 with a warning naming the assumption; for slice-export Z is the "
        "original slice spacing (the stored stack gets Z x the slice step)",
    )
    g = p.add_argument_group("slice exports (--format slice-export: windowed JPEG/PNG slice pictures)")
    g.add_argument(
        "--window",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="HU range that grey values 0..255 stand for (required), e.g. -40 160",
    )
    g.add_argument(
        "--channel",
        choices=("gray", "R", "G", "B"),
        help="channel of RGB pictures that holds that window (default gray: pictures must be grey)",
    )
    g.add_argument(
        "--spacing-csv",
        type=Path,
        metavar="CSV",
        help="spacing per volume: columns volume, z_spacing_mm, inplane_spacing_mm [, use, "
        "same_patient_as, spacing_status, spacing_source]; volumes without one are estimated and flagged",
    )
    g.add_argument("--case-prefix", help="case ids <PREFIX>_<volume number> (default: export)")
    p.add_argument(
        "--map",
        action="append",
        metavar="SRC=DST",
        help="label value mapping for lits/msd/nifti-pairs/mrc, e.g. --map 255=1 (repeatable, "
        "or comma separated); every value present must be mapped",
    )
    p.add_argument("--name", help="dataset name (default: the OUT folder name)")
    p.set_defaults(func=cmd_prepare)


# -------------------------------------------------------------------------------------- split
def cmd_split(args: argparse.Namespace) -> int:
    """Run ``liverseg data split``: print the folds, store them in dataset.json."""
    from liverseg.data.splits import split_dataset

    folds = 0 if args.lopo else args.folds
    if folds is None:
        raise ConfigError("give --folds K (K >= 2, or 0 for leave-one-patient-out) or --lopo")
    splits = split_dataset(args.out, folds=folds, seed=args.seed, test_fraction=args.test_fraction)
    for k, (train, val) in enumerate(splits.folds):
        print(f"fold {k}: train {len(train)} [{', '.join(train)}]  val {len(val)} [{', '.join(val)}]")
    print(f"test {len(splits.test)} [{', '.join(splits.test)}]")
    return 0


def _register_split(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split",
        help="patient-level cross-validation folds (stratified by tumor presence)",
        description="Store patient-level folds (stratified by tumor presence, deterministic per seed) and "
        "an optional held-out test set in OUT/dataset.json.",
    )
    p.add_argument("out", help="prepared dataset folder")
    p.add_argument("--folds", type=int, help="number of folds K >= 2; 0 = leave-one-patient-out")
    p.add_argument("--lopo", action="store_true", help="leave-one-patient-out (same as --folds 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="fraction of patients held out as test before making folds (default 0)",
    )
    p.set_defaults(func=cmd_split)


# -------------------------------------------------------------------------------------- stats
def cmd_stats(args: argparse.Namespace) -> int:
    """Run ``liverseg data stats``: print the per-case table and totals on stdout."""
    from liverseg.data.dataset import load_dataset
    from liverseg.data.stats import stats_table

    ds = load_dataset(args.out)
    if args.verify:
        ds.verify()
        log.info("all %d case(s) match their sha256", len(ds.cases))
    print(stats_table(ds))
    return 0


def _register_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="table of cases: shape, spacing, liver/tumor ml, HU range",
        description="Print one row per case and totals on stdout.",
    )
    p.add_argument("out", help="prepared dataset folder")
    p.add_argument("--verify", action="store_true", help="also check every file's sha256")
    p.set_defaults(func=cmd_stats)


#: the ``data`` subcommands, in ``--help`` order
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _register_prepare,
    _register_split,
    _register_stats,
]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``liverseg data`` and its subcommands."""
    parser = subparsers.add_parser(
        "data",
        help="prepare datasets, make splits, print statistics",
        description="Dataset preparation: prepare, split, stats.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


# --- export-corrections (added by the service engineer; self-contained) ----------------------
def _register_export_corrections(sub: argparse._SubParsersAction) -> None:
    from liverseg.service_defaults import DEFAULT_DATA_DIR

    p = sub.add_parser(
        "export-corrections",
        help="turn confirmed corrections from the web service into a prepared dataset",
        description="Write every confirmed problem report's corrected label map, with its study's CT, "
        "as a prepared dataset (images/, labels/, dataset.json) for retraining.",
    )
    p.add_argument("out", type=Path, help="output dataset folder")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the service's data folder")
    p.add_argument("--db", default=None, metavar="URL", help="database URL (default: SQLite in the data dir)")
    p.set_defaults(func=_cmd_export_corrections)


def _cmd_export_corrections(args: argparse.Namespace) -> int:
    from liverseg.service.config import ServiceConfig
    from liverseg.service.db import Database
    from liverseg.service.export import export_corrections

    config = ServiceConfig(data_dir=args.data_dir, db_url=args.db)
    path = export_corrections(Database(config.database_url), config.data_dir, args.out)
    print(path)
    return 0


SUBCOMMANDS.append(_register_export_corrections)
