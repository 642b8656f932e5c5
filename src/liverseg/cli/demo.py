"""``liverseg demo``: segment the bundled sample CT with the shipped model and write a report.

The sample is a small derivative of CHAOS CT case 3 (CC BY-SA 4.0; see
``liverseg/sample/ATTRIBUTION.md``); it ships inside the package, so a missing sample is a broken
installation and an error (never a silent switch to synthetic data).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="segment the bundled sample CT and write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", type=Path, default=Path("demo_output"), help="output folder (default: %(default)s)"
    )
    p.add_argument("--model", default="default", help="model to use (default: the shipped default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liverseg.cli.segment import print_summary
    from liverseg.errors import InputError
    from liverseg.inference import SegmentOptions, run_segment
    from liverseg.io import SAMPLE_IMAGE, SAMPLE_LABEL, read_volume

    for path in (SAMPLE_IMAGE, SAMPLE_LABEL):
        if not path.is_file():
            raise InputError(
                "the bundled sample is missing from this installation (reinstall liverseg)", path
            )
    image_path, ref_path = SAMPLE_IMAGE, SAMPLE_LABEL
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print("Input              : bundled sample (CHAOS CT case 3 derivative, CC BY-SA 4.0)")
    report = run_segment(
        image_path,
        out / "labels.nii.gz",
        report_json=out / "report.json",
        html=out / "report.html",
        overlays_dir=out / "overlays",
        options=SegmentOptions(model=args.model, device=args.device),
    )
    print_summary(report)
    from liverseg.metrics import dice

    pred = read_volume(out / "labels.nii.gz", kind="label").array
    ref = read_volume(ref_path, kind="label").array
    print(f"Liver Dice vs reference label: {dice(pred >= 1, ref >= 1):.3f}")
    print(f"Outputs            : {out}/labels.nii.gz, report.json, report.html, overlays/")
    return 0
