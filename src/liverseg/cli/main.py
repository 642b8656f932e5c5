"""``liverseg`` entry point.

Exit codes: 0 success, 1 failure (one line naming the file and the problem; a traceback only
with ``--debug``), 2 usage error (argparse). Each command module under ``liverseg.cli`` exposes
``register(subparsers)``, which adds its parser(s) and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from liverseg import __version__
from liverseg.errors import LiversegError

log = logging.getLogger("liverseg")

# The explicit list of command modules, in the order ``--help`` shows them.
COMMAND_MODULES: tuple[str, ...] = (
    "segment",
    "dicom",
    "pacs",
    "demo",
    "data",
    "evaluate",
    "synth",
    "synth_lesions",
    "models",
    "train",
    "experiments",
    "serve",
    "users",
    "db",
)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="liverseg",
        description="Liver and liver-tumor segmentation in abdominal CT (labels 0 background, 1 liver, "
        "2 tumor). Research use, not a medical device.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"liverseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"liverseg.cli.{name}")
        module.register(sub)
    return parser


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(levelname)s: %(message)s" if not debug else "%(asctime)s %(name)s %(levelname)s: %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("matplotlib", "PIL", "urllib3", "multipart", "highdicom", "pydicom"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by ``python -m liverseg``)."""
    parser = build_parser()
    # Accept --debug/--quiet anywhere on the line, not only before the command.
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    quiet = "--quiet" in argv or "-q" in argv
    argv = [a for a in argv if a not in ("--debug", "--quiet", "-q")]
    args = parser.parse_args(argv)
    args.debug, args.quiet = debug, quiet
    _configure_logging(debug, quiet)
    from liverseg.utils import set_progress_enabled

    set_progress_enabled(not quiet)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except LiversegError as exc:
        if debug:
            log.exception("failed")
        print(f"liverseg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("liverseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or an error we did not anticipate: still one line by default
        if debug:
            raise
        print(
            f"liverseg: error: {type(exc).__name__}: {exc} (run with --debug for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
