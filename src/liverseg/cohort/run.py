"""The cohort driver: plan (resume), run on an engine, write outputs, ledger and table.

Output layout (``OUT_DIR``; ``--report``/``--html``/``--overlays`` may name other folders)::

    OUT_DIR/<case>.nii.gz          label map on the input's grid
    OUT_DIR/<case>.report.json     the JSON report (docs/report_schema.md)
    HTML_DIR/<case>.html           with --html
    OVERLAYS_DIR/<case>/*.png      with --overlays
    OUT_DIR/ledger/<case>.json     the resume record, written last (liverseg.cohort.ledger)
    OUT_DIR/cohort.csv             one row per case (liverseg.cohort.table); cohort.parquet too
    OUT_DIR/.cohort.lock           held by the running driver: a second run on the folder is refused

Only the driver writes here. A case's outputs are replaced as a whole: its ledger record is
removed, each file is written atomically, then the record is written. A failed case keeps no
output (stale files of an earlier run of that case are removed with its record), so the folder
holds results only for cases the table says are ``ok``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from liverseg.cohort.cases import Case, is_url
from liverseg.cohort.engines import Engine
from liverseg.cohort.ledger import Decision, Ledger, model_identity, new_record
from liverseg.cohort.table import CohortTable, failed_row, ok_row, pending_row
from liverseg.cohort.worker import CaseOutcome, CaseTask, WorkerSettings, describe_error
from liverseg.errors import LiversegError, OutputError
from liverseg.inference import SegmentOptions
from liverseg.utils import atomic_write_bytes

log = logging.getLogger(__name__)

__all__ = ["LOCK_FILE", "CohortConfig", "CohortSummary", "run_cohort"]

LOCK_FILE = ".cohort.lock"  # one driver per output folder


@dataclass(frozen=True)
class CohortConfig:
    """Where a cohort's outputs go and how its cases are segmented.

    Attributes:
        out_dir: label maps, reports (unless ``report_dir``), ledger and table.
        options: as for ``liverseg segment`` (model, device, backend, TTA, minimum lesion size).
        report_dir: folder of the JSON reports (default ``out_dir``).
        html_dir: write ``<case>.html`` here (None: no HTML).
        overlays_dir: write ``<case>/*.png`` here (None: no overlays).
        force: redo every case, even those finished earlier with the same input and model.
    """

    out_dir: Path
    options: SegmentOptions = field(default_factory=SegmentOptions)
    report_dir: Path | None = None
    html_dir: Path | None = None
    overlays_dir: Path | None = None
    force: bool = False

    def outputs(self, case: str) -> dict[str, Path]:
        """Planned outputs of ``case`` by role (``overlays`` is a folder)."""
        out = {
            "labels": self.out_dir / f"{case}.nii.gz",
            "report": (self.report_dir or self.out_dir) / f"{case}.report.json",
        }
        if self.html_dir is not None:
            out["html"] = self.html_dir / f"{case}.html"
        if self.overlays_dir is not None:
            out["overlays"] = self.overlays_dir / case
        return out


@dataclass
class CohortSummary:
    """How a cohort run went (``rows``: the final table rows, in case order)."""

    engine: str
    rows: list[dict[str, Any]]
    segmented: int  # cases segmented (ok or failed) in this run; not those only re-hashed
    seconds: float
    table_csv: Path
    table_parquet: Path | None
    workers: list[dict[str, Any]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)

    @property
    def resumed(self) -> int:
        return sum(bool(r["resumed"]) for r in self.rows)

    @property
    def cases_per_minute(self) -> float:
        return 60.0 * self.segmented / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when every case is ok, else 1."""
        return 0 if self.count("ok") == len(self.rows) else 1


def run_cohort(
    cases: list[Case], config: CohortConfig, engine: Engine, *, show_progress: bool = True
) -> CohortSummary:
    """Segment ``cases`` on ``engine``, resuming earlier work in ``config.out_dir``.

    Raises:
        OutputError: the output folder cannot be used.
        LiversegError: the model cannot be resolved, or no worker can start.
        KeyboardInterrupt: after writing the table (unfinished cases stay ``pending``).
    """
    out_dir = config.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("a folder of cases needs OUTPUT to be a folder, not a file", out_dir)
    _check_inputs_untouched(cases, config)
    identity = model_identity(config.options)  # an unknown model fails here, before any work
    with _exclusive(out_dir):
        return _run(cases, config, engine, identity, show_progress)


def _check_inputs_untouched(cases: list[Case], config: CohortConfig) -> None:
    """Refuse outputs that would overwrite an input file or land inside an input folder."""
    inputs = {Path(c.input).resolve() for c in cases if not is_url(c.input)}
    for case in cases:
        for path in config.outputs(case.name).values():
            target = path.resolve()
            clash = next((p for p in (target, *target.parents) if p in inputs), None)
            if clash is not None:
                raise OutputError(
                    f"would overwrite or write inside the input {clash} (case {case.name!r}): choose "
                    "another output folder",
                    path,
                )


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT_DIR/.cohort.lock`` (released by the kernel even if this process is killed)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fh = open(out_dir / LOCK_FILE, "w")  # noqa: SIM115 (held for the whole run)
    except OSError as exc:
        raise OutputError(f"cannot use the output folder ({exc.strerror})", out_dir) from exc
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                "another liverseg cohort run is writing into this folder (wait for it, or choose another)",
                out_dir,
            ) from None
        yield
    finally:
        fh.close()


def _run(
    cases: list[Case], config: CohortConfig, engine: Engine, identity: dict[str, Any], show_progress: bool
) -> CohortSummary:
    out_dir = config.out_dir
    ledger = Ledger(out_dir)
    settings = WorkerSettings(config.options, config.html_dir is not None, config.overlays_dir is not None)
    table = CohortTable(out_dir / "cohort.csv", [pending_row(c.name, c.input) for c in cases])
    by_name = {c.name: c for c in cases}
    decisions: dict[str, Decision] = {}
    tasks: list[CaseTask] = []
    for case in cases:
        decision = ledger.decide(case, list(config.outputs(case.name).values()), identity, force=config.force)
        decisions[case.name] = decision
        log.debug("%s: %s (%s)", case.name, decision.action, decision.reason)
        if decision.action == "skip":
            assert decision.record is not None
            table.update({**decision.record["row"], "input": case.input, "resumed": True})
        else:
            expected = (
                decision.record["input_sha256"] if decision.action == "verify" and decision.record else None
            )
            tasks.append(CaseTask(case, expected))
    skipped = len(cases) - len(tasks)
    log.info(
        "%d case(s): %d finished earlier with the same input and model, %d to segment (engine %s)",
        len(cases),
        skipped,
        len(tasks),
        engine.name,
    )
    table.flush(force=True)
    bar = _bar(len(tasks), show_progress)
    t0 = time.perf_counter()
    done = segmented = 0
    try:
        with contextlib.closing(engine.run(tasks, settings)) as outcomes:  # type: ignore[arg-type]
            for outcome in outcomes:
                case = by_name[outcome.case]
                row = _commit(case, outcome, decisions[case.name], config, ledger, identity)
                table.update(row)
                table.flush()
                done += 1
                segmented += outcome.status != "unchanged"
                _report_progress(bar, row, done, len(tasks), time.perf_counter() - t0, table.counts())
    finally:
        if bar is not None:
            bar.close()
        table.flush(force=True)
        parquet = table.write_parquet()
    return CohortSummary(
        engine.name,
        list(table.rows.values()),
        segmented,
        time.perf_counter() - t0,
        table.csv_path,
        parquet,
        engine.worker_stats(),
    )


def _commit(
    case: Case,
    outcome: CaseOutcome,
    decision: Decision,
    config: CohortConfig,
    ledger: Ledger,
    identity: dict[str, Any],
) -> dict[str, Any]:
    """Write one outcome into the output folder; return its table row."""
    worker = outcome.worker or None
    if outcome.status == "unchanged":
        assert decision.record is not None
        record = {**decision.record, "input": case.input, "input_signature": outcome.input_signature}
        ledger.write(record)
        return {**record["row"], "input": case.input, "resumed": True}
    if outcome.status == "ok":
        assert outcome.report is not None and outcome.input_sha256 is not None
        row = ok_row(
            case.name,
            case.input,
            outcome.report,
            seconds=outcome.seconds,
            worker=outcome.worker,
            sha256=outcome.input_sha256,
        )
        try:
            files = _write_outputs(case, outcome, decision, config, ledger)
            planned = [ledger.relative(p) for p in config.outputs(case.name).values()]
            ledger.write(
                new_record(
                    case,
                    sha256=outcome.input_sha256,
                    signature=outcome.input_signature,
                    identity=identity,
                    outputs=planned,
                    files=files,
                    row=row,
                )
            )
            return row
        except (OSError, LiversegError) as exc:  # e.g. a full disk: this case failed, say why
            error = f"writing the outputs failed: {describe_error(exc)}"
    else:
        error = outcome.error or "failed (no reason given)"
        if outcome.traceback:
            log.debug("%s: traceback on %s:\n%s", case.name, outcome.worker, outcome.traceback)
    _remove_outputs(case, decision, config, ledger)
    log.warning("%s: failed: %s", case.name, error)
    return failed_row(
        case.name, case.input, error, seconds=outcome.seconds, worker=worker, sha256=outcome.input_sha256
    )


def _write_outputs(
    case: Case, outcome: CaseOutcome, decision: Decision, config: CohortConfig, ledger: Ledger
) -> list[str]:
    """Replace the case's outputs with the outcome's files; their paths relative to OUT_DIR."""
    planned = config.outputs(case.name)
    targets: dict[Path, bytes] = {}
    for role, data in outcome.files.items():
        if role.startswith("overlays/"):
            targets[planned["overlays"] / role.split("/", 1)[1]] = data
        else:
            targets[planned[role]] = data
    ledger.remove(case.name)  # from here on the case is not done until its new record is written
    stale = [ledger.out_dir / f for f in (decision.record or {}).get("files", [])]
    if "overlays" in planned and planned["overlays"].is_dir():
        stale += list(planned["overlays"].glob("*.png"))  # e.g. a lesion picture of an earlier run
    for path in stale:
        if path not in targets:
            path.unlink(missing_ok=True)
    for path, data in targets.items():
        atomic_write_bytes(path, data)
    return sorted(ledger.relative(p) for p in targets)


def _remove_outputs(case: Case, decision: Decision, config: CohortConfig, ledger: Ledger) -> None:
    """A failed case keeps no output: its record, its planned files and earlier files go."""
    ledger.remove(case.name)
    planned = config.outputs(case.name)
    paths = [ledger.out_dir / f for f in (decision.record or {}).get("files", [])]
    paths += [p for role, p in planned.items() if role != "overlays"]
    if "overlays" in planned and planned["overlays"].is_dir():
        paths += list(planned["overlays"].glob("*.png"))
    for path in paths:
        path.unlink(missing_ok=True)
    if "overlays" in planned and planned["overlays"].is_dir() and not any(planned["overlays"].iterdir()):
        shutil.rmtree(planned["overlays"])


def _bar(total: int, show: bool) -> Any:
    if not show or total == 0 or not sys.stderr.isatty():  # no bar in pipes and logs
        return None

    return tqdm(total=total, desc="cohort", unit="case", dynamic_ncols=True, smoothing=0.05, file=sys.stderr)


def _report_progress(
    bar: Any, row: dict[str, Any], done: int, total: int, elapsed: float, counts: dict[str, int]
) -> None:
    if bar is not None:
        bar.set_postfix(ok=counts["ok"], failed=counts["failed"], refresh=False)
        bar.update(1)
        return
    rate = done / elapsed if elapsed > 0 else 0.0
    left = (total - done) / rate if rate > 0 else float("nan")
    log.info(
        "[%d/%d] %s %s in %.1f s (%.1f cases/min, about %s left)",
        done,
        total,
        row["case"],
        row["status"],
        row["seconds"] or 0.0,
        60 * rate,
        _duration(left),
    )


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "?"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else (f"{m}m{s:02d}s" if m else f"{s}s")
