"""``liverseg synth-lesions`` and ``liverseg lesion-realism``: synthetic liver lesions."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

SYNTH_DESCRIPTION = """\
Insert synthetic liver lesions into a real CT inside its liver mask (label 1 or 2) and mark them
as tumor (label 2). Lesions are lobulated ellipsoids (sometimes 2-3 merged blobs), 3-60 mm,
placed away from the liver boundary, large vessels and existing tumors, shaded relative to the
scan's own parenchyma (hypodense by 15-80 HU, some hyperdense, rims, necrotic cores, texture)
with soft edges and the scan's own noise. The random ranges are those of
liverseg.augment.LesionParams; --params overrides them from a JSON/YAML mapping.

Writes into OUT_DIR, on exactly the input's grid: <case>_synth.nii.gz (CT), <case>_synth_label.nii.gz
(labels), <case>_lesions.json (one record per lesion: centre voxel, diameter, contrast, kind; and
lesions that did not fit) and <case>_gallery.png (an axial slice through each lesion, original
next to synthetic, liver window). Prints one line per inserted lesion.
"""

REALISM_DESCRIPTION = """\
Compare synthetic lesions with the real tumors of a prepared dataset (liverseg data prepare):
size (equivalent and longest axial diameter), HU contrast to the surrounding liver, edge width
(10-90 %, logistic fit of the radial profile), boundary gradient and internal texture. Real tumors
are measured as labelled; synthetic lesions are inserted --seeds times per case and measured the
same way. Prints a markdown table; optionally writes it (--markdown), per-lesion values (--json)
and a gallery of real and synthetic lesions (--gallery).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth-lesions`` and ``lesion-realism`` commands."""
    p = subparsers.add_parser(
        "synth-lesions",
        help="insert synthetic liver lesions into a CT",
        description=SYNTH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ct", type=Path, metavar="CT", help="CT file (NIfTI, NRRD, MHA) or DICOM folder/zip")
    p.add_argument("label", type=Path, metavar="LABEL", help="label map on the CT's grid (0/1/2)")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="output folder")
    p.add_argument(
        "--n",
        type=_non_negative,
        default=None,
        metavar="N",
        help="number of lesions (default: random, from the parameters' count range)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--params", type=Path, metavar="FILE", help="JSON/YAML mapping of LesionParams fields")
    p.set_defaults(func=run_synth)

    r = subparsers.add_parser(
        "lesion-realism",
        help="compare synthetic lesions with the real tumors of a prepared dataset",
        description=REALISM_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("prepared_dir", type=Path, metavar="PREPARED_DIR", help="prepared dataset folder")
    r.add_argument("--seeds", type=_positive, default=3, metavar="K", help="insertions per case (default 3)")
    r.add_argument("--n", type=_non_negative, default=None, metavar="N", help="lesions per insertion")
    r.add_argument("--case", action="append", dest="cases", metavar="ID", help="only this case (repeatable)")
    r.add_argument("--params", type=Path, metavar="FILE", help="JSON/YAML mapping of LesionParams fields")
    r.add_argument("--markdown", type=Path, metavar="FILE", help="write the table as markdown")
    r.add_argument("--json", type=Path, metavar="FILE", help="write per-lesion values and the summary")
    r.add_argument(
        "--gallery", type=Path, metavar="PNG", help="write a gallery of real and synthetic lesions"
    )
    r.set_defaults(func=run_realism)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def run_synth(args: argparse.Namespace) -> int:
    """Insert lesions into one CT, write the outputs, print one line per lesion."""
    from liverseg.augment.synthesize import load_params_file, synthesize_files

    out = synthesize_files(
        args.ct, args.label, args.out_dir, count=args.n, seed=args.seed, params=load_params_file(args.params)
    )
    print(f"{'#':>3} {'centre (z,y,x)':>18} {'diam mm':>8} {'contrast HU':>12} kind")
    for i, rec in enumerate(out.result.lesions, start=1):
        centre = ",".join(str(c) for c in rec.center_voxel)
        extras = ("+rim" if rec.rim else "") + ("+necrotic" if rec.necrotic else "")
        print(f"{i:>3} {centre:>18} {rec.diameter_mm:>8.1f} {rec.contrast_hu:>12.1f} {rec.kind}{extras}")
    for skip in out.result.skipped:
        print(f"  - skipped a {skip.requested_diameter_mm:.1f} mm lesion: {skip.reason}")
    log.info("wrote %s, %s, %s, %s", out.image, out.label, out.record, out.gallery)
    return 0


def run_realism(args: argparse.Namespace) -> int:
    """Run the realism comparison and print its table."""
    from liverseg.augment.realism_report import run_realism as _run
    from liverseg.augment.synthesize import load_params_file

    result = _run(
        args.prepared_dir,
        seeds=args.seeds,
        count=args.n,
        params=load_params_file(args.params),
        case_ids=args.cases,
    )
    print(result.table())
    if args.markdown:
        log.info("wrote %s", result.write_markdown(args.markdown))
    if args.json:
        log.info("wrote %s", result.write_json(args.json))
    if args.gallery:
        log.info("wrote %s", result.write_gallery(args.gallery))
    return 0
