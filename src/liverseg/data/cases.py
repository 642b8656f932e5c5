"""Building blocks shared by the source layouts: a discovered case, a loaded case, options.

A *layout* (see :mod:`liverseg.data.layouts`) turns a source folder into a list of
:class:`SourceCase`; calling ``SourceCase.load()`` reads it into a :class:`LoadedCase` (image in
HU + uint8 0/1/2 label map on the same grid + a record of how labels were mapped).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liverseg.errors import ConfigError, InputError
from liverseg.io.labels import LabelMap

if TYPE_CHECKING:
    from liverseg.io import Volume

__all__ = [
    "NIFTI_SUFFIXES",
    "LayoutOptions",
    "LoadedCase",
    "SourceCase",
    "apply_value_map",
    "case_number",
    "natural_key",
    "sanitize_id",
    "strip_image_suffix",
    "volume_files",
]

#: file suffixes read as volumes by the file-based layouts (``read_volume`` handles them)
NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


@dataclass(frozen=True)
class LayoutOptions:
    """Options of ``liverseg data prepare`` that some layouts use.

    Attributes:
        spacing_zyx: voxel size (mm, ``z, y, x``) for sources that do not store one (``mrc``).
        value_map: source label value -> liverseg label (0/1/2) for the label-file layouts
            (``lits``, ``msd``, ``nifti-pairs``, ``mrc``); ``None`` keeps the layout's default.
        window_hu: ``slice-export``: the HU range ``(low, high)`` that grey values 0..255 stand for.
        channel: ``slice-export``: ``gray``, ``R``, ``G`` or ``B`` (the channel holding the window).
        spacing_csv: ``slice-export``: sidecar CSV with the spacing per volume.
        case_prefix: ``slice-export``: case ids are ``<prefix>_<volume number>``.
    """

    spacing_zyx: tuple[float, float, float] | None = None
    value_map: Mapping[int, int] | None = None
    window_hu: tuple[float, float] | None = None
    channel: str | None = None
    spacing_csv: Path | None = None
    case_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.spacing_zyx is not None:
            sp = tuple(float(s) for s in self.spacing_zyx)
            if len(sp) != 3 or not all(np.isfinite(sp)) or min(sp) <= 0:
                raise ConfigError(f"--spacing needs 3 positive numbers Z Y X in mm, got {self.spacing_zyx}")
            object.__setattr__(self, "spacing_zyx", sp)
        if self.value_map is not None:
            bad = {k: v for k, v in self.value_map.items() if v not in (0, 1, 2)}
            if bad:
                raise ConfigError(f"--map targets must be 0, 1 or 2, got {bad}")
            object.__setattr__(self, "value_map", {int(k): int(v) for k, v in self.value_map.items()})
        if self.window_hu is not None:
            lo, hi = (float(v) for v in self.window_hu)
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ConfigError(f"--window needs LOW < HIGH in HU, got {self.window_hu}")
            object.__setattr__(self, "window_hu", (lo, hi))
        if self.case_prefix is not None and sanitize_id(self.case_prefix) != self.case_prefix:
            raise ConfigError(
                f"--case-prefix must be lower-case letters, digits and '_', got {self.case_prefix!r}"
            )


@dataclass(frozen=True)
class LoadedCase:
    """A source case read into memory.

    Attributes:
        image: CT ``Volume`` in HU, array ``(z, y, x)``.
        label: uint8 ``Volume`` with values 0/1/2 on exactly the image's grid.
        mapping: JSON-serialisable record of what was mapped to what (stored per case).
        warnings: problems worth a human look (also logged), stored per case.
        extra: further JSON-serialisable keys for the case's ``dataset.json`` entry (e.g.
            ``image_quality`` of a slice export).
    """

    image: Volume
    label: Volume
    mapping: dict[str, Any]
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceCase:
    """A case found in a source tree, not read yet.

    Attributes:
        case_id: stable id used for the output files (``ircadb_01``, ``lits_117``...).
        patient_id: patient grouping for splits.
        source: the file/folder it comes from.
        source_format: the layout name (``lits``, ``ircadb``...).
        load: reads the case (may raise :class:`~liverseg.errors.LiversegError`).
    """

    case_id: str
    patient_id: str
    source: Path
    source_format: str
    load: Callable[[], LoadedCase] = field(repr=False)


def sanitize_id(text: str) -> str:
    """A file-name-safe case id: lower case, runs of other characters become ``_``."""
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not out:
        raise InputError(f"cannot derive a case id from {text!r}")
    return out


def natural_key(text: str) -> list[object]:
    """Sort key with digit runs compared as numbers (``lits_2`` before ``lits_10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text.lower())]


def case_number(name: str) -> int | None:
    """The last integer in ``name`` (``3Dircadb1.17`` -> 17, ``chaos-ct-3`` -> 3), or None."""
    nums = re.findall(r"\d+", name)
    return int(nums[-1]) if nums else None


def strip_image_suffix(name: str) -> str | None:
    """``name`` without its volume suffix (``liver_3.nii.gz`` -> ``liver_3``), None if not a volume."""
    low = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return None


def volume_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Volume files (by :data:`NIFTI_SUFFIXES`) in ``folder``, skipping hidden/``._`` files."""
    it: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in it if p.is_file() and not p.name.startswith(".") and strip_image_suffix(p.name) is not None
    )


def apply_value_map(label: Volume, value_map: Mapping[int, int], *, path: Path | str | None = None) -> Volume:
    """Map source label values to liverseg labels (uint8 0/1/2).

    Args:
        label: source label volume (integer values; integral floats are accepted).
        value_map: source value -> target label; values absent from the map are an error.

    Raises:
        InputError: the label holds values the map does not cover (names them and the map).
    """
    arr = np.asarray(label.array)
    if arr.dtype.kind == "f":
        if not np.all(np.mod(arr, 1) == 0):
            raise InputError("expected an integer label map, got non-integral values", path)
        arr = arr.astype(np.int64)
    values = np.unique(arr).tolist()
    unknown = [v for v in values if v not in value_map]
    if unknown:
        raise InputError(
            f"label values {unknown} are not covered by the label mapping "
            f"{ {int(k): int(v) for k, v in value_map.items()} } (found values {values}); "
            "pass --map SRC=DST for each value",
            path,
        )
    lut_max = max(max(values), max(value_map)) if values else 0
    if min(values, default=0) < 0 or lut_max > 65535:
        out = np.zeros(arr.shape, np.uint8)
        for src, dst in value_map.items():
            out[arr == src] = dst
    else:
        lut = np.zeros(lut_max + 1, np.uint8)
        for src, dst in value_map.items():
            if src >= 0:
                lut[src] = dst
        out = lut[arr]
    return LabelMap.on(label, out)
