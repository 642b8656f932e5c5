"""Slice geometry of a single-frame DICOM series: ordering, spacing and sanity checks.

Pure functions on header values (no pixel data), so every policy here is unit-testable:

* slices are ordered by ``ImagePositionPatient`` projected on the slice normal
  ``cross(row_cosines, column_cosines)`` -- never by file name or InstanceNumber;
* the z spacing is the distance between positions, not ``SliceThickness`` (CHAOS: 3.2 mm thick
  slices every ~2 mm);
* a single slice lying far off an otherwise regular stack, at either end, is dropped (the caller
  warns), e.g. a stray reconstruction or a repeated image tens of mm away;
* a sheared stack (gantry tilt: every slice shifted sideways in its own plane, in proportion to
  its distance along the normal) is accepted: the per-slice in-plane offsets are returned, and
  :mod:`liverseg.io.dicom_tilt` resamples the slices onto a regular grid;
* duplicate positions, missing slices (a step > 1.5x the median), irregular spacing, positions
  drifting sideways irregularly, and inconsistent orientation / pixel spacing / matrix size are
  errors (:mod:`liverseg.io.dicom_stacks` sorts mixed files into consistent groups first).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liverseg.errors import InputError

__all__ = ["SliceHeader", "StackGeometry", "order_slices"]

log = logging.getLogger(__name__)

#: a step above this multiple of the median step means missing slices
GAP_FACTOR = 1.5
#: steps may deviate from the regular spacing by this fraction before the stack is "irregular"
IRREGULAR_TOLERANCE = 0.1
#: two slices closer than this (mm) along the normal occupy the same position
DUPLICATE_MM = 1e-3
#: an end slice is "far off" when its step exceeds max(FAR_FACTOR * median, median + FAR_MM)
FAR_FACTOR = 5.0
FAR_MM = 20.0
#: tolerance on direction cosines
ORIENTATION_ATOL = 1e-4


@dataclass(frozen=True)
class SliceHeader:
    """Header values of one single-frame DICOM image needed to place it in a volume.

    ``position`` is ``ImagePositionPatient`` (LPS mm), ``orientation`` the six
    ``ImageOrientationPatient`` cosines (row direction, then column direction),
    ``pixel_spacing`` ``PixelSpacing`` = (row spacing, column spacing) in mm, i.e. (y, x).
    """

    member: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    sop_class_uid: str
    rows: int
    columns: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    number_of_frames: int = 1
    instance_number: int | None = None
    series_number: int | None = None
    series_description: str = ""
    frame_of_reference_uid: str = ""
    patient_id: str = ""
    slice_thickness: float | None = None
    transfer_syntax_uid: str = ""
    image_type: tuple[str, ...] = ()
    acquisition_number: int | None = None
    samples_per_pixel: int = 1
    body_part_examined: str = ""
    #: per-frame ImagePositionPatient of an enhanced multi-frame image (None for single-frame)
    frame_positions: tuple[tuple[float, float, float], ...] | None = None


@dataclass(frozen=True, eq=False)
class StackGeometry:
    """Result of :func:`order_slices`.

    Attributes:
        slices: the kept headers in array order (index 0 = array slice ``z = 0``).
        dropped: headers left out (far-off end slices); ``dropped_reasons`` says why, one each.
        spacing: voxel size ``(z, y, x)`` in mm.
        origin: LPS position (mm) of the first kept slice's first pixel centre.
        direction: 3x3 ITK direction (columns: row direction, column direction, slice normal).
        lateral_mm: for a sheared (gantry-tilted) stack, ``(n, 2)``: how far each kept slice's
            first pixel lies from the regular stack through the first slice, in mm along the row
            direction (array x) and the column direction (array y); ``None`` for a regular stack.
        tilt_deg: the shear angle (gantry tilt) in degrees; 0 for a regular stack.
    """

    slices: tuple[SliceHeader, ...]
    dropped: tuple[SliceHeader, ...]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    lateral_mm: np.ndarray | None = None
    tilt_deg: float = 0.0
    dropped_reasons: tuple[str, ...] = ()


def _fmt_pos(p: float) -> str:
    return f"{p:.2f} mm"


def _examples(headers: Sequence[SliceHeader], limit: int = 3) -> str:
    names = [h.member for h in headers[:limit]]
    more = f" and {len(headers) - limit} more" if len(headers) > limit else ""
    return ", ".join(names) + more


def _require_consistent(headers: Sequence[SliceHeader], source: str | None) -> None:
    missing = [h for h in headers if h.position is None or h.orientation is None or h.pixel_spacing is None]
    if missing:
        raise InputError(
            "expected ImagePositionPatient, ImageOrientationPatient and PixelSpacing on every slice, "
            f"missing in {len(missing)} file(s): {_examples(missing)}",
            source,
        )
    ref = headers[0]
    checks = (
        (
            "ImageOrientationPatient",
            lambda h: np.allclose(h.orientation, ref.orientation, atol=ORIENTATION_ATOL),
        ),
        ("PixelSpacing", lambda h: np.allclose(h.pixel_spacing, ref.pixel_spacing, rtol=1e-4, atol=1e-5)),
        ("Rows/Columns", lambda h: (h.rows, h.columns) == (ref.rows, ref.columns)),
    )
    values = {
        "ImageOrientationPatient": lambda h: tuple(round(v, 4) for v in h.orientation),
        "PixelSpacing": lambda h: tuple(round(v, 5) for v in h.pixel_spacing),
        "Rows/Columns": lambda h: (h.rows, h.columns),
    }
    for name, ok in checks:
        bad = [h for h in headers if not ok(h)]
        if bad:
            raise InputError(
                f"inconsistent {name} within the series: expected {values[name](ref)} (as in "
                f"{ref.member}), got {values[name](bad[0])} in {len(bad)} file(s): {_examples(bad)}",
                source,
            )


def _unit_vectors(
    orientation: Sequence[float], source: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iop = np.asarray(orientation, dtype=float)
    row, col = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if nr < 1e-6 or nc < 1e-6 or abs(float(row @ col)) / (nr * nc) > 1e-3:
        raise InputError(
            f"ImageOrientationPatient must hold two orthogonal unit vectors, got {iop.tolist()}", source
        )
    row, col = row / nr, col / nc
    # Re-orthogonalise the tiny numeric residue so the direction matrix is exactly orthonormal.
    col = col - (row @ col) * row
    col /= np.linalg.norm(col)
    return row, col, np.cross(row, col)


def _drop_far_ends(
    d: np.ndarray, order: list[int], headers: Sequence[SliceHeader]
) -> tuple[list[int], list[SliceHeader], list[str]]:
    """Drop at most one far-off slice at each end of a stack sorted along the normal.

    Returns the kept order, the dropped headers and one reason per dropped header (the caller
    reports them: :mod:`liverseg.io.dicom_stacks` warns for the stack it chooses).
    """
    dropped: list[SliceHeader] = []
    reasons: list[str] = []
    if len(order) < 4:
        return order, dropped, reasons
    steps = np.diff(d[order])
    med = float(np.median(steps[1:-1]))
    if med <= DUPLICATE_MM:
        return order, dropped, reasons
    threshold = max(FAR_FACTOR * med, med + FAR_MM)
    keep = list(order)
    for end, step, where in ((-1, steps[-1], "beyond"), (0, steps[0], "before")):
        if step > threshold:
            h = headers[keep[end]]
            reason = f"slice lying {step:.1f} mm {where} the rest of the stack (regular spacing {med:.2f} mm)"
            log.debug("dropping slice %s: %s", h.member, reason)
            dropped.append(h)
            reasons.append(reason)
            keep = keep[:-1] if end == -1 else keep[1:]
    return keep, dropped, reasons


def order_slices(headers: Sequence[SliceHeader], source: str | None) -> StackGeometry:
    """Order one series' slices along the slice normal and derive the volume geometry.

    Args:
        headers: all single-frame images of one series (any order).
        source: the folder/zip, for error messages.

    Returns:
        The :class:`StackGeometry` (kept slices in array order, dropped slices, spacing
        ``(z, y, x)`` mm, origin LPS mm, direction).

    Raises:
        InputError: fewer than two slices, inconsistent orientation / pixel spacing / size,
            duplicate positions, missing slices, irregular spacing, or positions drifting
            sideways irregularly (a straight, gantry-tilted stack is accepted, see
            :attr:`StackGeometry.lateral_mm`).
    """
    if len(headers) == 0:
        raise InputError("the DICOM series holds no images", source)
    if len(headers) == 1:
        raise InputError(
            f"expected a series of at least 2 slices to build a 3D volume, got a single slice "
            f"({headers[0].member})",
            source,
        )
    _require_consistent(headers, source)
    row, col, normal = _unit_vectors(headers[0].orientation, source)  # type: ignore[arg-type]
    pos = np.asarray([h.position for h in headers], dtype=float)
    d = pos @ normal
    order = sorted(range(len(headers)), key=lambda i: (d[i], headers[i].member))

    steps = np.diff(d[order])
    dup = np.nonzero(steps < DUPLICATE_MM)[0]
    if dup.size:
        pairs = "; ".join(
            f"{headers[order[i]].member} and {headers[order[i + 1]].member} at {_fmt_pos(d[order[i]])}"
            for i in dup[:3]
        )
        raise InputError(
            f"expected one slice per position, got {dup.size} duplicate position(s) along the slice "
            f"normal: {pairs}",
            source,
        )

    order, dropped, dropped_reasons = _drop_far_ends(d, order, headers)
    steps = np.diff(d[order])
    med = float(np.median(steps))
    gaps = np.nonzero(steps > GAP_FACTOR * med)[0]
    if gaps.size:
        detail = "; ".join(
            f"{steps[i]:.2f} mm between {headers[order[i]].member} ({_fmt_pos(d[order[i]])}) and "
            f"{headers[order[i + 1]].member} ({_fmt_pos(d[order[i + 1]])})"
            for i in gaps[:3]
        )
        raise InputError(f"missing slice(s): expected a regular step of {med:.2f} mm, got {detail}", source)
    dev = np.abs(steps - med)
    if float(dev.max()) > max(IRREGULAR_TOLERANCE * med, 0.01):
        i = int(np.argmax(dev))
        raise InputError(
            f"irregular slice spacing: expected a regular step of {med:.2f} mm, got {steps[i]:.2f} mm "
            f"between {headers[order[i]].member} and {headers[order[i + 1]].member}",
            source,
        )

    kept = [headers[i] for i in order]
    first = pos[order[0]]
    along = d[order] - d[order[0]]
    lateral = (pos[order] - first) - np.outer(along, normal)
    ps_row, ps_col = kept[0].pixel_spacing  # type: ignore[misc]
    lateral_mm, tilt_deg = _shear(lateral, along, row, col, 0.5 * min(ps_row, ps_col), source)
    spacing_z = float((d[order[-1]] - d[order[0]]) / (len(order) - 1))
    direction = np.stack([row, col, normal], axis=1)
    return StackGeometry(
        slices=tuple(kept),
        dropped=tuple(dropped),
        dropped_reasons=tuple(dropped_reasons),
        spacing=(spacing_z, float(ps_row), float(ps_col)),
        origin=(float(first[0]), float(first[1]), float(first[2])),
        direction=direction,
        lateral_mm=lateral_mm,
        tilt_deg=tilt_deg,
    )


def _shear(
    lateral: np.ndarray,
    along: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    tol_mm: float,
    source: str | None,
) -> tuple[np.ndarray | None, float]:
    """In-plane offsets of a sheared stack, or ``(None, 0)`` when the drift is under ``tol_mm``.

    A gantry tilt shifts each slice sideways by an amount proportional to its distance along the
    normal (a straight, slanted stack). Offsets that do not follow a straight line (within
    ``tol_mm``) are refused: that is not a tilt but a broken series.
    """
    if float(np.linalg.norm(lateral, axis=1).max()) <= tol_mm:
        return None, 0.0
    denom = float(along @ along)
    slope = (along @ lateral) / denom  # mm sideways per mm along the normal (3-vector in the plane)
    residual = float(np.linalg.norm(lateral - np.outer(along, slope), axis=1).max())
    if residual > tol_mm:
        raise InputError(
            f"the slice positions drift sideways irregularly (up to {residual:.2f} mm off a straight "
            "slanted stack); expected a regular or a gantry-tilted stack",
            source,
        )
    tilt = float(np.degrees(np.arctan(np.linalg.norm(slope))))
    return np.stack([lateral @ row, lateral @ col], axis=1), tilt
