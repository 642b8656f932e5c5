"""Candidate image stacks of a DICOM export (what could be read as one volume).

The image headers of a scan (:mod:`liverseg.io.dicom_scan`) are grouped per series, then within
a series into *consistent groups*: same orientation, pixel spacing, matrix size and image flavour
(``ImageType`` values 1-3, e.g. ``ORIGINAL/PRIMARY/AXIAL`` versus ``DERIVED/SECONDARY/REFORMATTED``).
A coronal reformat saved into an axial series therefore forms its own group. Each group of two
or more slices is ordered along its normal (:func:`~liverseg.io.dicom_geometry.order_slices`);
when that fails (duplicate positions, gaps, irregular steps) and the group mixes several
acquisitions (``AcquisitionNumber``) or slice thicknesses, it is split by that value and each part
is tried on its own (two passes stored in one series become two candidates). A group that still
does not form a regular stack is *rejected* with the reason; a lone image is *skipped*.

An enhanced multi-frame image is a candidate on its own (its geometry is checked when read).
Which candidate is read is decided by :mod:`liverseg.io.dicom_select`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from liverseg.errors import InputError
from liverseg.io.dicom_geometry import ORIENTATION_ATOL, SliceHeader, StackGeometry, order_slices
from liverseg.io.dicom_scan import SkippedFile

__all__ = ["RejectedGroup", "Stack", "find_stacks", "flavour", "orientation_label"]

#: a plane is axial / coronal / sagittal when its normal is within ~37 degrees of that axis
_AXIS_COS = 0.8
#: values a group is split by, in this order, when it does not form one regular stack
SPLIT_KEYS = ("acquisition_number", "slice_thickness")
_SPLIT_NAMES = {"acquisition_number": "AcquisitionNumber", "slice_thickness": "SliceThickness"}


def orientation_label(orientation: Sequence[float] | None) -> str:
    """``axial``, ``coronal``, ``sagittal``, ``oblique`` (from the slice normal), or ``unknown``."""
    if orientation is None:
        return "unknown"
    iop = np.asarray(orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        return "unknown"
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    if normal[axis] < _AXIS_COS:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def flavour(h: SliceHeader) -> str:
    """``ImageType`` values 1-3 joined by ``/`` (``""`` when absent)."""
    return "/".join(h.image_type[:3])


def _fmt_series(h: SliceHeader) -> str:
    return f"series {h.series_number}" if h.series_number is not None else f"series {h.series_instance_uid}"


@dataclass(frozen=True, eq=False)
class Stack:
    """One candidate volume: a regular stack of single-frame slices, or one multi-frame image.

    Attributes:
        stack_id: the series UID, or ``UID#k`` when the series holds several stacks.
        headers: the slices in array order (one header for a multi-frame image).
        geometry: the ordered geometry (``None`` for a multi-frame image, checked when read).
        extent_mm: length covered along the slice normal (slices x spacing), mm.
        thickness_mm: ``SliceThickness``, else the slice spacing, mm (``None`` if unknown).
    """

    stack_id: str
    headers: tuple[SliceHeader, ...]
    geometry: StackGeometry | None
    extent_mm: float
    thickness_mm: float | None
    spacing_zyx_mm: tuple[float, float, float] | None

    @property
    def first(self) -> SliceHeader:
        return self.headers[0]

    @property
    def series_instance_uid(self) -> str:
        return self.first.series_instance_uid

    @property
    def series_number(self) -> int | None:
        return self.first.series_number

    @property
    def modality(self) -> str:
        return self.first.modality

    @property
    def image_type(self) -> tuple[str, ...]:
        return self.first.image_type

    @property
    def multiframe(self) -> bool:
        return self.first.number_of_frames > 1

    @property
    def n_slices(self) -> int:
        return self.first.number_of_frames if self.multiframe else len(self.headers)

    @property
    def orientation(self) -> str:
        return orientation_label(self.first.orientation)

    @property
    def tilt_deg(self) -> float:
        return self.geometry.tilt_deg if self.geometry is not None else 0.0

    @property
    def folder(self) -> str:
        folders = {str(PurePosixPath(h.member).parent) for h in self.headers}
        return folders.pop() if len(folders) == 1 else ""

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (``liverseg dicom ls``, the report)."""
        acquisitions = sorted(
            {h.acquisition_number for h in self.headers if h.acquisition_number is not None}
        )
        return {
            "stack_id": self.stack_id,
            "series_instance_uid": self.series_instance_uid,
            "series_number": self.series_number,
            "series_description": self.first.series_description,
            "study_instance_uid": self.first.study_instance_uid,
            "modality": self.modality,
            "image_type": "/".join(self.image_type),
            "orientation": self.orientation,
            "n_slices": self.n_slices,
            "multiframe": self.multiframe,
            "rows": self.first.rows,
            "columns": self.first.columns,
            "slice_thickness_mm": None if self.thickness_mm is None else round(self.thickness_mm, 3),
            "spacing_zyx_mm": None
            if self.spacing_zyx_mm is None
            else [round(v, 4) for v in self.spacing_zyx_mm],
            "extent_mm": round(self.extent_mm, 1),
            "acquisition_numbers": acquisitions,
            "tilt_deg": round(self.tilt_deg, 2),
            "transfer_syntax": self.first.transfer_syntax_uid,
            "folder": self.folder,
            "n_dropped": 0 if self.geometry is None else len(self.geometry.dropped),
        }


@dataclass(frozen=True)
class RejectedGroup:
    """A consistent group of slices that does not form a regular stack, and why."""

    members: tuple[str, ...]
    reason: str
    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    image_type: str
    orientation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "series_instance_uid": self.series_instance_uid,
            "series_number": self.series_number,
            "series_description": self.series_description,
            "modality": self.modality,
            "image_type": self.image_type,
            "orientation": self.orientation,
            "n_files": len(self.members),
            "reason": self.reason,
            "files": list(self.members),
        }


def _same_group(a: SliceHeader, b: SliceHeader) -> bool:
    return (
        (a.rows, a.columns) == (b.rows, b.columns)
        and flavour(a) == flavour(b)
        and np.allclose(a.orientation, b.orientation, atol=ORIENTATION_ATOL)  # type: ignore[arg-type]
        and np.allclose(a.pixel_spacing, b.pixel_spacing, rtol=1e-4, atol=1e-5)  # type: ignore[arg-type]
    )


def _consistent_groups(headers: Sequence[SliceHeader]) -> list[list[SliceHeader]]:
    groups: list[list[SliceHeader]] = []
    for h in sorted(headers, key=lambda h: h.member):
        for g in groups:
            if _same_group(g[0], h):
                g.append(h)
                break
        else:
            groups.append([h])
    return sorted(groups, key=lambda g: (-len(g), g[0].member))


def _lone_reason(h: SliceHeader, main: list[SliceHeader] | None) -> str:
    """Why a single image is not read (compared with the series' largest group, if any)."""
    what = f"{orientation_label(h.orientation)} image" + (f" ({flavour(h)})" if flavour(h) else "")
    if main is None:
        return f"a single slice ({what}; a 3D volume needs a stack of at least 2 slices)"
    m = main[0]
    if not np.allclose(h.orientation, m.orientation, atol=ORIENTATION_ATOL):  # type: ignore[arg-type]
        differs = f"orientation {orientation_label(h.orientation)}, not {orientation_label(m.orientation)}"
    elif (h.rows, h.columns) != (m.rows, m.columns):
        differs = f"matrix {h.rows}x{h.columns}, not {m.rows}x{m.columns}"
    elif flavour(h) != flavour(m):
        differs = f"ImageType {flavour(h) or '(none)'}, not {flavour(m) or '(none)'}"
    else:
        differs = f"pixel spacing {h.pixel_spacing}, not {m.pixel_spacing}"
    return f"{what} in {_fmt_series(h)} unlike the series' other {len(main)} slices ({differs})"


def _stack(stack_id: str, geo: StackGeometry) -> Stack:
    h0 = geo.slices[0]
    extent = geo.spacing[0] * len(geo.slices)
    thickness = h0.slice_thickness if h0.slice_thickness else geo.spacing[0]
    return Stack(stack_id, geo.slices, geo, extent, thickness, geo.spacing)


def _multiframe_stack(stack_id: str, h: SliceHeader) -> Stack:
    extent, step = 0.0, None
    if h.frame_positions and h.orientation is not None and len(h.frame_positions) > 1:
        iop = np.asarray(h.orientation, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        d = np.sort(np.asarray(h.frame_positions, dtype=float) @ normal)
        step = float(np.median(np.diff(d)))
        extent = float(d[-1] - d[0]) + step
    spacing = None
    if step is not None and h.pixel_spacing is not None:
        spacing = (step, float(h.pixel_spacing[0]), float(h.pixel_spacing[1]))
    return Stack(stack_id, (h,), None, extent, h.slice_thickness or step, spacing)


class _Builder:
    """Accumulates stacks, rejected groups and skipped files of one series."""

    def __init__(self) -> None:
        self.geometries: list[StackGeometry] = []
        self.rejected: list[RejectedGroup] = []
        self.skipped: list[SkippedFile] = []

    def skip(self, h: SliceHeader, reason: str) -> None:
        self.skipped.append(SkippedFile(h.member, reason, h.series_instance_uid, h.series_number, h.modality))

    def group(self, g: list[SliceHeader], keys: Sequence[str] = SPLIT_KEYS, label: str = "") -> None:
        try:
            self.geometries.append(order_slices(g, None))
            return
        except InputError as exc:
            error = str(exc)
        for i, key in enumerate(keys):
            parts: dict[Any, list[SliceHeader]] = defaultdict(list)
            for h in g:
                parts[getattr(h, key)].append(h)
            if 1 < len(parts) < len(g):
                for value, part in sorted(parts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
                    name = f"{_SPLIT_NAMES[key]} {value}"
                    if len(part) == 1:
                        self.skip(part[0], f"a single slice of {name} in {_fmt_series(part[0])}")
                    else:
                        self.group(part, keys[i + 1 :], f"{label}{name}; ")
                return
        h0 = g[0]
        self.rejected.append(
            RejectedGroup(
                members=tuple(h.member for h in g),
                reason=f"{label}{error}" if label else error,
                series_instance_uid=h0.series_instance_uid,
                series_number=h0.series_number,
                series_description=h0.series_description,
                modality=h0.modality,
                image_type=flavour(h0),
                orientation=orientation_label(h0.orientation),
            )
        )


def find_stacks(headers: Sequence[SliceHeader]) -> tuple[list[Stack], list[RejectedGroup], list[SkippedFile]]:
    """Group candidate image headers into stacks (see the module docstring).

    Returns:
        ``(stacks, rejected, skipped)``: candidate stacks (far-off end slices already dropped,
        listed in each stack's ``geometry.dropped``), groups that are not a regular stack, and
        images left out (lone images, missing geometry).
    """
    by_series: dict[str, list[SliceHeader]] = defaultdict(list)
    for h in headers:
        by_series[h.series_instance_uid].append(h)
    stacks: list[Stack] = []
    rejected: list[RejectedGroup] = []
    skipped: list[SkippedFile] = []
    for uid in sorted(by_series, key=lambda u: min(h.member for h in by_series[u])):
        hs = by_series[uid]
        b = _Builder()
        found: list[Stack | StackGeometry] = []
        singles = []
        for h in hs:
            if h.number_of_frames > 1:
                found.append(_multiframe_stack("", h))
            elif h.position is None or h.orientation is None or h.pixel_spacing is None:
                b.skip(
                    h,
                    "no image geometry (ImagePositionPatient, ImageOrientationPatient or PixelSpacing missing)",
                )
            else:
                singles.append(h)
        groups = _consistent_groups(singles)
        main = groups[0] if groups and len(groups[0]) > 1 else None
        for g in groups:
            if len(g) == 1:
                b.skip(g[0], _lone_reason(g[0], main if main is not g else None))
            else:
                b.group(g)
        found.extend(b.geometries)
        ids = [uid] if len(found) == 1 else [f"{uid}#{k}" for k in range(1, len(found) + 1)]
        for sid, item in zip(ids, found, strict=True):
            if isinstance(item, Stack):
                stacks.append(_multiframe_stack(sid, item.first))
            else:
                stacks.append(_stack(sid, item))
        rejected.extend(b.rejected)
        skipped.extend(b.skipped)
    return stacks, rejected, skipped
