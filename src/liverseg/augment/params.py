"""Parameters of the synthetic-lesion generator: a frozen dataclass with broad random ranges.

Every range is a ``(low, high)`` pair sampled uniformly unless the field's comment says otherwise;
set ``low == high`` to fix a value. Lengths are in mm, intensities in HU, probabilities in [0, 1].
The defaults follow the issue's ranges (1-10 lesions, 3-60 mm, hypodense by 15-80 HU, ...) and were
checked against the real 3D-IRCADb tumors with ``liverseg lesion-realism`` (docs/synthetic_lesions.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from liverseg.errors import ConfigError

__all__ = ["LesionParams"]

Range = tuple[float, float]
IntRange = tuple[int, int]

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


@dataclass(frozen=True)
class LesionParams:
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
    merge_probability: float = 0.15
    merge_blobs: IntRange = (2, 3)
    margin_mm: float = 2.0
    avoid_vessels: bool = True
    vessel_k_mad: float = 3.0
    vessel_min_diameter_mm: float = 4.0
    vessel_min_volume_mm3: float = 50.0
    vessel_overlap: float = 0.02
    hypodense_contrast_hu: Range = (15.0, 80.0)
    hyperdense_probability: float = 0.1
    hyperdense_contrast_hu: Range = (15.0, 50.0)
    rim_probability: float = 0.2
    rim_contrast_hu: Range = (10.0, 40.0)
    rim_width_mm: Range = (1.5, 4.0)
    necrosis_probability: float = 0.25
    necrosis_contrast_hu: Range = (10.0, 40.0)
    necrosis_fraction: Range = (0.3, 0.6)
    necrosis_min_diameter_mm: float = 20.0
    cyst_probability: float = 0.0
    cyst_hu: Range = (0.0, 20.0)
    lipiodol_probability: float = 0.0
    lipiodol_hu: Range = (250.0, 1200.0)
    calcification_probability: float = 0.0
    calcification_hu: Range = (200.0, 700.0)
    calcification_fraction: Range = (0.05, 0.3)
    texture_hu: Range = (15.0, 35.0)
    texture_scale_mm: Range = (1.0, 3.0)
    edge_width_mm: Range = (0.3, 1.5)
    match_noise: bool = True
    local_background_mm: float = 15.0
    max_placement_tries: int = 40
    shrink_factor: float = 0.75

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            if isinstance(value, tuple):
                self._check_range(f.name, value, integer=f.name in ("count", "merge_blobs"))
        if self.size_distribution not in ("log_uniform", "uniform"):
            raise ConfigError(
                f"size_distribution must be 'log_uniform' or 'uniform', got {self.size_distribution!r}"
            )
        for name in _PROBABILITIES:
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
                raise ConfigError(f"{name} must be a fraction in [0, 1], got {p!r}")
        if self.cyst_probability + self.lipiodol_probability > 1.0:
            raise ConfigError(
                "cyst_probability + lipiodol_probability must be <= 1, got "
                f"{self.cyst_probability + self.lipiodol_probability}"
            )
        if self.calcification_fraction[1] > 1.0:
            raise ConfigError(
                f"calcification_fraction must be within [0, 1], got {self.calcification_fraction}"
            )
        if self.count[0] < 0:
            raise ConfigError(f"count must be >= 0, got {self.count}")
        if self.diameter_mm[0] <= 0:
            raise ConfigError(f"diameter_mm must be > 0 mm, got {self.diameter_mm}")
        if self.axis_ratio[0] <= 0:
            raise ConfigError(f"axis_ratio must be > 0, got {self.axis_ratio}")
        if self.edge_width_mm[0] <= 0:
            raise ConfigError(f"edge_width_mm must be > 0 mm, got {self.edge_width_mm}")
        if self.lobulation[1] >= 0.8:
            raise ConfigError(f"lobulation must stay below 0.8 (relative radius), got {self.lobulation}")
        if self.merge_blobs[0] < 2:
            raise ConfigError(f"merge_blobs must be at least 2 blobs, got {self.merge_blobs}")
        for name in (
            "margin_mm",
            "vessel_k_mad",
            "vessel_min_diameter_mm",
            "vessel_min_volume_mm3",
            "necrosis_min_diameter_mm",
            "local_background_mm",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        for name in ("avoid_vessels", "match_noise"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not 0.0 < self.shrink_factor < 1.0:
            raise ConfigError(f"shrink_factor must be in (0, 1), got {self.shrink_factor!r}")
        if not isinstance(self.max_placement_tries, int) or self.max_placement_tries < 1:
            raise ConfigError(
                f"max_placement_tries must be an integer >= 1, got {self.max_placement_tries!r}"
            )

    def _check_range(self, name: str, value: tuple[Any, ...], *, integer: bool) -> None:
        kind = "integers" if integer else "numbers"
        ok = len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and (not integer or float(v).is_integer())
            for v in value
        )
        if not ok:
            raise ConfigError(f"{name} must be a (low, high) pair of {kind}, got {value!r}")
        low, high = value
        if low > high:
            raise ConfigError(f"{name} must have low <= high, got {value!r}")
        if any(v < 0 for v in value):
            raise ConfigError(f"{name} must not be negative, got {value!r}")
        if integer:
            object.__setattr__(self, name, (int(low), int(high)))

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of every parameter, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LesionParams:
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
        try:
            return cls(**dict(values))
        except TypeError as exc:  # pragma: no cover - unknown keys are caught above
            raise ConfigError(f"bad synthetic-lesion parameters: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable mapping (ranges as lists) that :meth:`from_dict` reads back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
