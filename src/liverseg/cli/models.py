"""``liverseg models``: the table of the model zoo (name, description, size, cost, defaults)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["format_table", "register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` command."""
    parser = subparsers.add_parser(
        "models",
        help="list the segmentation networks with their size and cost",
        description="List the registered networks: parameters (millions) and GFLOPs (2 per "
        "multiply-accumulate, convolutions only) for one slice, with their default arguments.",
    )
    parser.add_argument(
        "--in-channels",
        type=int,
        default=5,
        metavar="C",
        help="input channels: 1, or 2k+1 adjacent slices (default: 5)",
    )
    parser.add_argument("--out-channels", type=int, default=3, metavar="K", help="classes (default: 3)")
    parser.add_argument(
        "--size",
        type=int,
        default=256,
        metavar="PX",
        help="slice height and width in pixels for the GFLOPs column (default: 256)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute every model's info (on the meta device: nothing is allocated) and print the table."""
    from liverseg.models import MODELS, model_class, model_info

    rows = []
    for name in MODELS:
        info = model_info(name, args.in_channels, args.size, out_channels=args.out_channels)
        rows.append({**info, "description": model_class(name).description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        sys.stdout.write(format_table(rows, size=args.size, in_channels=args.in_channels))
    return 0


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v!r}" for k, v in kwargs.items())


def format_table(rows: list[dict[str, Any]], *, size: int, in_channels: int) -> str:
    """A plain-text table of ``model_info`` rows (with a ``description``), one line per model."""
    header = ["name", "description", "params (M)", f"GFLOPs/{size}x{size}", "default kwargs"]
    body = [
        [
            r["name"],
            r["description"],
            f"{r['params'] / 1e6:.2f}",
            f"{r['gflops']:.2f}",
            _kwargs_text(r["kwargs"]),
        ]
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    right = {2, 3}

    def fmt(line: list[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [fmt(header), rule, *(fmt(b) for b in body), f"(in_channels={in_channels}; batch of one slice)"]
    return "\n".join(lines) + "\n"
