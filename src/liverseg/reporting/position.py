"""Where a lesion is, in words and numbers a radiologist uses: slice numbers, table position, side.

Slice numbers (1-based, shown to people in the viewer, the JSON and the HTML report):

* DICOM input whose axial slices are the stored images: the order of the images'
  ``InstanceNumber`` (the scanner's order), renumbered 1..N so a dropped or missing instance
  number leaves no hole; basis ``"dicom-instance-number"``;
* anything else (NIfTI, NRRD, a DICOM series acquired in another plane): from the head down,
  slice 1 = the most superior axial slice, the order of an ordinary cranio-caudal abdominal CT;
  basis ``"superior-to-inferior"``.

The table position of a slice is the LPS ``z`` (mm, +z = superior) of its centre, which is
what scanners and PACS show as the slice location of an axial image.

Side: the patient's right or left of the **body midline** (the median over the liver's axial
slices of the left-right centre of the body outline, CT > -500 HU), not of the liver's centre
(the liver lies mostly on the patient's right, so "left of the liver centre" would call most
right-lobe lesions left). Level: the superior/middle/inferior third of the liver's
cranio-caudal extent. No Couinaud segment is given: it needs the hepatic and portal veins,
which the model does not segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # measure imports this module; the type only is needed here
    from liverseg.reporting.measure import CanonicalScan

__all__ = [
    "BODY_HU",
    "LOCATION_METHOD",
    "MIDLINE_MM",
    "SliceNumbering",
    "body_midline_index",
    "describe_location",
    "slice_numbering",
]

BODY_HU = -500.0  # air is about -1000 HU, fat -100 HU: above this is body (or the scanner table)
MIDLINE_MM = 10.0  # a centroid closer than this to the midline is called "near the midline"
LOCATION_METHOD = (
    "side: patient's right or left of the body midline (centre of the body outline at the liver's "
    "levels); level: third of the liver's cranio-caudal extent. Not a Couinaud segment: that needs "
    "the hepatic and portal veins, which are not segmented."
)


@dataclass(frozen=True)
class SliceNumbering:
    """1-based slice numbers and table positions of the canonical axial slices.

    Attributes:
        numbers: int array ``(n,)``: slice number of canonical axial slice ``k`` (canonical
            ``k`` runs inferior -> superior).
        z_mm: float array ``(n,)``: LPS z (table position, mm) of the centre of slice ``k``.
        basis: ``"dicom-instance-number"`` or ``"superior-to-inferior"`` (module docstring).
    """

    numbers: np.ndarray
    z_mm: np.ndarray
    basis: str

    def number(self, k: int) -> int:
        """Slice number (1-based) of canonical axial slice ``k``."""
        return int(self.numbers[int(k)])

    def z(self, k: int) -> float:
        """Table position (LPS z, mm, 0.1) of canonical axial slice ``k``."""
        return round(float(self.z_mm[int(k)]), 1)

    def describe(self) -> dict[str, Any]:
        """The report's ``slice_numbering`` object."""
        first = int(np.argmin(self.numbers))
        if self.basis == "dicom-instance-number":
            text = "slice numbers follow the DICOM instance numbers (the scanner's order), renumbered 1..N"
        else:
            text = "slice 1 is the most superior axial slice, numbers increase towards the feet"
        return {
            "count": len(self.numbers),
            "basis": self.basis,
            "description": text,
            "slice_1_z_mm": self.z(first),
        }


def _instance_order_increasing(metadata: Mapping[str, Any], n: int) -> bool | None:
    """True/False when the DICOM instance numbers rise/fall along input axis 0, else None."""
    dicom = metadata.get("dicom") if isinstance(metadata, Mapping) else None
    numbers = (dicom or {}).get("instance_numbers")
    if not numbers or len(numbers) != n or any(not isinstance(v, int) for v in numbers):
        return None
    diffs = np.diff(np.asarray(numbers, dtype=np.int64))
    if np.all(diffs > 0):
        return True
    if np.all(diffs < 0):
        return False
    return None  # repeated or shuffled numbers: not a usable order


def slice_numbering(scan: CanonicalScan, metadata: Mapping[str, Any] | None = None) -> SliceNumbering:
    """Slice numbers and table positions for ``scan`` (see the module docstring).

    Args:
        scan: the canonical scan.
        metadata: the input image's ``Volume.metadata`` (``"dicom"`` carries the instance
            numbers in input order); ``None`` or non-DICOM gives the superior-to-inferior basis.
    """
    n = scan.labels.shape[0]
    k = np.arange(n)
    increasing = None
    if scan.axial_axis == 0:  # the stored images are the axial slices
        increasing = _instance_order_increasing(metadata or {}, scan.original.shape[0])
    if increasing is None:
        numbers, basis = n - k, "superior-to-inferior"
    else:
        original = np.array([scan.to_original_slice(int(i)) for i in k])
        numbers = original + 1 if increasing else n - original
        basis = "dicom-instance-number"
    _, ny, nx = scan.labels.shape
    centres = np.stack([k, np.full(n, (ny - 1) / 2), np.full(n, (nx - 1) / 2)], axis=1).astype(float)
    z_mm = scan.labels.index_to_physical(centres)[:, 2]
    return SliceNumbering(numbers.astype(np.int64), z_mm, basis)


def body_midline_index(scan: CanonicalScan) -> float | None:
    """Canonical x index (continuous) of the body midline, or ``None`` without an image/body.

    Median over the liver's axial slices (all slices without a liver) of the x centre of the
    voxels above :data:`BODY_HU`.
    """
    if scan.image is None:
        return None
    rng = scan.liver["slice_range_canonical"] or [0, scan.labels.shape[0] - 1]
    centres = []
    xs = np.arange(scan.labels.shape[2], dtype=float)
    for k in range(rng[0], rng[1] + 1):
        columns = np.count_nonzero(scan.image.array[k] > BODY_HU, axis=0)
        total = columns.sum()
        if total:
            centres.append(float(np.dot(xs, columns)) / float(total))
    return float(np.median(centres)) if centres else None


def describe_location(
    centroid_canon: np.ndarray, scan: CanonicalScan, midline_x: float | None
) -> dict[str, Any]:
    """The report's ``location`` object for a lesion centroid (canonical continuous index).

    ``side`` is ``"right"`` / ``"left"`` (the patient's), ``midline_offset_mm`` the signed
    left-right distance from the midline (+ = patient's left, LPS +x), ``level`` the third of
    the liver's cranio-caudal extent; ``description`` says both once, in words.
    """
    z0, z1 = scan.liver["slice_range_canonical"] or [0, scan.labels.shape[0] - 1]
    frac = 0.5 if z1 == z0 else (float(centroid_canon[0]) - z0) / (z1 - z0)  # 0 inferior .. 1 superior
    level = "superior" if frac > 2 / 3 else ("inferior" if frac < 1 / 3 else "middle")
    level_text = f"{level} third of the liver"
    if midline_x is None:
        # no CT to find the body: the liver centroid is the only reference (said in the text)
        ref = scan.liver["centroid_lps_mm"]
        offset = float(scan.labels.index_to_physical(centroid_canon)[0] - ref[0]) if ref else 0.0
        side = "left" if offset > 0 else "right"
        return {
            "side": side,
            "level": level,
            "midline_offset_mm": None,
            "description": f"patient's {side} of the liver centre (no CT to find the body midline), "
            f"{level_text}",
        }
    offset = (float(centroid_canon[2]) - midline_x) * scan.labels.spacing[2]  # canonical x: right -> left
    side = "left" if offset > 0 else "right"
    if abs(offset) < MIDLINE_MM:
        where = f"near the midline (patient's {side}, {abs(offset):.0f} mm)"
    else:
        where = f"patient's {side}, {abs(offset):.0f} mm from the midline"
    return {
        "side": side,
        "level": level,
        "midline_offset_mm": round(offset, 1),
        "description": f"{where}, {level_text}",
    }
