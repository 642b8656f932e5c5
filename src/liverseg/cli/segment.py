"""``liverseg segment``: CT in, liver/tumor label map, lesion table and report out."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from liverseg.errors import InputError, LiversegError

log = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".zip")
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

Batch mode: when INPUT is a folder of cases (volume files, .zip files, or sub-folders each holding
one DICOM series) OUTPUT is a folder: each case writes OUTPUT/<case>.nii.gz and a JSON report
<case>.report.json (into OUTPUT, or into the folder --report names); --html and --overlays then
name folders too. A failing case is
reported and the batch goes on; a summary table ends the run (exit 1 if any case failed).

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
    p.set_defaults(func=run)


def _is_batch(path: Path, args: argparse.Namespace | None = None) -> bool:
    """A folder is a batch when it holds volume files, zips, or sub-folders (not DICOM files itself).

    Single-case options (an OUTPUT file name like ``labels.nii.gz``, ``--series``, ``--dicom-seg``,
    ``--dicom-sr``) make it one case: a DICOM export of nested folders is then read as one input.
    """
    if not path.is_dir():
        return False
    if args is not None and (
        args.series or args.dicom_seg or args.dicom_sr or args.output.name.lower().endswith(_LABEL_SUFFIXES)
    ):
        return False
    entries = [e for e in path.iterdir() if not e.name.startswith(".")]
    if any(e.is_file() and e.name.lower().endswith(VOLUME_SUFFIXES) for e in entries):
        return True
    return bool(entries) and all(e.is_dir() for e in entries)


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


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


def _summary_line(report: dict) -> str:
    if not report.get("liver_found"):
        return "no liver found"
    return (
        f"liver {report['liver_volume_ml']:.0f} ml, {report['lesion_count']} lesion(s), "
        f"tumor {report['tumor_volume_ml']:.1f} ml ({report['tumor_burden_percent']:.2f}% of liver)"
    )


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
    if _is_batch(args.input, args):
        return _run_batch(args, options)
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


def _run_batch(args: argparse.Namespace, options) -> int:
    from liverseg.inference import run_segment

    if args.probabilities:
        raise LiversegError("--probabilities is a single-case option (not for a folder of cases)")
    cases = sorted(
        e
        for e in args.input.iterdir()
        if not e.name.startswith(".") and (e.is_dir() or e.name.lower().endswith(VOLUME_SUFFIXES))
    )
    if args.output.exists() and not args.output.is_dir():
        raise LiversegError(f"{args.output}: batch mode needs OUTPUT to be a folder")
    if args.output.resolve() == args.input.resolve():
        raise LiversegError(
            f"{args.output}: the output folder is the input folder; its label maps would be taken "
            "for cases (or overwrite them): choose another folder"
        )
    rows: list[tuple[str, str, str]] = []
    failed = 0
    for case in cases:
        name = _case_name(case)
        progress = _progress(args.quiet)
        try:
            report = run_segment(
                case,
                args.output / f"{name}.nii.gz",
                report_json=(args.report or args.output) / f"{name}.report.json",
                html=(args.html / f"{name}.html") if args.html else None,
                overlays_dir=(args.overlays / name) if args.overlays else None,
                options=options,
                progress=progress,
            )
            rows.append((name, "ok", _summary_line(report)))
        except LiversegError as exc:
            failed += 1
            rows.append((name, "FAILED", str(exc)))
            log.error("%s: %s", name, exc)
        finally:
            if progress is not None:
                progress.close()  # type: ignore[attr-defined]
    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'case':<{width}}  {'status':<6}  result")
    for name, status, msg in rows:
        print(f"{name:<{width}}  {status:<6}  {msg}")
    print(f"{len(rows) - failed} of {len(rows)} case(s) succeeded")
    return 1 if failed else 0
