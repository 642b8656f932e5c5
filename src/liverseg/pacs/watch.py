"""``liverseg pacs watch``: segment new CT series as they arrive in the PACS, each one once.

Every poll lists the server's CT series (QIDO-RS). A series is processed (pulled, segmented,
SEG + SR stored back into its study: :func:`~liverseg.pacs.segment.segment_from_pacs`) when

* the ledger has no final state for it (``done`` or ``rejected``), and it has failed fewer than
  ``max_attempts`` times;
* and, when polling continuously, its number of instances did not change since the previous
  poll (a series still arriving is not taken half-way). ``--once`` takes what is there.

The ledger is a JSON file written atomically after every change, so the watcher resumes where it
stopped: ``done`` and ``rejected`` series are never processed again; a series marked ``running``
when the process died counts as a failed attempt. ``rejected`` means the series holds nothing to
segment (no regular stack of slices: a localizer-only or a broken series,
:class:`~liverseg.pacs.segment.NothingToSegmentError`), which a retry would not change; any other
failure (PACS unreachable, undecodable pixels, a bad model, an unexpected error) is ``failed``
and retried on later polls up to ``max_attempts``. A lock file keeps two watchers off one ledger.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liverseg.errors import ConfigError, LiversegError, PacsError
from liverseg.inference import SegmentOptions
from liverseg.pacs.client import PacsClient
from liverseg.pacs.segment import NothingToSegmentError, segment_from_pacs
from liverseg.utils import atomic_write_text

__all__ = ["Ledger", "WatchSummary", "watch"]

log = logging.getLogger(__name__)
LEDGER_VERSION = 1
FINAL = ("done", "rejected")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """The watcher's record: ``{series UID: {study, status, attempts, error, ...}}`` in a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.series: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{self.path}: cannot read the watch ledger ({exc})") from exc
            if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
                raise ConfigError(f"{self.path}: not a liverseg watch ledger (version {LEDGER_VERSION})")
            self.series = dict(data.get("series", {}))

    def get(self, uid: str) -> dict[str, Any] | None:
        return self.series.get(uid)

    def update(self, uid: str, **fields: Any) -> dict[str, Any]:
        entry = {**self.series.get(uid, {}), **fields, "updated": _now()}
        self.series[uid] = entry
        atomic_write_text(
            self.path, json.dumps({"version": LEDGER_VERSION, "series": self.series}, indent=2) + "\n"
        )
        return entry

    @contextlib.contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold an exclusive lock on ``<ledger>.lock`` (another watcher on this ledger is an error)."""

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(self.path.with_name(self.path.name + ".lock"), "w")  # noqa: SIM115 - held while watching
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise ConfigError(f"{self.path}: another liverseg pacs watch uses this ledger") from exc
            lock.write(str(os.getpid()))
            lock.flush()
            yield self
        finally:
            lock.close()


@dataclass
class WatchSummary:
    """Counts of one ``watch`` run."""

    polls: int = 0
    done: int = 0
    failed: int = 0
    rejected: int = 0

    @property
    def processed(self) -> int:
        return self.done + self.failed + self.rejected


def _due(entry: dict[str, Any] | None, max_attempts: int) -> bool:
    if entry is None:
        return True
    return entry.get("status") not in FINAL and int(entry.get("attempts", 0)) < max_attempts


def _process(
    client: PacsClient,
    ledger: Ledger,
    item: dict[str, Any],
    out_root: Path,
    options: SegmentOptions,
    store: bool,
) -> str:
    uid, study = item["SeriesInstanceUID"], item["StudyInstanceUID"]
    previous = ledger.get(uid) or {}
    ledger.update(
        uid, study=study, status="running", attempts=int(previous.get("attempts", 0)) + 1, error=None
    )
    try:
        result = segment_from_pacs(
            client, study, out_root / study / uid, series=uid, options=options, store=store
        )
    except NothingToSegmentError as exc:
        log.warning("series %s rejected: %s", uid, exc)
        ledger.update(uid, status="rejected", error=str(exc))
        return "rejected"
    except Exception as exc:  # recorded, retried later; the watcher itself goes on
        if not isinstance(exc, LiversegError):
            log.exception("series %s failed unexpectedly", uid)
        else:
            log.error("series %s failed: %s", uid, exc)
        ledger.update(uid, status="failed", error=f"{type(exc).__name__}: {exc}")
        return "failed"
    ledger.update(
        uid,
        status="done",
        seg_sop_instance_uid=result.seg_sop_instance_uid,
        sr_sop_instance_uid=result.sr_sop_instance_uid,
        stored=result.stored,
        lesion_count=result.report["lesion_count"],
        out_dir=str(result.out_dir),
    )
    return "done"


def watch(
    client: PacsClient,
    *,
    ledger_path: str | Path,
    out_root: str | Path,
    options: SegmentOptions = SegmentOptions(),
    once: bool = False,
    interval_s: float = 60.0,
    max_attempts: int = 3,
    store: bool = True,
    modality: str = "CT",
    filters: dict[str, str] | None = None,
    stop: threading.Event | None = None,
    max_polls: int | None = None,
) -> WatchSummary:
    """Poll the PACS and process new series (see the module docstring) until stopped.

    Args:
        client: the PACS.
        ledger_path: the JSON ledger (created if absent).
        out_root: local results go to ``out_root/<study>/<series>/``.
        once: process what is there now and return.
        interval_s: seconds between polls.
        max_attempts: tries per series before it is left alone.
        store: store SEG + SR into the PACS (STOW-RS).
        modality: the modality of the series to process.
        filters: more QIDO-RS series filters (e.g. ``{"InstitutionName": "..."}``).
        stop: set it to stop after the current series.
        max_polls: stop after this many polls (tests, cron-like use).

    Raises:
        ConfigError: the ledger is unreadable or in use by another watcher.
        PacsError: with ``once``, the series search failed (continuous watching logs it and
            tries again at the next poll).
    """
    if max_attempts < 1 or interval_s <= 0:
        raise ConfigError(
            f"max_attempts must be >= 1 and interval_s > 0, got {max_attempts} and {interval_s}"
        )
    stop = stop or threading.Event()
    out = Path(out_root)
    summary = WatchSummary()
    counts: dict[str, Any] = {}
    with Ledger(ledger_path).locked() as ledger:
        while not stop.is_set():
            summary.polls += 1
            try:
                found = client.find_series(modality=modality, filters=filters)
            except PacsError as exc:
                if once:
                    raise
                log.error("%s; trying again in %.0f s", exc, interval_s)
                found = []
            for item in sorted(
                found, key=lambda s: (s["StudyInstanceUID"] or "", s.get("SeriesNumber") or 0)
            ):
                uid = item["SeriesInstanceUID"]
                if stop.is_set() or not uid or not _due(ledger.get(uid), max_attempts):
                    continue
                n = item.get("NumberOfSeriesRelatedInstances")
                if not once and counts.get(uid) != n:  # new or still growing: look again next poll
                    counts[uid] = n
                    continue
                outcome = _process(client, ledger, item, out, options, store)
                setattr(summary, outcome, getattr(summary, outcome) + 1)
            if once or (max_polls is not None and summary.polls >= max_polls):
                break
            stop.wait(interval_s)
    log.info(
        "watch: %d poll(s), %d done, %d failed, %d rejected",
        summary.polls,
        summary.done,
        summary.failed,
        summary.rejected,
    )
    return summary
