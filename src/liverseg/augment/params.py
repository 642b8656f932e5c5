"""Parameters of the synthetic-lesion generator: a frozen pydantic model with broad random ranges.

Every range is a ``(low, high)`` pair sampled uniformly unless the field's comment says otherwise;
set ``low == high`` to fix a value. Lengths are in mm, intensities in HU, probabilities in [0, 1].
The defaults follow the issue's ranges (1-10 lesions, 3-60 mm, hypodense by 15-80 HU, ...) and were
checked against the real 3D-IRCADb tumors with ``liverseg lesion-realism`` (docs/synthetic_lesions.md).
Bad values raise :class:`~liverseg.errors.ConfigError` naming the parameter (:mod:`liverseg.frozen`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator

from liverseg.errors import ConfigError
from liverseg.frozen import Bool, Described, Float, FrozenModel, Int, check

__all__ = ["LesionParams"]


def _integral(value: Any) -> Any:
    """``[2.0, 3]`` -> ``(2, 3)``: whole-number floats become ints; anything else is left for the check."""
    if isinstance(value, list | tuple):
        return tuple(
            int(v) if isinstance(v, float) and not isinstance(v, bool) and v.is_integer() else v
            for v in value
        )
    return value


Range = Annotated[tuple[Float, Float], Described("a (low, high) pair of numbers")]
IntRange = Annotated[tuple[Int, Int], BeforeValidator(_integral), Described("a (low, high) pair of integers")]

_PROBABILITIES = (
    "merge_probability",
    "hyperdense_probability",
    "cyst_probability",
    "lipiodol_probability",
    "calcification_probability",
    "rim_probability",
    "necrosis_probability",
    "vessel_overlap",
)
_NON_NEGATIVE = (
    "margin_mm",
    "vessel_k_mad",
    "vessel_min_diameter_mm",
    "vessel_min_volume_mm3",
    "necrosis_min_diameter_mm",
    "local_background_mm",
)


class LesionParams(FrozenModel):
    """Random ranges for :func:`liverseg.augment.insert_lesions` (see the module docstring).

    Attributes:
        count: number of lesions per volume, integer range, inclusive (uniform).
        diameter_mm: equivalent-sphere diameter in mm of each lesion before lobulation.
        size_distribution: ``"log_uniform"`` (default, skewed to small lesions: half of them are
            below the geometric mean, ~13 mm for 3-60 mm) or ``"uniform"``.
        axis_ratio: ratio of each ellipsoid semi-axis to the equivalent radius, sampled per axis
            and renormalised so the three multiply to 1 (volume kept); 1 = sphere.
        lobulation: maximal relative radial deviation of the spherical-harmonic-like radial noise
            (0 = smooth ellipsoid, 0.3 = strongly lobulated).
        lobulation_scale: size of the radial-noise lattice (2 = very smooth bumps, 6 = many lobes).
        merge_probability: probability that a lesion is the union of 2-3 overlapping blobs.
        merge_blobs: number of blobs of a merged lesion, integer range, inclusive.
        margin_mm: clearance (mm) between a lesion's footprint (every voxel it changes, soft edge
            included) and the liver boundary, existing tumors and other synthetic lesions: the
            whole lesion lies in the liver mask eroded by this margin.
        avoid_vessels: keep lesions off large vessels, told apart from parenchyma by HU.
        vessel_k_mad: a voxel is vessel when (smoothed) HU > parenchyma median + k * MAD.
        vessel_min_diameter_mm: vessels thinner than this are not avoided (lesions replace the
            parenchyma and small branches they cover, as real tumors do).
        vessel_min_volume_mm3: vessel components smaller than this are ignored (noise).
        vessel_overlap: largest fraction of a lesion's footprint that may lie on large vessels
            (0 = never touch one). Large lesions cannot avoid every vessel of a liver; a small
            fraction lets them grow over a vessel segment, which the lesion then replaces.
        hypodense_contrast_hu: lesion minus parenchyma (HU, positive number, subtracted).
        hyperdense_probability: fraction of lesions brighter than the parenchyma (arterial-like).
        hyperdense_contrast_hu: lesion minus parenchyma for hyperdense lesions (HU, added).
        rim_probability: fraction of lesions with an enhancing rim.
        rim_contrast_hu: rim brightness above the lesion body (HU).
        rim_width_mm: rim thickness (mm).
        necrosis_probability: fraction of lesions (of at least ``necrosis_min_diameter_mm``) with
            a necrotic core.
        necrosis_contrast_hu: core darkening below the lesion body (HU).
        necrosis_fraction: core radius as a fraction of the lesion's equivalent radius.
        necrosis_min_diameter_mm: smaller lesions never get a necrotic core.
        cyst_probability: fraction of lesions that are simple cysts: water density (``cyst_hu``,
            absolute HU), homogeneous, sharp-edged, and **labelled liver** (1), not tumor: a hard
            negative that teaches the network that a cyst is not a tumor (the project's label rule).
        cyst_hu: absolute HU of a cyst's content.
        lipiodol_probability: fraction of lesions that are dense post-embolisation (TACE) lipiodol
            deposits: absolute HU ``lipiodol_hu``, heterogeneous, labelled tumor (treated tumor).
        lipiodol_hu: absolute HU of lipiodol deposits.
        calcification_probability: fraction of tumors (hypo- or hyperdense) holding calcified foci.
        calcification_hu: absolute HU of the calcified foci.
        calcification_fraction: fraction of the lesion's volume that is calcified (punctate foci).
        texture_hu: standard deviation (HU) of the lesion's smooth internal heterogeneity.
        texture_scale_mm: Gaussian smoothing (mm) of that heterogeneity.
        edge_width_mm: soft-edge width: the lesion/parenchyma blend is a logistic of the signed
            distance to the boundary divided by this width (10-90 % width = 4.4 x this value).
        match_noise: add correlated noise so the lesion's noise equals the scan's (level and grain).
        local_background_mm: parenchyma HU is the median of liver voxels within this distance
            around the lesion (falls back to the whole liver when too few voxels).
        max_placement_tries: random candidate centres tried per lesion size before shrinking.
        shrink_factor: a lesion that fits nowhere is shrunk by this factor and tried again, down to
            ``diameter_mm[0]``; then it is skipped (recorded, never placed outside the liver).
    """

    count: IntRange = (1, 10)
    diameter_mm: Range = (3.0, 60.0)
    size_distribution: Literal["log_uniform", "uniform"] = "log_uniform"
    axis_ratio: Range = (0.75, 1.3)
    lobulation: Range = (0.0, 0.25)
    lobulation_scale: Range = (2.0, 5.0)
    merge_probability: Float = 0.15
    merge_blobs: IntRange = (2, 3)
    margin_mm: Float = 2.0
    avoid_vessels: Bool = True
    vessel_k_mad: Float = 3.0
    vessel_min_diameter_mm: Float = 4.0
    vessel_min_volume_mm3: Float = 50.0
    vessel_overlap: Float = 0.02
    hypodense_contrast_hu: Range = (15.0, 80.0)
    hyperdense_probability: Float = 0.1
    hyperdense_contrast_hu: Range = (15.0, 50.0)
    rim_probability: Float = 0.2
    rim_contrast_hu: Range = (10.0, 40.0)
    rim_width_mm: Range = (1.5, 4.0)
    necrosis_probability: Float = 0.25
    necrosis_contrast_hu: Range = (10.0, 40.0)
    necrosis_fraction: Range = (0.3, 0.6)
    necrosis_min_diameter_mm: Float = 20.0
    cyst_probability: Float = 0.0
    cyst_hu: Range = (0.0, 20.0)
    lipiodol_probability: Float = 0.0
    lipiodol_hu: Range = (250.0, 1200.0)
    calcification_probability: Float = 0.0
    calcification_hu: Range = (200.0, 700.0)
    calcification_fraction: Range = (0.05, 0.3)
    texture_hu: Range = (15.0, 35.0)
    texture_scale_mm: Range = (1.0, 3.0)
    edge_width_mm: Range = (0.3, 1.5)
    match_noise: Bool = True
    local_background_mm: Float = 15.0
    max_placement_tries: Int = 40
    shrink_factor: Float = 0.75

    @model_validator(mode="after")
    def _validate(self) -> LesionParams:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, tuple):
                check(value[0] <= value[1], name, "expected (low, high) with low <= high", value)
                check(min(value) >= 0, name, "expected values >= 0 (not negative)", value)
        for name in _PROBABILITIES:
            check(
                0.0 <= getattr(self, name) <= 1.0, name, "expected a fraction in [0, 1]", getattr(self, name)
            )
        total = self.cyst_probability + self.lipiodol_probability
        check(
            total <= 1.0,
            "lipiodol_probability",
            "cyst_probability + lipiodol_probability must be <= 1",
            total,
        )
        check(
            self.calcification_fraction[1] <= 1.0,
            "calcification_fraction",
            "expected fractions within [0, 1]",
            self.calcification_fraction,
        )
        check(self.diameter_mm[0] > 0, "diameter_mm", "expected diameters > 0 mm", self.diameter_mm)
        check(self.axis_ratio[0] > 0, "axis_ratio", "expected ratios > 0", self.axis_ratio)
        check(self.edge_width_mm[0] > 0, "edge_width_mm", "expected widths > 0 mm", self.edge_width_mm)
        check(
            self.lobulation[1] < 0.8,
            "lobulation",
            "expected values below 0.8 (relative radius)",
            self.lobulation,
        )
        check(self.merge_blobs[0] >= 2, "merge_blobs", "expected at least 2 blobs", self.merge_blobs)
        for name in _NON_NEGATIVE:
            check(getattr(self, name) >= 0, name, "expected a number >= 0", getattr(self, name))
        check(
            0.0 < self.shrink_factor < 1.0, "shrink_factor", "expected a factor in (0, 1)", self.shrink_factor
        )
        check(
            self.max_placement_tries >= 1,
            "max_placement_tries",
            "expected an integer >= 1",
            self.max_placement_tries,
        )
        return self

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of every parameter, in declaration order."""
        return tuple(cls.model_fields)

    @classmethod
    def from_dict(cls, values: Any, *, where: str = "lesion parameters") -> LesionParams:
        """Build from a (YAML/JSON-loaded) mapping; missing keys keep their defaults.

        Raises:
            ConfigError: naming any unknown key (and listing the valid ones) or any bad value.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"lesion parameters must be a mapping, got {type(values).__name__}")
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown synthetic-lesion parameter(s) {unknown}; valid: {', '.join(cls.field_names())}"
            )
        return super().from_dict(values, where=where)
