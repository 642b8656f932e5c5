"""``liverseg evaluate``: compare predicted label maps with references, case by case."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

DESCRIPTION = """\
Evaluate predicted label maps (0 background, 1 liver, 2 tumor) against reference label maps.
Files are matched by case name (file name without .nii.gz/.nii/.nrrd/.mha/.mhd); --ref may also
be a prepared dataset folder (its labels/ are used). Each pair must share one voxel grid.

Metrics per case: liver (label >= 1) and tumor (label 2) Dice, Jaccard, VOE, RVD, precision,
recall, specificity, accuracy, ASSD/MSSD/HD95 in mm; lesion detection (recall split at 10 mm).
Printed: one row per case, mean +- std over finite values (one-empty cases give inf/NaN surface
distances and are counted as excluded), global Dice, and cases missing on either side.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` command."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate predicted label maps against references",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pred", required=True, type=Path, metavar="DIR", help="folder of predicted label maps")
    p.add_argument(
        "--ref",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder of reference label maps, or a prepared dataset folder",
    )
    p.add_argument("--csv", type=Path, metavar="FILE", help="write per-case metrics as CSV")
    p.add_argument("--json", type=Path, metavar="FILE", help="write per-case metrics and the summary as JSON")
    p.add_argument("--no-surface", action="store_true", help="skip ASSD/MSSD/HD95 (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table on stdout, write the requested files; returns the exit code."""
    from liverseg.metrics.runner import evaluate_folders, format_table

    result = evaluate_folders(args.pred, args.ref, surface=not args.no_surface)
    print(format_table(result))
    if args.csv:
        log.info("wrote %s", result.write_csv(args.csv))
    if args.json:
        log.info("wrote %s", result.write_json(args.json))
    return 0
