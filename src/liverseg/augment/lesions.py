"""Insert synthetic liver lesions into a real CT inside its liver mask (label 1 -> 2).

The recipe follows Hu et al., "Label-Free Liver Tumor Segmentation" (CVPR 2023): a random shape is
placed in the liver away from vessels, shaded relative to the parenchyma of the same scan, given the
scan's own noise, and blended with a soft edge. See :mod:`liverseg.augment.shapes` (geometry),
:mod:`liverseg.augment.placement` (where), :mod:`liverseg.augment.render` (how it looks) and
:mod:`liverseg.augment.appearance` (scan statistics, noise, vessels).

Policy for livers that cannot hold the requested lesions:

* no liver voxel at all (no label 1 or 2): :class:`~liverseg.errors.InputError`
  (``empty_liver="raise"``, the default), or an unchanged copy (``empty_liver="skip"``, used by the
  training transform where many slabs have no liver);
* a liver too small (or too crowded by vessels, tumors and earlier lesions) for a lesion: the lesion
  is shrunk by ``params.shrink_factor`` and tried again down to ``params.diameter_mm[0]``, then
  skipped and listed in :attr:`LesionInsertion.skipped` with the reason. A lesion, its soft edge and
  its noise never leave the liver mask eroded by ``params.margin_mm``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from liverseg.augment.appearance import ScanStats, scan_statistics, vessel_mask
from liverseg.augment.params import LesionParams
from liverseg.augment.placement import Border, Region, build_region, liver_box, overlap_slices
from liverseg.augment.render import Appearance, render_lesion, sample_appearance
from liverseg.augment.shapes import LesionShape, sample_diameter, sample_shape
from liverseg.errors import GeometryError, InputError
from liverseg.io.labels import LabelMap

__all__ = ["LesionInsertion", "LesionRecord", "SkippedLesion", "insert_lesions", "make_rng"]

log = logging.getLogger(__name__)

TUMOR = 2
_MIN_BACKGROUND_VOXELS = 30


@dataclass(frozen=True)
class LesionRecord:
    """One inserted lesion.

    Attributes:
        center_voxel: lesion centre, array index ``(z, y, x)`` of the input.
        diameter_mm: equivalent-sphere diameter (mm) of the voxels labelled 2.
        requested_diameter_mm: the diameter drawn (after shrinking to fit, if it was shrunk).
        volume_mm3: labelled volume in mm^3.
        contrast_hu: lesion body minus parenchyma, HU (negative = hypodense).
        background_hu: parenchyma HU around the lesion (the reference of ``contrast_hu``).
        kind: ``"hypodense"``, ``"hyperdense"``, ``"cyst"`` (labelled liver) or ``"lipiodol"``.
        rim: has an enhancing rim; necrotic: has a necrotic core; blobs: 1, or 2-3 when merged.
        edge_width_mm: the logistic soft-edge width (10-90 % width = 4.4 x this).
        shrunk: True when the drawn diameter did not fit and was reduced.
        calcified: holds calcified foci.
    """

    center_voxel: tuple[int, int, int]
    diameter_mm: float
    requested_diameter_mm: float
    volume_mm3: float
    contrast_hu: float
    background_hu: float
    kind: str
    rim: bool
    necrotic: bool
    blobs: int
    edge_width_mm: float
    shrunk: bool
    calcified: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = asdict(self)
        d["center_voxel"] = list(self.center_voxel)
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


@dataclass(frozen=True)
class SkippedLesion:
    """A lesion that was drawn but not inserted, and why."""

    requested_diameter_mm: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"requested_diameter_mm": round(self.requested_diameter_mm, 3), "reason": self.reason}


@dataclass(frozen=True, eq=False)
class LesionInsertion:
    """Result of :func:`insert_lesions`.

    Attributes:
        image: ``(z, y, x)`` new CT, same dtype as the input (HU).
        label: ``(z, y, x)`` new label map, same dtype as the input; inserted lesions are 2.
        lesions: the inserted lesions, in insertion order.
        skipped: lesions that fitted nowhere in the liver (see the module docstring).
        mask: bool ``(z, y, x)``: the interior of every inserted lesion, whatever its label (a
            cyst is labelled liver, so the label map alone does not show it); None when nothing
            was inserted.
    """

    image: np.ndarray
    label: np.ndarray
    lesions: list[LesionRecord]
    skipped: list[SkippedLesion]
    mask: np.ndarray | None = None


def make_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A ``np.random.Generator`` from a generator, an integer seed or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_inputs(
    image: np.ndarray, label: np.ndarray, spacing: Sequence[float]
) -> tuple[float, float, float]:
    image, label = np.asarray(image), np.asarray(label)
    if image.ndim != 3:
        raise InputError(f"expected a 3D image (z, y, x) or slab (C, H, W), got shape {image.shape}")
    if label.shape != image.shape:
        raise GeometryError(f"label shape {label.shape} does not match image shape {image.shape}")
    sp = tuple(float(s) for s in np.asarray(spacing, dtype=float).reshape(-1))
    if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise GeometryError(f"spacing_zyx must be 3 positive numbers (mm), got {spacing!r}")
    LabelMap(label, sp)  # InputError unless integers in {0, 1, 2}
    return sp  # type: ignore[return-value]


def _local_offsets(
    shape_: LesionShape, reach_mm: float, spacing: tuple[float, float, float], box_shape: tuple[int, ...]
) -> tuple[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Half-size (voxels) of the lesion's centred local grid and its mm offsets along each axis.

    The grid reaches ``bounding radius + reach_mm`` but never more than one voxel beyond the work
    box from any centre inside it (offsets ``|o| <= n + 1`` for a box ``n`` voxels long): farther
    voxels cannot decide anything, and a thin slab then needs only a few slices of signed distance.
    """
    half = tuple(
        min(int(np.ceil((shape_.bounding_radius_mm + reach_mm) / s)), n + 1)
        for s, n in zip(spacing, box_shape, strict=True)
    )
    axes = [
        np.arange(-h, h + 1, dtype=np.float32) * np.float32(s) for h, s in zip(half, spacing, strict=True)
    ]
    return half, (axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])


def _try_place(
    shape_: LesionShape,
    app: Appearance,
    region: Region,
    margin_mm: float,
    tries: int,
    rng: np.random.Generator,
) -> tuple[tuple[int, int, int], np.ndarray] | None:
    """Find a centre where the lesion's footprint fits (:meth:`Region.fits`).

    Returns ``(centre, sdf)`` (work-box voxel, signed distance on the centred local grid) or None
    after ``tries`` random candidates deep enough in the allowed region.
    """
    half, (dz, dy, dx) = _local_offsets(
        shape_, app.footprint_mm + margin_mm, region.spacing, region.allowed.shape
    )
    min_depth = shape_.inner_radius_mm + app.footprint_mm - max(region.spacing)
    cands = region.candidates(max(min_depth, 0.0))
    if cands.size == 0:
        return None
    sdf = shape_.signed_distance(dz, dy, dx)
    footprint = sdf <= app.footprint_mm
    padded = region.padded(half)
    for flat in rng.choice(cands, size=min(tries, cands.size), replace=False):
        center = tuple(int(i) for i in np.unravel_index(int(flat), region.allowed.shape))
        if region.fits(padded, footprint, center):  # type: ignore[arg-type]
            return center, sdf  # type: ignore[return-value]
    return None


def insert_lesions(
    image_hu: np.ndarray,
    label: np.ndarray,
    spacing_zyx: Sequence[float],
    params: LesionParams | None = None,
    *,
    rng: np.random.Generator | int | None = None,
    count: int | None = None,
    border: Border = "closed",
    empty_liver: Literal["raise", "skip"] = "raise",
) -> LesionInsertion:
    """Insert random synthetic lesions into the liver of one CT.

    Args:
        image_hu: ``(z, y, x)`` CT in HU (any real dtype; integer input is rounded back).
        label: ``(z, y, x)`` label map, 0 background / 1 liver / 2 tumor; liver mask = label > 0.
        spacing_zyx: voxel size in mm, array order (anisotropic spacing is handled in mm).
        params: random ranges (default :class:`LesionParams`).
        rng: generator or seed; the same seed and inputs give the same result.
        count: number of lesions, overriding ``params.count``.
        border: "closed" for a whole scan (the image border is outside the liver), "open" for a
            slab or patch cut from a larger volume (lesions may run across the border).
        empty_liver: "raise" (:class:`InputError`) or "skip" (unchanged copy) when no liver voxel.

    Returns:
        :class:`LesionInsertion` with the new image and label (copies) and the lesion records.
    """
    params = params or LesionParams()
    spacing = _check_inputs(image_hu, label, spacing_zyx)
    gen = make_rng(rng)
    image_hu, label = np.asarray(image_hu), np.asarray(label)
    n = int(gen.integers(params.count[0], params.count[1] + 1)) if count is None else int(count)
    if n < 0:
        raise InputError(f"lesion count must be >= 0, got {n}")
    if not (label > 0).any():
        if empty_liver == "raise":
            raise InputError(
                "the label map has no liver voxels (label 1 or 2): cannot place lesions in the liver"
            )
        return LesionInsertion(image_hu.copy(), label.copy(), [], [])
    if n == 0:
        return LesionInsertion(image_hu.copy(), label.copy(), [], [])

    box, open_faces = liver_box(label, spacing, pad_mm=params.local_background_mm, border=border)
    work = image_hu[box].astype(np.float32)
    lab_box = label[box].copy()
    parenchyma = lab_box == 1
    stats_sm = scan_statistics(work, parenchyma, spacing)
    if stats_sm is None:
        reason = "the liver parenchyma has fewer than 20 voxels"
        skipped = [SkippedLesion(sample_diameter(params, gen), reason) for _ in range(n)]
        log.info("no lesion inserted: %s", reason)
        return LesionInsertion(image_hu.copy(), label.copy(), [], skipped)
    stats, smoothed = stats_sm
    vessels = np.zeros(work.shape, bool)
    if params.avoid_vessels:
        vessels = vessel_mask(
            work,
            lab_box > 0,
            spacing,
            stats.median_hu,
            stats.mad_hu,
            k_mad=params.vessel_k_mad,
            min_diameter_mm=params.vessel_min_diameter_mm,
            min_volume_mm3=params.vessel_min_volume_mm3,
            smoothed=smoothed,
        )
    region = build_region(box, open_faces, (lab_box == 0) | (lab_box == TUMOR), spacing, params.margin_mm)
    region.vessels, region.vessel_overlap = vessels, params.vessel_overlap
    reference = parenchyma & ~vessels  # background HU reference voxels

    records: list[LesionRecord] = []
    skipped: list[SkippedLesion] = []
    inserted = np.zeros(lab_box.shape, bool)
    for _ in range(n):
        drawn = sample_diameter(params, gen)
        shape_ = sample_shape(drawn, params, gen)
        app = sample_appearance(params, drawn, gen)
        placed = None
        while True:
            placed = _try_place(shape_, app, region, params.margin_mm, params.max_placement_tries, gen)
            smaller = shape_.requested_diameter_mm * params.shrink_factor
            if placed is not None or smaller < params.diameter_mm[0] - 1e-9:
                break
            shape_ = shape_.scaled(params.shrink_factor)
        if placed is None:
            reason = (
                f"no position in the liver (eroded by {params.margin_mm:g} mm, without large vessels, "
                f"tumors and earlier lesions) fits a {shape_.requested_diameter_mm:.1f} mm lesion"
            )
            skipped.append(SkippedLesion(drawn, reason))
            log.debug("skipped a %.1f mm lesion: %s", drawn, reason)
            continue
        center, sdf = placed
        record = _render(
            work, lab_box, region, reference, stats, shape_, app, center, sdf, params, drawn, gen, inserted
        )
        records.append(record)

    out_image = image_hu.copy()
    if np.issubdtype(out_image.dtype, np.integer):
        info = np.iinfo(out_image.dtype)
        out_image[box] = np.clip(np.rint(work), info.min, info.max).astype(out_image.dtype)
    else:
        out_image[box] = work.astype(out_image.dtype)
    out_label = label.copy()
    out_label[box] = lab_box
    if skipped:
        log.info("%d of %d synthetic lesions did not fit in the liver and were skipped", len(skipped), n)
    mask = np.zeros(label.shape, bool)
    mask[box] = inserted
    return LesionInsertion(out_image, out_label, records, skipped, mask)


def _render(
    work: np.ndarray,
    lab_box: np.ndarray,
    region: Region,
    reference: np.ndarray,
    stats: ScanStats,
    shape_: LesionShape,
    app: Appearance,
    center: tuple[int, int, int],
    sdf: np.ndarray,
    params: LesionParams,
    drawn: float,
    rng: np.random.Generator,
    inserted: np.ndarray,
) -> LesionRecord:
    """Shade the placed lesion into ``work``/``lab_box`` (in place), carve it out, return its record."""
    src, dst = overlap_slices(center, sdf.shape, work.shape)
    sdf_in = sdf[src]
    # parenchyma reference around the lesion: a cube reaching local_background_mm beyond the lesion
    reach = [int(np.ceil(params.local_background_mm / s)) for s in region.spacing]
    ring = tuple(
        slice(max(d.start - r, 0), min(d.stop + r, n)) for d, r, n in zip(dst, reach, work.shape, strict=True)
    )
    ref_vals = work[ring][reference[ring]]
    background = float(np.median(ref_vals)) if ref_vals.size >= _MIN_BACKGROUND_VOXELS else stats.median_hu
    new, _ = render_lesion(
        work[dst],
        sdf_in,
        app,
        background_hu=background,
        radius_mm=shape_.equivalent_radius_mm,
        noise=stats.noise if params.match_noise else None,
        spacing=region.spacing,
        rng=rng,
    )
    work[dst] = new
    inside = sdf_in <= 0
    lab_box[dst][inside] = TUMOR if app.is_tumor else 1
    inserted[dst] |= inside
    region.carve(sdf <= app.footprint_mm + params.margin_mm, center)
    n_vox = int(inside.sum())
    volume = n_vox * float(np.prod(region.spacing))
    full = tuple(int(c + b.start) for c, b in zip(center, region.box, strict=True))
    return LesionRecord(
        center_voxel=full,  # type: ignore[arg-type]
        diameter_mm=float((6.0 * volume / np.pi) ** (1.0 / 3.0)),
        requested_diameter_mm=shape_.requested_diameter_mm,
        volume_mm3=volume,
        contrast_hu=app.contrast_hu,
        background_hu=background,
        kind=app.kind,
        rim=app.rim_hu != 0,
        necrotic=app.necrosis_hu != 0,
        blobs=len(shape_.blobs),
        edge_width_mm=app.edge_width_mm,
        shrunk=shape_.requested_diameter_mm < drawn - 1e-9,
        calcified=app.calcification_hu != 0,
    )
