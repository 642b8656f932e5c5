"""The resume ledger: which cases of a cohort are finished, from which input, by which model.

For every finished case the driver writes ``OUT_DIR/ledger/<case>.json`` **after** all of the
case's outputs (each written atomically) and removes it **before** it replaces any of them. So a
record exists only beside a complete set of outputs: a run interrupted half-way through a case
leaves no record, and the case is redone.

A case is skipped (its outputs kept) when its record names

* the same input: the same sha256 of the input's bytes (a DICOM folder: of its files' relative
  paths and sha256s). A local input whose size and modification time are unchanged since it was
  hashed is not read again (as ``make`` and ``rsync`` do); any other input is hashed again by a
  worker, which skips the segmentation when the hash matches;
* the same model: name, version, sha256 of the weights and of ``model.json``'s post-processing
  settings (thresholds, lesion model), and the same result-changing options (test-time
  augmentation, minimum lesion size). The device and the CPU backend are recorded
  but do not invalidate a result (a CPU run can be resumed on GPUs);
* the same set of outputs (a rerun that adds ``--html`` redoes the cases), all still present.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liverseg.catalog import resolve_model
from liverseg.cohort.cases import Case, is_url
from liverseg.utils import atomic_write_text, sha256_file

log = logging.getLogger(__name__)

__all__ = [
    "LEDGER_DIR",
    "Decision",
    "Ledger",
    "input_digest",
    "input_signature",
    "model_identity",
    "new_record",
]

LEDGER_DIR = "ledger"
RECORD_VERSION = 1


def input_digest(path: Path) -> str:
    """sha256 (hex) of a CT input: a file's bytes, or a folder's sorted (relative path, sha256) list."""
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
        return h.hexdigest()
    return sha256_file(path)


def input_signature(source: str) -> str | None:
    """A cheap fingerprint of a local input (sizes and modification times), None for a URL.

    Two equal signatures mean the input has not been touched since the earlier hash.
    """
    if is_url(source):
        return None
    path = Path(source)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        rel = f.relative_to(path).as_posix() if path.is_dir() else ""
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def model_identity(options: Any) -> dict[str, Any]:
    """What makes two results "made by the same model" (see the module docstring).

    Args:
        options: :class:`liverseg.inference.SegmentOptions`.
    """

    bundle = resolve_model(options.model)
    h = hashlib.sha256()
    for stage, path in sorted(bundle.stages.items()):
        h.update(f"{stage}\0{sha256_file(path)}\n".encode())
    post = json.dumps(bundle.info.get("postprocess", {}), sort_keys=True).encode()
    return {
        "name": bundle.name,
        "version": bundle.version,
        "weights_sha256": h.hexdigest(),
        "postprocess_sha256": hashlib.sha256(post).hexdigest(),  # thresholds, lesion model
        "tta": bool(options.tta),
        "min_lesion_mm3": options.min_lesion_mm3,
    }


@dataclass(frozen=True)
class Decision:
    """What to do with one case.

    Attributes:
        action: ``skip`` (finished earlier, same input), ``verify`` (finished earlier with the same
            model; a worker hashes the input and segments only if it changed) or ``run``.
        record: the earlier record, when there is one.
        reason: why (for the debug log).
    """

    action: str
    record: dict[str, Any] | None
    reason: str


class Ledger:
    """The ``OUT_DIR/ledger/`` folder of per-case records."""

    def __init__(self, out_dir: Path) -> None:
        self.folder = out_dir / LEDGER_DIR
        self.out_dir = out_dir

    def path(self, case: str) -> Path:
        return self.folder / f"{case}.json"

    def read(self, case: str) -> dict[str, Any] | None:
        """The record of ``case``, or None (absent; an unreadable record counts as absent)."""
        path = self.path(case)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable ledger record (%s): the case will be redone", path, exc)
            return None
        return record if record.get("record_version") == RECORD_VERSION else None

    def write(self, record: dict[str, Any]) -> None:
        atomic_write_text(self.path(record["case"]), json.dumps(record, indent=1, sort_keys=True))

    def remove(self, case: str) -> None:
        self.path(case).unlink(missing_ok=True)

    def relative(self, path: Path) -> str:
        """``path`` relative to OUT_DIR (so a moved OUT_DIR keeps its records valid)."""
        return os.path.relpath(path, self.out_dir)

    def decide(self, case: Case, outputs: list[Path], identity: dict[str, Any], *, force: bool) -> Decision:
        """Skip, verify or run ``case``; ``outputs``: its planned output files and overlay folder."""
        if force:
            return Decision("run", None, "--force")
        record = self.read(case.name)
        if record is None:
            return Decision("run", None, "no earlier result")
        if record.get("model") != identity:
            return Decision("run", record, "made by another model or with other options")
        if sorted(record.get("outputs", [])) != sorted(self.relative(p) for p in outputs):
            return Decision("run", record, "another set of outputs was asked for")
        if not all((self.out_dir / p).is_file() for p in record.get("files", [])):
            return Decision("run", record, "an output file is missing")
        if record.get("input") != case.input:
            return Decision("verify", record, "the input path changed")
        try:
            signature = input_signature(case.input)
        except OSError:  # gone or unreadable: a worker will say why
            signature = None
        if signature is not None and signature == record.get("input_signature"):
            return Decision("skip", record, "same input (unchanged since it was hashed)")
        return Decision("verify", record, "the input may have changed: hash it again")


def new_record(
    case: Case,
    *,
    sha256: str,
    signature: str | None,
    identity: dict[str, Any],
    outputs: list[str],
    files: list[str],
    row: dict[str, Any],
) -> dict[str, Any]:
    """A ledger record for a finished case.

    ``outputs``: the planned outputs (files, and the overlay folder); ``files``: every file
    written; both relative to OUT_DIR.
    """
    return {
        "record_version": RECORD_VERSION,
        "case": case.name,
        "input": case.input,
        "input_sha256": sha256,
        "input_signature": signature,
        "model": identity,
        "outputs": sorted(outputs),
        "files": sorted(files),
        "row": row,
    }
