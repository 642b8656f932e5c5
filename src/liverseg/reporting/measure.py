"""Lesion table and liver measurements from a label map (RECIST 1.1-style diameters).

Input: a CT ``image`` (HU) and its ``labels`` (0 background, 1 liver, 2 tumor) on the same grid,
in any orientation. Everything is measured on the canonical grid (:func:`liverseg.io.to_canonical`:
an exact axis permutation/flip, no resampling), where array axis 0 runs inferior->superior, so
"axial slice" means a plane perpendicular to the patient's z axis whatever the input's axis order.
Lengths are in mm (anisotropic spacing respected), volumes in ml, positions in LPS mm.
Indices reported back (``centroid_voxel_zyx``, ``diameter_endpoints_voxel``) are continuous
``(z, y, x)`` indices of the **input** grid; slice numbers (``slice_range``, ``largest_slice``) are
indices along the input array axis that holds the axial slices (axis 0 for an axial CT; the
report's ``input.axial_axis`` names it).

Per lesion (26-connected component of label 2, ``cc3d``), ``id`` 1 = largest volume:
``volume_ml``; ``longest_axial_diameter_mm`` and ``short_axis_mm`` (see
:mod:`liverseg.metrics.diameters`: convex hull of the in-plane contour per axial slice, longest
pairwise distance, longest perpendicular chord on that slice) and the ends of both lines; ``recist_measurable`` (longest >= 10 mm);
centroids; ``mean_hu``/``std_hu``; the 1-based ``slice_numbers`` / ``largest_slice_number`` and
the table position ``largest_slice_z_mm`` people see (:mod:`liverseg.reporting.position`); and
``location``: the patient's side of the body midline and the third of the liver's cranio-caudal
extent (liver = label >= 1), see :func:`liverseg.reporting.position.describe_location`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import cc3d
import numpy as np

from liverseg.errors import InputError
from liverseg.io.volume import Reorientation, Volume, to_canonical
from liverseg.metrics._common import union_bbox
from liverseg.metrics.diameters import axial_diameters
from liverseg.metrics.lesions import MEASURABLE_MM, connected_lesions
from liverseg.reporting.position import (
    SliceNumbering,
    body_midline_index,
    describe_location,
    slice_numbering,
)

__all__ = ["CanonicalScan", "canonical_scan", "measure_lesions", "measure_liver"]


def _check_labels(labels: Volume) -> None:
    arr = labels.array
    if arr.dtype.kind not in "biu" or (arr.size and (arr.min() < 0 or arr.max() > 2)):
        raise InputError(
            f"labels must be a label map with values 0 (background), 1 (liver), 2 (tumor), got dtype "
            f"{arr.dtype} with values in [{arr.min()}, {arr.max()}]"
        )


@dataclass(frozen=True)
class CanonicalScan:
    """Image, labels and lesion components on the canonical grid, plus the way back.

    Attributes:
        image: canonical HU volume ``(z, y, x)``; ``None`` when measured without an image.
        labels: canonical label volume.
        lesion_ids: int32 array on the canonical grid: 0 outside tumors, else the lesion ``id``
            (1 = largest), the same numbering as :func:`measure_lesions`.
        n_lesions: number of lesions.
        reorientation: maps canonical arrays back onto the input grid.
        original: the input label volume (its grid is the one reported back).
    """

    image: Volume | None
    labels: Volume
    lesion_ids: np.ndarray
    n_lesions: int
    reorientation: Reorientation
    original: Volume

    def to_original_index(self, canonical_zyx: np.ndarray) -> np.ndarray:
        """Continuous canonical indices ``(..., 3)`` -> continuous input-grid indices (exact)."""
        return self.original.physical_to_index(self.labels.index_to_physical(canonical_zyx))

    def to_canonical_index(self, original_zyx: np.ndarray) -> np.ndarray:
        """Continuous input-grid indices ``(..., 3)`` -> canonical indices (exact)."""
        return self.labels.physical_to_index(self.original.index_to_physical(original_zyx))

    @cached_property
    def liver(self) -> dict[str, Any]:
        """:func:`measure_liver` of this scan (computed once)."""
        return measure_liver(self)

    @property
    def axial_axis(self) -> int:
        """Input array axis holding the axial slices (canonical axis 0)."""
        return 2 - self.reorientation.perm[2]

    def to_original_slice(self, k: int) -> int:
        """Canonical axial slice index -> index along the input's :attr:`axial_axis`."""
        n = self.original.shape[self.axial_axis]
        return n - 1 - int(k) if self.reorientation.flip[2] else int(k)


def canonical_scan(image: Volume | None, labels: Volume) -> CanonicalScan:
    """Bring ``image`` and ``labels`` to the canonical grid and number the lesions by size.

    Raises:
        InputError: labels are not a 0/1/2 label map.
        GeometryError: ``image`` and ``labels`` are not on the same grid.
    """
    _check_labels(labels)
    if image is not None:
        image.require_same_grid(labels)
    canon_labels, reo = to_canonical(labels)
    canon_image = None if image is None else canon_labels.with_array(reo.to_canonical_array(image.array))
    tumor = canon_labels.array == 2
    ids = np.zeros(tumor.shape, dtype=np.int32)
    box = union_bbox(tumor)
    n = 0
    if box is not None:  # label components inside the tumors' bounding box only (speed)
        cc, n = connected_lesions(tumor[box], connectivity=26)
        counts = np.bincount(cc.reshape(-1), minlength=n + 1)[1:]
        order = np.argsort(-counts, kind="stable")  # largest first; ties keep cc3d's scan order
        lut = np.zeros(n + 1, dtype=np.int32)
        lut[order + 1] = np.arange(1, n + 1, dtype=np.int32)
        ids[box] = lut[cc]
    return CanonicalScan(canon_image, canon_labels, ids, int(n), reo, labels)


def measure_liver(scan: CanonicalScan) -> dict[str, Any]:
    """Liver (label >= 1) facts: ``found``, ``volume_ml``, ``centroid_lps_mm``, ``centroid_voxel_zyx``,
    and ``slice_range_canonical`` (first/last canonical axial slice, used for the thirds).

    Also available, computed once, as :attr:`CanonicalScan.liver`. Uses per-axis projections.
    """
    liver = scan.labels.array >= 1
    per_axis = [np.count_nonzero(liver, axis=tuple(a for a in range(3) if a != axis)) for axis in range(3)]
    n = int(per_axis[0].sum())
    if n == 0:
        return {
            "found": False,
            "volume_ml": 0.0,
            "centroid_lps_mm": None,
            "centroid_voxel_zyx": None,
            "slice_range_canonical": None,
        }
    centroid = np.array([float(np.dot(np.arange(c.size), c)) / n for c in per_axis])
    z_slices = np.flatnonzero(per_axis[0])
    return {
        "found": True,
        "volume_ml": n * scan.labels.voxel_volume_ml,
        "centroid_lps_mm": scan.labels.index_to_physical(centroid).tolist(),
        "centroid_voxel_zyx": scan.to_original_index(centroid).tolist(),
        "slice_range_canonical": [int(z_slices[0]), int(z_slices[-1])],
    }


def _r(values: Any, nd: int = 3) -> Any:
    return np.round(np.asarray(values, dtype=float), nd).tolist()


def measure_lesions(
    image: Volume,
    labels: Volume,
    *,
    scan: CanonicalScan | None = None,
    numbering: SliceNumbering | None = None,
) -> list[dict]:
    """Measure every tumor lesion (see the module docstring), largest first.

    Args:
        image: CT in HU on the same grid as ``labels`` (its metadata gives DICOM slice order).
        labels: label map (0/1/2), any orientation.
        scan: a :func:`canonical_scan` of the same pair, to avoid recomputing it.
        numbering: :func:`~liverseg.reporting.position.slice_numbering` of the scan, likewise.
    Returns:
        one dict per lesion with the keys of the report schema's ``lesions`` items.
    """
    scan = scan or canonical_scan(image, labels)
    if scan.n_lesions == 0:
        return []
    numbering = numbering or slice_numbering(scan, image.metadata)
    midline_x = body_midline_index(scan)
    canon = scan.labels
    box = union_bbox(scan.lesion_ids)
    if box is None:  # pragma: no cover - n_lesions > 0 means some ids are set
        return []
    box_offset = np.array([s.start for s in box], dtype=float)
    ids = scan.lesion_ids[box]  # statistics on the tumors' box only (speed)
    stats = cc3d.statistics(ids)
    hu = None if scan.image is None else scan.image.array[box]
    lesions: list[dict[str, Any]] = []
    for lid in range(1, scan.n_lesions + 1):
        bb = stats["bounding_boxes"][lid]
        mask = ids[bb] == lid
        offset = np.array([s.start for s in bb], dtype=float) + box_offset
        diam = axial_diameters(mask, canon.spacing)
        if diam is None:  # pragma: no cover - a component is never empty
            continue
        centroid = np.asarray(stats["centroids"][lid], dtype=float) + box_offset
        centroid_lps = canon.index_to_physical(centroid)
        values = None if hu is None else hu[bb][mask].astype(np.float64)
        k0 = int(offset[0])
        k1 = k0 + mask.shape[0] - 1
        slices = sorted(scan.to_original_slice(k) for k in (k0, k1))
        k_largest = diam.slice_index + k0
        lesions.append(
            {
                "id": lid,
                "volume_ml": round(float(stats["voxel_counts"][lid]) * canon.voxel_volume_ml, 4),
                "longest_axial_diameter_mm": round(diam.longest_mm, 2),
                "short_axis_mm": round(diam.short_axis_mm, 2),
                "recist_measurable": bool(diam.longest_mm >= MEASURABLE_MM),
                "centroid_voxel_zyx": _r(scan.to_original_index(centroid)),
                "centroid_lps_mm": _r(centroid_lps, 2),
                "mean_hu": None if values is None else round(float(values.mean()), 1),
                "std_hu": None if values is None else round(float(values.std()), 1),
                "slice_range": slices,
                "largest_slice": scan.to_original_slice(k_largest),
                "slice_numbers": sorted((numbering.number(k0), numbering.number(k1))),
                "largest_slice_number": numbering.number(k_largest),
                "largest_slice_z_mm": numbering.z(k_largest),
                "diameter_endpoints_voxel": _r(scan.to_original_index(diam.endpoints_zyx + offset)),
                "short_axis_endpoints_voxel": _r(scan.to_original_index(diam.short_endpoints_zyx + offset)),
                "location": describe_location(centroid, scan, midline_x),
            }
        )
    return lesions
