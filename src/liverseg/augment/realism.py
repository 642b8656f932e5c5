"""Realism statistics of liver lesions: size, contrast to the liver, edge sharpness, texture.

The same measurements are taken on real (expert-labelled) and synthetic lesions so the two
distributions can be compared (``liverseg lesion-realism``). Per lesion (a 26-connected component
of label 2), with ``d`` the signed distance to the lesion's labelled boundary in mm (< 0 inside):

* ``equivalent_diameter_mm``: diameter of the sphere of the same volume;
* ``longest_axial_diameter_mm``: RECIST longest in-plane diameter (``liverseg.metrics.diameters``);
* ``contrast_hu``: median HU inside (``d <= -1 mm``, or all lesion voxels for tiny lesions) minus
  the median HU of the surrounding parenchyma (label 1, ``2 <= d <= 10 mm``);
* ``edge_width_mm``: 10-90 % width (``2 ln 9 w``) of a logistic ``a + (b - a) / (1 + exp(-(d -
  c) / w))`` fitted to the radial profile ``median HU(d)`` (0.5 mm bins, ``-min(8, 0.8 r) <= d <=
  8`` mm); only for lesions of at least 8 mm and ``|contrast| >= 10 HU`` (NaN otherwise);
* ``edge_gradient_per_mm``: median gradient magnitude (HU/mm, Gaussian derivative, sigma 0.7 mm)
  on the boundary (``|d| <= 1 mm``) divided by ``|contrast|``: the inverse of an edge width;
* ``internal_std_hu``: standard deviation inside (``d <= -1 mm``), compare ``liver_std_hu`` of the
  surrounding parenchyma (noise plus texture).

Array axis 0 must be the axial axis (use canonical volumes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import cc3d
import numpy as np
from scipy import ndimage
from scipy.optimize import curve_fit

from liverseg.metrics.diameters import longest_axial_diameter_mm

__all__ = ["STATISTICS", "LesionStats", "comparison_table", "lesion_statistics", "summarize", "values_of"]

_BIN_MM = 0.5
_PROFILE_MM = 8.0
_SHELL_MM = (2.0, 10.0)
_MIN_EDGE_DIAMETER_MM = 8.0
_MIN_EDGE_CONTRAST_HU = 10.0


@dataclass(frozen=True)
class LesionStats:
    """Measurements of one lesion (see the module docstring)."""

    case: str
    source: str
    volume_ml: float
    equivalent_diameter_mm: float
    longest_axial_diameter_mm: float
    contrast_hu: float
    edge_width_mm: float
    edge_gradient_per_mm: float
    internal_std_hu: float
    liver_std_hu: float

    @property
    def texture_excess_hu(self) -> float:
        """``internal_std_hu - liver_std_hu``: lesion heterogeneity beyond the scan's own."""
        return self.internal_std_hu - self.liver_std_hu

    def to_dict(self) -> dict[str, object]:
        d = {**asdict(self), "texture_excess_hu": self.texture_excess_hu}
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}


# (attribute, row label, minimal equivalent diameter in mm of the lesions in that row). Texture is
# compared on lesions of 10 mm or more only: the core of smaller lesions holds too few voxels, and
# the real set has none below 9 mm.
STATISTICS: tuple[tuple[str, str, float], ...] = (
    ("equivalent_diameter_mm", "equivalent diameter (mm)", 0.0),
    ("longest_axial_diameter_mm", "longest axial diameter (mm)", 0.0),
    ("contrast_hu", "contrast to liver (HU)", 0.0),
    ("edge_width_mm", "edge width 10-90% (mm), lesions >= 8 mm", 0.0),
    ("edge_gradient_per_mm", "boundary gradient / abs(contrast) (1/mm)", 0.0),
    ("internal_std_hu", "internal std (HU), lesions >= 10 mm", 10.0),
    ("texture_excess_hu", "internal minus liver std (HU), lesions >= 10 mm", 10.0),
)


def values_of(lesions: Sequence[LesionStats], attr: str, min_diameter_mm: float) -> list[float]:
    return [getattr(x, attr) for x in lesions if x.equivalent_diameter_mm >= min_diameter_mm]


def _signed_distance(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Signed distance (mm, < 0 inside) to the boundary between voxel centres of ``mask``."""
    half = 0.5 * min(spacing[1], spacing[2])
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing) - half
    inside = ndimage.distance_transform_edt(mask, sampling=spacing) - half
    return np.where(mask, -inside, outside).astype(np.float32)


def _logistic(d: np.ndarray, inside: float, outside: float, centre: float, width: float) -> np.ndarray:
    return inside + (outside - inside) / (1.0 + np.exp(-(d - centre) / width))


def _edge_width(hu: np.ndarray, d: np.ndarray, inside: float, outside: float, radius_mm: float) -> float:
    """10-90 % width (mm) of a logistic edge fitted to the binned radial profile ``median HU(d)``.

    Fitting the whole profile (levels, position and width) is far less sensitive to noise,
    texture and neighbouring structures than reading two crossings off the noisy profile.
    """

    lo = -min(_PROFILE_MM, 0.8 * radius_mm)
    edges = np.arange(lo, _PROFILE_MM + _BIN_MM, _BIN_MM)
    idx = np.digitize(d, edges) - 1
    centres, medians = [], []
    for b in range(len(edges) - 1):
        vals = hu[idx == b]
        if vals.size >= 5:
            centres.append(0.5 * (edges[b] + edges[b + 1]))
            medians.append(float(np.median(vals)))
    if len(centres) < 6:
        return math.nan
    try:
        (_, _, _, width), _ = curve_fit(
            _logistic,
            np.asarray(centres),
            np.asarray(medians),
            p0=(inside, outside, 0.0, 0.5),
            bounds=((-2000.0, -2000.0, -4.0, 0.05), (4000.0, 4000.0, 4.0, 5.0)),
            maxfev=2000,
        )
    except (RuntimeError, ValueError):
        return math.nan
    return float(2.0 * np.log(9.0) * width)


def lesion_statistics(
    image_hu: np.ndarray,
    label: np.ndarray,
    spacing_zyx: Sequence[float],
    *,
    lesions: np.ndarray | None = None,
    case: str = "",
    source: str = "real",
    min_volume_mm3: float = 10.0,
    on_lesion: Callable[[tuple[slice, ...], np.ndarray, LesionStats], None] | None = None,
) -> list[LesionStats]:
    """Measure every lesion of a scan.

    Args:
        image_hu: ``(z, y, x)`` HU, axis 0 axial.
        label: ``(z, y, x)`` label map (1 liver, 2 tumor); the parenchyma reference is label 1.
        spacing_zyx: voxel size in mm.
        lesions: bool mask of the lesions to measure (default: label == 2), e.g. only the
            synthetic ones.
        case, source: copied into each record.
        min_volume_mm3: smaller components are ignored (annotation specks).
        on_lesion: called as ``on_lesion(box, component_mask_in_box, stats)`` for each lesion
            (e.g. to crop a gallery panel).

    Returns:
        One :class:`LesionStats` per lesion, in component order.
    """
    sp = (float(spacing_zyx[0]), float(spacing_zyx[1]), float(spacing_zyx[2]))
    mask = (label == 2) if lesions is None else np.asarray(lesions, bool)
    if not mask.any():
        return []
    comps = cc3d.connected_components(mask.astype(np.uint8), connectivity=26)
    voxel_mm3 = float(np.prod(sp))
    out: list[LesionStats] = []
    reach = [math.ceil((_SHELL_MM[1] + 1.0) / s) for s in sp]
    for i, bbox in enumerate(ndimage.find_objects(comps), start=1):
        if bbox is None:
            continue
        box = tuple(
            slice(max(b.start - r, 0), min(b.stop + r, n))
            for b, r, n in zip(bbox, reach, comps.shape, strict=True)
        )
        comp = comps[box] == i
        n_vox = int(comp.sum())
        if n_vox * voxel_mm3 < min_volume_mm3:
            continue
        hu = image_hu[box].astype(np.float32)
        lab = label[box]
        d = _signed_distance(comp, sp)
        volume = n_vox * voxel_mm3
        eq = (6.0 * volume / math.pi) ** (1.0 / 3.0)
        core = comp & (d <= -1.0)
        if core.sum() < 5:
            core = comp
        shell = (lab == 1) & (d >= _SHELL_MM[0]) & (d <= _SHELL_MM[1]) & ~mask[box]
        inside_hu = float(np.median(hu[core]))
        if shell.sum() >= 20:
            outside_hu = float(np.median(hu[shell]))
            liver_std = float(np.std(hu[shell]))
        else:
            outside_hu = liver_std = math.nan
        contrast = inside_hu - outside_hu
        width = math.nan
        if eq >= _MIN_EDGE_DIAMETER_MM and abs(contrast) >= _MIN_EDGE_CONTRAST_HU:
            sel = (comp | (lab == 1)) & (np.abs(d) <= _PROFILE_MM) & ~(mask[box] & ~comp)
            width = _edge_width(hu[sel], d[sel], inside_hu, outside_hu, eq / 2.0)
        grad = ndimage.gaussian_gradient_magnitude(hu, [0.7 / s for s in sp], mode="nearest")
        rim = (np.abs(d) <= 1.0) & (comp | (lab == 1))
        gradient = (
            float(np.median(grad[rim])) / abs(contrast) if rim.any() and abs(contrast) > 0 else math.nan
        )
        stats = LesionStats(
            case=case,
            source=source,
            volume_ml=volume / 1000.0,
            equivalent_diameter_mm=eq,
            longest_axial_diameter_mm=longest_axial_diameter_mm(comp, sp),
            contrast_hu=contrast,
            edge_width_mm=width,
            edge_gradient_per_mm=gradient,
            internal_std_hu=float(np.std(hu[core])),
            liver_std_hu=liver_std,
        )
        out.append(stats)
        if on_lesion is not None:
            on_lesion(box, comp, stats)
    return out


def summarize(values: Iterable[float]) -> dict[str, float]:
    """n, median, quartiles, min and max of the finite values (NaN when there are none)."""
    v = np.asarray([x for x in values if math.isfinite(x)], float)
    if v.size == 0:
        return {"n": 0, "median": math.nan, "q1": math.nan, "q3": math.nan, "min": math.nan, "max": math.nan}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {
        "n": int(v.size),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def _cell(s: dict[str, float]) -> str:
    if s["n"] == 0:
        return "n/a"
    return f"{s['median']:.2f} [{s['q1']:.2f}, {s['q3']:.2f}] ({s['min']:.1f}..{s['max']:.1f}, n={s['n']})"


def comparison_table(real: Sequence[LesionStats], synthetic: Sequence[LesionStats]) -> str:
    """Markdown table: per statistic, median [IQR] (range, n) of real and synthetic lesions."""
    rows = [
        f"| statistic | real (n={len(real)}) | synthetic (n={len(synthetic)}) |",
        "|---|---|---|",
    ]
    for attr, name, min_d in STATISTICS:
        r = summarize(values_of(real, attr, min_d))
        s = summarize(values_of(synthetic, attr, min_d))
        rows.append(f"| {name} | {_cell(r)} | {_cell(s)} |")
    hypo_r = sum(1 for x in real if x.contrast_hu < 0)
    hypo_s = sum(1 for x in synthetic if x.contrast_hu < 0)
    rows.append(f"| hypodense fraction | {hypo_r}/{len(real)} | {hypo_s}/{len(synthetic)} |")
    return "\n".join(rows)
