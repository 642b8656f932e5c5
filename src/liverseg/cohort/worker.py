"""One case on one worker: hash the input, :func:`~liverseg.inference.run_segment`, return the files.

Both engines run cases through :class:`CaseWorker`: the local engine holds one in the driver
process, the Ray engine one per actor. A worker loads the model once when it starts
(:func:`liverseg.inference.prepare_model`); every case then calls the same ``run_segment`` as the
CLI and the web service, with its outputs in a private temporary folder, and returns their bytes.
The driver alone writes into the output folder (atomically, then the ledger record), so the
output folder only needs to be reachable from the driver, and a worker lost half-way through a
case leaves nothing behind.

:func:`segment_case` never raises an ``Exception``: a bad file, an out-of-memory error or a bug
in one case becomes a ``failed`` outcome with a one-line reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from liverseg.cohort.cases import Case, is_url
from liverseg.cohort.ledger import input_digest, input_signature
from liverseg.errors import InputError, LiversegError
from liverseg.inference import SegmentOptions, prepare_model, run_segment
from liverseg.inference.backends import set_cpu_threads
from liverseg.inference.loading import load_count

log = logging.getLogger(__name__)

__all__ = [
    "CaseOutcome",
    "CaseTask",
    "CaseWorker",
    "WorkerSettings",
    "describe_error",
    "local_input",
    "one_line",
    "segment_case",
    "worker_id",
]

MAX_ERROR_CHARS = 500
# how allocation failures read in the messages of NumPy, PyTorch, ONNX Runtime, ITK and the readers
ALLOCATION_FAILURE = re.compile(r"memory|alloc|voxel data|load failed", re.IGNORECASE)


@dataclass(frozen=True)
class WorkerSettings:
    """What every case of a cohort is segmented with.

    Attributes:
        options: model, device, backend and post-processing options (as ``liverseg segment``).
        html: also make the HTML report.
        overlays: also make the overlay pictures.
    """

    options: SegmentOptions = field(default_factory=SegmentOptions)
    html: bool = False
    overlays: bool = False


@dataclass(frozen=True)
class CaseTask:
    """One case to segment; ``expected_sha256``: an earlier result exists for an input with this hash."""

    case: Case
    expected_sha256: str | None = None


@dataclass
class CaseOutcome:
    """What a worker returns for one case.

    Attributes:
        case: case name.
        status: ``ok`` (segmented), ``unchanged`` (the input's hash equals ``expected_sha256``:
            not segmented again) or ``failed``.
        seconds: wall time on the worker.
        worker: ``host:pid``.
        input_sha256, input_signature: see :mod:`liverseg.cohort.ledger`.
        report: the JSON report (``ok`` only).
        files: output bytes by role: ``labels`` (.nii.gz), ``report`` (.json), ``html``,
            ``overlays/<name>.png`` (``ok`` only).
        error: one-line reason (``failed`` only).
        traceback: the exception's traceback (``failed`` only; the driver logs it with ``--debug``).
    """

    case: str
    status: str
    seconds: float
    worker: str
    input_sha256: str | None = None
    input_signature: str | None = None
    report: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def describe_error(exc: BaseException) -> str:
    """One line for the cohort table: the message of a liverseg error, else ``Type: message``."""
    if isinstance(exc, LiversegError):
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = f"out of memory (MemoryError: {exc})" if str(exc) else "out of memory (MemoryError)"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return one_line(text)


def one_line(text: str) -> str:
    """``text`` on one line (whitespace runs collapsed), at most MAX_ERROR_CHARS characters."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


@contextlib.contextmanager
def local_input(source: str) -> Iterator[Path]:
    """A local path for ``source``: itself, or a temporary copy of an fsspec URL (file or folder)."""
    if not is_url(source):
        path = Path(source)
        if not path.exists():
            raise InputError("does not exist (expected a CT file, a DICOM folder or .zip)", path)
        yield path
        return
    fs, remote = fsspec.core.url_to_fs(source)  # the protocol's driver (s3fs...) must be installed
    if not fs.exists(remote):
        raise InputError("does not exist (expected a CT file, a DICOM folder or .zip)", source)
    with tempfile.TemporaryDirectory(prefix="liverseg-input-") as tmp:
        target = Path(tmp) / remote.rstrip("/").rsplit("/", 1)[-1]
        if fs.isdir(remote):
            target.mkdir()
            fs.get(remote.rstrip("/") + "/", str(target) + "/", recursive=True)
        else:
            fs.get(remote, str(target))
        yield target


def segment_case(task: CaseTask, settings: WorkerSettings) -> CaseOutcome:
    """Segment one case into a temporary folder and return the outputs' bytes (never raises Exception)."""
    t0 = time.perf_counter()
    name = task.case.name
    sha = signature = None
    try:
        with local_input(task.case.input) as path:
            before = input_signature(task.case.input)
            sha = input_digest(path)
            signature = before if before == input_signature(task.case.input) else None
            if task.expected_sha256 is not None and sha == task.expected_sha256:
                return CaseOutcome(name, "unchanged", time.perf_counter() - t0, worker_id(), sha, signature)
            with tempfile.TemporaryDirectory(prefix=f"liverseg-{name[:40]}-") as tmp:
                out = Path(tmp)
                report = run_segment(
                    path,
                    out / "labels.nii.gz",
                    report_json=out / "report.json",
                    html=out / "report.html" if settings.html else None,
                    overlays_dir=out / "overlays" if settings.overlays else None,
                    options=settings.options,
                )
                files = {"labels": (out / "labels.nii.gz").read_bytes()}
                files["report"] = (out / "report.json").read_bytes()
                if settings.html:
                    files["html"] = (out / "report.html").read_bytes()
                if settings.overlays:
                    for png in sorted((out / "overlays").iterdir()):
                        files[f"overlays/{png.name}"] = png.read_bytes()
        return CaseOutcome(name, "ok", time.perf_counter() - t0, worker_id(), sha, signature, report, files)
    except Exception as exc:  # one case's failure, whatever it is, must not stop the cohort
        return CaseOutcome(
            name,
            "failed",
            time.perf_counter() - t0,
            worker_id(),
            sha,
            signature,
            error=describe_error(exc),
            traceback="".join(traceback.format_exception(exc)),
        )


def _peak_rss_gb() -> float | None:
    """This process's own peak resident memory (VmHWM, GB); None where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def limit_memory(limit_bytes: int) -> None:
    """Cap this process's data memory (heap and anonymous mappings: RLIMIT_DATA, Linux).

    An allocation beyond the cap fails with ``MemoryError`` (NumPy) or ``RuntimeError`` (PyTorch,
    ONNX Runtime) inside the case that made it, so that case fails and the worker goes on; the
    other workers on the node are not starved. Not enforced by other kernels (a warning says so).
    """
    if not sys.platform.startswith("linux"):
        log.warning("the memory bound per worker is enforced on Linux only (this is %s)", sys.platform)
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = limit_bytes if hard == resource.RLIM_INFINITY else min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


class CaseWorker:
    """A long-lived worker: loads the model once, then segments case after case.

    Args:
        settings: the cohort's settings (model, options, outputs).
        cpu_threads: CPU threads of the inference backend (None: all cores).
        memory_limit_bytes: cap on the process's data memory (None: no cap), see :func:`limit_memory`.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        cpu_threads: int | None = None,
        memory_limit_bytes: int | None = None,
    ) -> None:
        self.started = time.perf_counter()
        if memory_limit_bytes is not None:
            limit_memory(memory_limit_bytes)
        set_cpu_threads(cpu_threads)
        self.settings = settings
        self.memory_limit_bytes = memory_limit_bytes
        self.model = prepare_model(settings.options)  # loaded once: run_segment reuses it
        self.cases = 0

    def ready(self) -> dict[str, Any]:
        """The worker's id and the model it loaded (answers once the model is loaded)."""
        return {"worker": worker_id(), "model": self.model.bundle.describe(), "device": self.model.device}

    def segment(self, task: CaseTask) -> CaseOutcome:
        """Segment one case (see :func:`segment_case`)."""
        self.cases += 1
        outcome = segment_case(task, self.settings)
        if (
            outcome.status == "failed"
            and self.memory_limit_bytes is not None
            and ALLOCATION_FAILURE.search(outcome.error or "")
        ):
            # a library that cannot allocate says so in its own words ("nifti_image_load failed"):
            # name the cap, so that a scan too large for it is not taken for a broken file
            outcome.error = one_line(
                f"{outcome.error} [this worker's memory is capped at {self.memory_limit_bytes / 1e9:.1f} GB "
                "(--memory-per-worker); this may be an allocation beyond the cap]"
            )
        return outcome

    def stats(self) -> dict[str, Any]:
        """Cases done, model loads, CPU seconds, wall seconds and peak RSS of this worker process."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "worker": worker_id(),
            "cases": self.cases,
            "model_loads": load_count(),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "wall_s": round(time.perf_counter() - self.started, 2),
            "peak_rss_gb": _peak_rss_gb(),
        }
