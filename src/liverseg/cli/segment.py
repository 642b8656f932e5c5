"""``liverseg segment``: CT in, liver/tumor label map, lesion table and report out."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from liverseg.cli.segment_cohort import (
    add_cohort_arguments,
    check_single_case,
    is_cohort,
    run_cohort_command,
)
from liverseg.errors import InputError, LiversegError

log = logging.getLogger(__name__)

# an OUTPUT with one of these suffixes is a label map file: the INPUT folder is then one case
_LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

HELP = """\
Segment the liver (label 1) and liver tumors (label 2) in a CT.

INPUT is a CT file (NIfTI, NRRD, MHA) or a DICOM export: a folder, a .zip or a DICOMDIR. From a
DICOM export one regular stack of slices is read: localizers, reformats, dose reports and other
non-image objects are left out with a warning naming the files, and among several series the
choice follows documented rules (CT, original, axial, covering the abdomen, slice thickness,
slices) unless --series picks one; `liverseg dicom ls INPUT` shows the choice beforehand
(docs/dicom.md). OUTPUT is the label map (uint8 NIfTI) with exactly the input's grid (shape,
spacing, origin, direction; a gantry-tilted series is first resampled onto a regular grid).

Cohort (batch) mode: when INPUT is a folder of cases (volume files, .zip files, or sub-folders each
holding one DICOM series) or a manifest .csv (a 'path' column, optional 'case'), OUTPUT is a
folder: each case writes OUTPUT/<case>.nii.gz and a JSON report <case>.report.json (into OUTPUT,
or into the folder --report names); --html and --overlays then name folders too. OUTPUT/cohort.csv
holds one row per case (volumes, burden, lesions, status, error), updated as cases finish. Cases
finished earlier with the same input and model are skipped (--force redoes them), so an
interrupted run continues where it stopped. A failing case is reported and the run goes on
(exit 1 if any case failed). --engine ray runs the cases on a Ray cluster (docs/cohort.md).

If no liver is found (head CT, chest-only scan) an empty label map is written, the report and
stderr say so, and the exit code is 0. Research use, not a medical device.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment liver and tumors in a CT",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, help="CT file, DICOM folder/.zip, or a folder of cases")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="label map .nii.gz (or a folder in batch mode)"
    )
    p.add_argument("--report", type=Path, help="write the JSON report (schema: docs/report_schema.md)")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report")
    p.add_argument("--overlays", type=Path, metavar="DIR", help="write overlay PNGs into DIR")
    p.add_argument("--dicom-seg", type=Path, help="write a DICOM Segmentation object (DICOM input only)")
    p.add_argument(
        "--dicom-sr",
        type=Path,
        help="write a DICOM structured report (TID 1500 measurements; needs --dicom-seg)",
    )
    p.add_argument(
        "--series",
        metavar="UID_OR_NUMBER",
        help="DICOM input: read this series (SeriesInstanceUID, SeriesNumber or stack id of `liverseg dicom ls`)",
    )
    p.add_argument("--probabilities", type=Path, help="write class probabilities (3-component NIfTI)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--model",
        default="default",
        help="shipped model name, model folder or checkpoint (default: %(default)s)",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="CPU inference backend (auto: the one measured faster for the model)",
    )
    p.add_argument("--tta", action="store_true", help="test-time augmentation (3 scales; ~3x slower stage 2)")
    p.add_argument(
        "--min-lesion-mm3",
        type=float,
        default=None,
        help="tumor components smaller than this become liver (default: the model's value, "
        "100 for the shipped model)",
    )
    add_cohort_arguments(p)
    p.set_defaults(func=run)


def _one_case(args: argparse.Namespace) -> bool:
    """Single-case options make a folder one case, not a folder of cases.

    An OUTPUT file name like ``labels.nii.gz``, ``--series``, ``--dicom-seg`` or ``--dicom-sr``: a
    DICOM export of nested folders is then read as one input.
    """
    return bool(
        args.series or args.dicom_seg or args.dicom_sr or args.output.name.lower().endswith(_LABEL_SUFFIXES)
    )


def _options(args: argparse.Namespace):
    from liverseg.inference import SegmentOptions

    if args.min_lesion_mm3 is not None and args.min_lesion_mm3 < 0:
        raise LiversegError(f"--min-lesion-mm3 must be >= 0, got {args.min_lesion_mm3}")
    return SegmentOptions(
        model=args.model,
        device=args.device,
        tta=args.tta,
        min_lesion_mm3=args.min_lesion_mm3,
        backend=args.backend,
    )


def _progress(quiet: bool):
    if quiet or not sys.stderr.isatty():  # no progress bar in pipes and logs
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc="segment", leave=False, dynamic_ncols=True, file=sys.stderr)
    state = {"stage": ""}

    def update(stage: str, fraction: float) -> None:
        if stage != state["stage"]:
            state["stage"] = stage
            bar.set_description(stage)
        bar.n = round(100 * fraction)
        bar.refresh()

    update.close = bar.close  # type: ignore[attr-defined]
    return update


def print_summary(report: dict) -> None:
    """Print the scan summary and lesion table (stdout)."""
    dicom = report.get("input", {}).get("dicom")
    if dicom:
        sel = dicom["selection"]
        left_out = sel["n_skipped"] + sum(len(g["files"]) for g in sel["rejected"])
        print(
            f"DICOM series       : {dicom['series_number']} {dicom['series_description']!r} "
            f"({sel['chosen']['n_slices']} slices; {sel['why']}; {len(sel['alternatives'])} other "
            f"stack(s), {left_out} file(s) left out: see the warnings and the JSON report)"
        )
    print(f"Liver found        : {'yes' if report['liver_found'] else 'NO'}")
    print(f"Liver volume       : {report['liver_volume_ml']:.1f} ml")
    print(f"Tumor volume       : {report['tumor_volume_ml']:.2f} ml")
    print(f"Tumor burden       : {report['tumor_burden_percent']:.2f} % of liver")
    possible = report.get("possible_lesion_count", 0)
    print(
        f"Lesions            : {report['lesion_count']}"
        + (f" (+ {possible} possible, low confidence, not counted)" if possible else "")
    )
    if report["lesions"]:
        print(
            f"{'id':>3} {'volume ml':>10} {'long mm':>8} {'short mm':>8} {'RECIST':>6} {'conf':>5}  location"
        )
        for les in report["lesions"]:
            loc = les.get("location", {})
            loc_s = str(loc.get("description", "")) if isinstance(loc, dict) else str(loc)
            conf = les.get("confidence")
            conf_s = "n/a" if conf is None else f"{100 * conf:.0f}%"
            recist = "-" if les.get("possible") else ("yes" if les["recist_measurable"] else "no")
            flag = "  POSSIBLE (not counted)" if les.get("possible") else ""
            print(
                f"{les['id']:>3} {les['volume_ml']:>10.2f} {les['longest_axial_diameter_mm']:>8.1f} "
                f"{les['short_axis_mm']:>8.1f} {recist:>6} {conf_s:>5}  {loc_s}{flag}"
            )
    total = report.get("timings_s", {}).get("total")
    if total is not None:
        print(f"Runtime            : {total:.1f} s ({report['model']['name']} {report['model']['version']})")


def run(args: argparse.Namespace) -> int:
    if not args.input.exists():
        raise InputError("does not exist (expected a CT file, a DICOM folder or .zip)", args.input)
    options = _options(args)
    # a manifest is always a cohort; a folder of cases is one unless single-case options say otherwise
    if is_cohort(args.input) and (args.input.is_file() or not _one_case(args)):
        return run_cohort_command(args, options)
    check_single_case(args)
    from liverseg.inference import run_segment

    progress = _progress(args.quiet)
    try:
        report = run_segment(
            args.input,
            args.output,
            report_json=args.report,
            html=args.html,
            overlays_dir=args.overlays,
            dicom_seg=args.dicom_seg,
            dicom_sr=args.dicom_sr,
            probabilities=args.probabilities,
            options=options,
            progress=progress,
            series=args.series,
        )
    finally:
        if progress is not None:
            progress.close()  # type: ignore[attr-defined]
    if not report["liver_found"]:
        print(f"liverseg: warning: {args.input}: no liver found; wrote an empty label map", file=sys.stderr)
    if not args.quiet:
        print_summary(report)
    log.info("wrote %s", args.output)
    return 0
