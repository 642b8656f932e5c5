"""``liverseg dicom ls``: the series and stacks of a DICOM export, and which one would be read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = """\
List the image stacks of a DICOM folder, .zip or DICOMDIR: one row per candidate stack (series
number, description, modality, image type, orientation, slices, slice thickness, spacing,
coverage, stack id / SeriesInstanceUID) with the one `liverseg segment` would read marked `*`
and why each other one was not chosen; then the groups of slices that are not a regular stack
and the files left out, with the reason. Reads headers only. The rules: docs/dicom.md.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dicom",
        help="inspect DICOM exports (series, stacks, what would be read)",
        description="DICOM tools. `liverseg dicom ls PATH` lists what a DICOM export holds.",
    )
    cmds = p.add_subparsers(dest="dicom_command", metavar="SUBCOMMAND")
    ls = cmds.add_parser(
        "ls",
        help="list series / stacks and the choice",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("path", type=Path, help="DICOM folder, .zip or DICOMDIR")
    ls.add_argument(
        "--series", metavar="UID_OR_NUMBER", help="show the choice as `segment --series` would make it"
    )
    ls.add_argument("--json", action="store_true", help="print the full account as JSON (for scripts)")
    ls.set_defaults(func=run_ls)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.{digits}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def _row(s: dict[str, Any], mark: str, why: str) -> list[str]:
    spacing = "x".join(_fmt(v) for v in s["spacing_zyx_mm"]) if s.get("spacing_zyx_mm") else "-"
    return [
        mark,
        _fmt(s["series_number"]),
        (s["series_description"] or "")[:28],
        s["modality"] or "-",
        s["image_type"] or "-",
        s["orientation"] + (f" tilt {s['tilt_deg']:g}" if s.get("tilt_deg") else ""),
        str(s["n_slices"]) + (" (mf)" if s.get("multiframe") else ""),
        _fmt(s["slice_thickness_mm"]),
        spacing,
        _fmt(s["extent_mm"], 0),
        why,
        s["stack_id"],
    ]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def run_ls(args: argparse.Namespace) -> int:
    from liverseg.io import inspect_dicom

    sel = inspect_dicom(args.path, series=args.series)
    account = sel.to_dict()
    if args.json:
        account["skipped"] = [s.to_dict() for s in [*sel.dropped, *sel.skipped]]  # all of them
        print(json.dumps(account, indent=2))
        return 0
    header = ["", "series", "description", "modality", "image type", "orientation", "slices", "thick mm",
              "spacing mm (z,y,x)", "cover mm", "choice", "stack id / SeriesInstanceUID"]  # fmt: skip
    rows = [_row(account["chosen"], "*", f"read: {account['why']}")]
    rows += [_row(a, "", f"not read: {a['why_not']}") for a in account["alternatives"]]
    print(_table(rows, header))
    if account["rejected"]:
        print("\nNot a regular stack (not read):")
        for g in account["rejected"]:
            print(
                f"  series {_fmt(g['series_number'])} ({g['n_files']} files, {g['orientation']}): {g['reason']}"
            )
    skipped = [*sel.dropped, *sel.skipped]
    if skipped:
        by_reason: dict[str, list[str]] = {}
        for s in skipped:
            by_reason.setdefault(s.reason, []).append(s.member)
        print(f"\nLeft out ({len(skipped)} of {sel.n_files} files):")
        for reason, files in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            more = f" and {len(files) - 3} more" if len(files) > 3 else ""
            print(f"  {len(files):>4}  {reason}: {', '.join(files[:3])}{more}")
    for w in sel.warnings():
        if "equally good" in w:
            print(f"\nwarning: {w}")
    return 0
