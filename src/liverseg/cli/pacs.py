"""``liverseg pacs``: find studies, segment a study from the PACS, watch for new CT series.

The PACS is a DICOMweb server (QIDO-RS / WADO-RS / STOW-RS). Its URL comes from ``--url``, the
environment (``LIVERSEG_PACS_URL``) or the config file; credentials only from the environment
(``LIVERSEG_PACS_USERNAME`` / ``LIVERSEG_PACS_PASSWORD`` or ``LIVERSEG_PACS_TOKEN``) or the
config file (``--pacs-config FILE``, ``LIVERSEG_PACS_CONFIG``, ``~/.config/liverseg/pacs.yaml``),
never from the command line. See docs/dicom.md.

The PACS modules are imported inside the handlers: a lazy boundary that keeps ``liverseg --help``
fast (they pull in the inference stack).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="DICOMweb root URL, e.g. http://127.0.0.1:8042/dicom-web (no credentials)")
    p.add_argument("--pacs-config", type=Path, metavar="FILE", help="PACS config file (YAML/JSON, chmod 600)")


def _segment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="shipped model name, model folder or checkpoint")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--no-store", action="store_true", help="keep SEG and SR local; do not store them in the PACS"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pacs",
        help="segment CT from a DICOMweb PACS and store SEG + SR back",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="pacs_command", metavar="SUBCOMMAND")

    find = cmds.add_parser("find", help="search studies (QIDO-RS), or list a study's series")
    _common(find)
    find.add_argument("--patient-id", help="PatientID")
    find.add_argument("--study-date", help="StudyDate: YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    find.add_argument("--accession", help="AccessionNumber")
    find.add_argument("--modality", help="a modality in the study, e.g. CT")
    find.add_argument("--study", metavar="UID", help="list the series of this study instead")
    find.add_argument("--limit", type=int, default=None, help="at most this many results")
    find.add_argument("--json", action="store_true", help="print JSON")
    find.set_defaults(func=run_find)

    seg = cmds.add_parser(
        "segment",
        help="pull a study's CT (WADO-RS), segment it, store SEG + SR into the study (STOW-RS)",
        description="Pull the CT series of a study (chosen by the rules of `liverseg dicom ls`, or "
        "--series), segment it with the real pipeline, write labels.nii.gz, report.json, seg.dcm, "
        "sr.dcm and pacs.json into -o, and store seg.dcm and sr.dcm into the same study.",
    )
    _common(seg)
    seg.add_argument("--study", required=True, metavar="UID", help="StudyInstanceUID")
    seg.add_argument(
        "--series", metavar="UID_OR_NUMBER", help="series (UID, number or stack id) instead of the rules"
    )
    seg.add_argument("-o", "--output", type=Path, default=Path("liverseg-pacs"), help="output folder")
    seg.add_argument("--json", action="store_true", help="print the result as JSON")
    _segment_options(seg)
    seg.set_defaults(func=run_segment_cmd)

    w = cmds.add_parser(
        "watch",
        help="segment new CT series as they arrive (poll; resumable; each series once)",
        description=(
            "Poll the PACS for CT series and process each new one once: pull, segment, store SEG + SR "
            "into its study. A ledger (--state) records every series, so a restart resumes; failures "
            "are retried on later polls up to --max-attempts; series that cannot be segmented are "
            "recorded as rejected. --once processes what is there and exits."
        ),
    )
    _common(w)
    w.add_argument("--state", type=Path, default=Path("liverseg-pacs-watch.json"), help="ledger file")
    w.add_argument("-o", "--output", type=Path, default=Path("liverseg-pacs"), help="local results folder")
    w.add_argument("--once", action="store_true", help="process what is there now and exit")
    w.add_argument("--interval", type=float, default=60.0, help="seconds between polls (default 60)")
    w.add_argument("--max-attempts", type=int, default=3, help="tries per series (default 3)")
    w.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEYWORD=VALUE",
        help="only series matching this QIDO-RS filter, e.g. PatientID=123 or StudyDate=20240101- (repeatable)",
    )
    _segment_options(w)
    w.set_defaults(func=run_watch)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _client(args: argparse.Namespace) -> Any:
    from liverseg.pacs import PacsClient, load_pacs_config

    config = load_pacs_config(url=args.url, config_file=args.pacs_config)
    log.info("PACS: %s", config.describe())
    return PacsClient(config)


def _print_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    cells = [[h for _, h in columns]]
    for r in rows:
        cells.append(
            [
                "/".join(map(str, r.get(k) or []))
                if isinstance(r.get(k), list)
                else ("" if r.get(k) is None else str(r.get(k)))
                for k, _ in columns
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def run_find(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.study:
        rows = client.find_series(args.study, limit=args.limit)
        columns = [("SeriesNumber", "number"), ("Modality", "modality"), ("SeriesDescription", "description"),
                   ("NumberOfSeriesRelatedInstances", "images"), ("SeriesInstanceUID", "SeriesInstanceUID")]  # fmt: skip
    else:
        filters = {
            k: v
            for k, v in {
                "PatientID": args.patient_id,
                "StudyDate": args.study_date,
                "AccessionNumber": args.accession,
                "ModalitiesInStudy": args.modality,
            }.items()
            if v
        }
        rows = client.find_studies(filters, limit=args.limit)
        columns = [("StudyDate", "date"), ("PatientID", "patient"), ("StudyDescription", "description"),
                   ("ModalitiesInStudy", "modalities"), ("NumberOfStudyRelatedSeries", "series"),
                   ("StudyInstanceUID", "StudyInstanceUID")]  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, columns)
    else:
        print("no match")
    return 0


def _options(args: argparse.Namespace) -> Any:
    from liverseg.inference import SegmentOptions

    return SegmentOptions(model=args.model, device=args.device)


def run_segment_cmd(args: argparse.Namespace) -> int:
    from liverseg.pacs import segment_from_pacs

    client = _client(args)
    result = segment_from_pacs(
        client, args.study, args.output, series=args.series, options=_options(args), store=not args.no_store
    )
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"Series             : {summary['series_instance_uid']}")
    print(
        f"Result             : liver {summary['liver_volume_ml']:.0f} ml, {summary['lesion_count']} lesion(s), "
        f"tumor burden {summary['tumor_burden_percent']:.2f} %"
    )
    where = "stored into the study" if summary["stored"] else "kept local (--no-store)"
    print(
        f"DICOM-SEG, SR      : {summary['seg_sop_instance_uid']}, {summary['sr_sop_instance_uid']} ({where})"
    )
    print(f"Files              : {args.output}")
    return 0


def run_watch(args: argparse.Namespace) -> int:
    from liverseg.pacs import watch

    filters = {}
    for item in args.filter:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            from liverseg.errors import ConfigError

            raise ConfigError(f"--filter must be KEYWORD=VALUE, got {item!r}")
        filters[key.strip()] = value.strip()
    client = _client(args)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())  # finish the current series, then stop
    summary = watch(
        client,
        ledger_path=args.state,
        out_root=args.output,
        options=_options(args),
        once=args.once,
        interval_s=args.interval,
        max_attempts=args.max_attempts,
        store=not args.no_store,
        filters=filters,
        stop=stop,
    )
    print(
        f"{summary.polls} poll(s): {summary.done} series done, {summary.failed} failed, "
        f"{summary.rejected} rejected (ledger: {args.state})"
    )
    return 1 if summary.failed else 0
