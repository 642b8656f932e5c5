"""The cases of a cohort: a folder of cases or a manifest CSV.

A **folder of cases** holds volume files (``.nii.gz``, ``.nii``, ``.nrrd``, ``.nhdr``, ``.mha``,
``.mhd``), DICOM ``.zip`` files, or sub-folders each holding one DICOM series. The case name is
the file name without its volume suffix (``a.nii.gz`` -> ``a``) or the sub-folder's name.

A **manifest** is a CSV file (UTF-8, a header row) with a ``path`` column and an optional
``case`` column; other columns are ignored. A relative path is relative to the manifest's
folder; a path with a scheme (``s3://bucket/ct.nii.gz``, ``gs://...``, ``file:///...``) is read
through fsspec by the worker that segments it. Without ``case`` the name is derived from the path
as for a folder.

Case names become file names (``OUT_DIR/<case>.nii.gz``): they must be unique, non-empty, must
not start with a dot and must not contain a path separator.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from liverseg.errors import InputError
from liverseg.io.itk_files import ITK_READ_SUFFIXES

__all__ = [
    "VOLUME_SUFFIXES",
    "Case",
    "case_name",
    "discover_cases",
    "is_case_folder",
    "is_cohort_input",
    "is_manifest",
    "is_url",
    "read_manifest",
]

VOLUME_SUFFIXES = (*ITK_READ_SUFFIXES, ".zip")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Case:
    """One CT of a cohort.

    Attributes:
        name: unique case id, used as the stem of its output files.
        input: an absolute local path, or an fsspec URL (``s3://...``).
    """

    name: str
    input: str


def is_url(source: str) -> bool:
    """True when ``source`` has a URL scheme (``s3://``, ``file://``...), read through fsspec."""
    return bool(_URL.match(source))


def case_name(source: str) -> str:
    """The case name of a path or URL: its last part without a volume suffix."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_case_folder(path: Path) -> bool:
    """A folder is a folder of cases when it holds volume files, zips, or only sub-folders.

    A folder that holds DICOM files itself is one case (a DICOM series), not a folder of cases.
    """
    if not path.is_dir():
        return False
    entries = [e for e in path.iterdir() if not e.name.startswith(".")]
    if any(e.is_file() and e.name.lower().endswith(VOLUME_SUFFIXES) for e in entries):
        return True
    return bool(entries) and all(e.is_dir() for e in entries)


def is_manifest(path: Path) -> bool:
    """A ``.csv`` file is a manifest (a CT is never a CSV file)."""
    return path.suffix.lower() == ".csv" and path.is_file()


def is_cohort_input(path: Path) -> bool:
    """True for a folder of cases or a manifest, False for one CT (file, DICOM folder, zip)."""
    return is_manifest(path) or is_case_folder(path)


def discover_cases(path: Path) -> list[Case]:
    """The cases of a folder of cases (sorted by name) or of a manifest (in its row order)."""
    if is_manifest(path):
        return read_manifest(path)
    if not is_case_folder(path):
        raise InputError(
            "expected a folder of cases (volume files, .zip files or DICOM sub-folders) or a "
            "manifest .csv with a 'path' column",
            path,
        )
    entries = sorted(
        e
        for e in path.iterdir()
        if not e.name.startswith(".") and (e.is_dir() or e.name.lower().endswith(VOLUME_SUFFIXES))
    )
    cases = [Case(case_name(e.name), os.path.abspath(e)) for e in entries]
    _check_names(cases, path)
    return cases


def read_manifest(path: Path) -> list[Case]:
    """Read a manifest CSV (see the module docstring)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read the manifest ({exc})", path) from exc
    if "path" not in columns:
        raise InputError(f"a manifest needs a 'path' column; its columns are {columns}", path)
    cases = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        source = row.get("path", "")
        if not source:
            raise InputError(f"line {line}: empty 'path'", path)
        if not is_url(source):
            local = Path(source).expanduser()
            source = os.path.abspath(local if local.is_absolute() else path.parent / local)
        cases.append(Case(row.get("case") or case_name(source), source))
    if not cases:
        raise InputError("the manifest lists no case (expected a header row and one row per CT)", path)
    _check_names(cases, path)
    return cases


def _check_names(cases: list[Case], where: Path) -> None:
    bad = [c.name for c in cases if not c.name or c.name.startswith(".") or re.search(r"[/\\\x00]", c.name)]
    if bad:
        raise InputError(
            f"case names become file names: they must be non-empty, not start with '.' and hold no "
            f"path separator; got {bad[:5]}",
            where,
        )
    dupes = sorted(n for n, k in Counter(c.name for c in cases).items() if k > 1)
    if dupes:
        raise InputError(
            f"case names must be unique (they name the output files); repeated: {dupes[:10]}"
            + (" (give a 'case' column in the manifest)" if is_manifest(where) else ""),
            where,
        )
