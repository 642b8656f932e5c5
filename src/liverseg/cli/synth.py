"""``liverseg synth``: write synthetic CT phantoms as a prepared dataset (images/, labels/, dataset.json)."""

from __future__ import annotations

import argparse
import logging

__all__ = ["cmd_synth", "register"]

log = logging.getLogger(__name__)


#: liverseg.synth.phantom.DEFAULT_SHAPE / DEFAULT_SPACING, spelled out so that ``liverseg --help``
#: does not import the synth and io packages (tests/cli/test_cli_imports.py checks they agree)
PHANTOM_SHAPE = (48, 128, 128)
PHANTOM_SPACING = (5.0, 3.0, 3.0)


def cmd_synth(args: argparse.Namespace) -> int:
    """Write the phantoms and print one line per case (id, tumors, liver ml, tumor ml, lesion sizes)."""
    from liverseg.synth.dataset import write_phantom_dataset

    ds = write_phantom_dataset(
        args.out,
        cases=args.cases,
        seed=args.seed,
        shape=tuple(args.size),
        spacing=tuple(args.spacing),
        tumor_free_every=args.tumor_free_every,
        folds=args.folds,
        name=args.name,
    )
    header = f"{'case':<10} {'liver_ml':>9} {'tumor_ml':>9} {'lesions':>7}  diameters_mm"
    print(header)
    print("-" * len(header))
    for c in ds.cases:
        sizes = ", ".join(f"{les['diameter_mm']:.1f}" for les in c.extra.get("lesions", []))
        print(
            f"{c.id:<10} {c.liver_volume_ml:>9.1f} {c.tumor_volume_ml:>9.2f} {len(c.extra.get('lesions', [])):>7}  {sizes}"
        )
    print(
        f"{len(ds.cases)} synthetic case(s) in {ds.root} (fingerprint {ds.fingerprint[:12]}); not patient data"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` command."""
    p = subparsers.add_parser(
        "synth",
        help="write synthetic CT phantoms with liver/tumor labels as a prepared dataset",
        description="Draw CT-like abdominal phantoms (body, spine, ribs, lungs, liver with vessels and "
        "lesions, spleen, kidneys, noise) and write OUT/images, OUT/labels and OUT/dataset.json in the "
        "layout of 'liverseg data prepare', so training can use them directly. Deterministic per "
        "--seed. Synthetic: never patient data.",
    )
    p.add_argument(
        "--out", required=True, help="output folder (created; earlier phantoms there are replaced)"
    )
    p.add_argument("--cases", type=int, default=10, help="number of cases (default 10)")
    p.add_argument("--seed", type=int, default=0, help="base seed, >= 0 (default 0)")
    p.add_argument(
        "--size",
        nargs=3,
        type=int,
        default=list(PHANTOM_SHAPE),
        metavar=("Z", "Y", "X"),
        help="array shape (default %(default)s)",
    )
    p.add_argument(
        "--spacing",
        nargs=3,
        type=float,
        default=list(PHANTOM_SPACING),
        metavar=("Z", "Y", "X"),
        help="voxel size in mm (default %(default)s)",
    )
    p.add_argument(
        "--tumor-free-every",
        type=int,
        default=5,
        metavar="K",
        help="every K-th case has no tumor (cases 1, 1+K, ...; 0: all have tumors; default 5)",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=None,
        metavar="K",
        help="also store K patient-level folds in dataset.json (as 'liverseg data split')",
    )
    p.add_argument("--name", default=None, help="dataset name (default phantoms_seed<S>)")
    p.set_defaults(func=cmd_synth)
