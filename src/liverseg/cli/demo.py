"""``liverseg demo``: segment the bundled sample CT with the shipped model and write a report.

The sample is a small derivative of CHAOS CT case 3 (CC BY-SA 4.0; see
``liverseg/sample/ATTRIBUTION.md``). When the sample is not installed, a synthetic phantom
(clearly labelled as such) is used instead.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
SAMPLE_IMAGE = SAMPLE_DIR / "chaos_ct3_image.nii.gz"
SAMPLE_LABEL = SAMPLE_DIR / "chaos_ct3_label.nii.gz"


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
    from liverseg.inference import SegmentOptions, run_segment
    from liverseg.io import read_volume, write_volume

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if SAMPLE_IMAGE.exists():
        image_path, ref_path, what = (
            SAMPLE_IMAGE,
            SAMPLE_LABEL,
            "bundled sample (CHAOS CT case 3 derivative, CC BY-SA 4.0)",
        )
    else:
        from liverseg.synth import make_phantom

        log.warning("bundled sample not installed: using a SYNTHETIC phantom (not real data)")
        image, label, _ = make_phantom(0)
        image_path, ref_path = out / "phantom_image.nii.gz", out / "phantom_label.nii.gz"
        write_volume(image, image_path)
        write_volume(label, ref_path)
        what = "synthetic phantom (not real data)"
    print(f"Input              : {what}")
    report = run_segment(
        image_path,
        out / "labels.nii.gz",
        report_json=out / "report.json",
        html=out / "report.html",
        overlays_dir=out / "overlays",
        options=SegmentOptions(model=args.model, device=args.device),
    )
    print_summary(report)
    if ref_path.exists():
        from liverseg.metrics import dice

        pred = read_volume(out / "labels.nii.gz", kind="label").array
        ref = read_volume(ref_path, kind="label").array
        print(f"Liver Dice vs reference label: {dice(pred >= 1, ref >= 1):.3f}")
    print(f"Outputs            : {out}/labels.nii.gz, report.json, report.html, overlays/")
    return 0
