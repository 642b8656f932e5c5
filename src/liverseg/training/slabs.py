"""Stage specs and 2.5D slabs: the one definition of a network input, shared with inference.

A stage network sees, for axial slice ``z``, the ``2k+1`` slices ``z-k .. z+k`` of a volume on the
stage grid (edge slices replicated at both ends), windowed to ``[0, 1]``. Training builds the same
slab in HU first (so synthetic lesions can be inserted in HU) and windows it with
:func:`normalise_slab`; :func:`make_slab` is the composition used by inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from liverseg.errors import ConfigError, InputError
from liverseg.preprocessing import window

__all__ = ["StageSpec", "default_classes", "gather_slab", "make_slab", "normalise_slab", "slab_indices"]

StageName = Literal["liver", "tumor", "single"]


def default_classes(stage: str) -> tuple[str, ...]:
    """Output classes of a stage: ``(background, liver)`` for ``liver``, else with ``tumor``."""
    if stage == "liver":
        return ("background", "liver")
    if stage in ("tumor", "single"):
        return ("background", "liver", "tumor")
    raise ConfigError(f"stage.stage: expected 'liver', 'tumor' or 'single', got {stage!r}")


@dataclass(frozen=True)
class StageSpec:
    """Everything inference needs to reproduce training's input for one stage.

    Attributes:
        stage: ``liver`` (stage 1, whole slices at low resolution), ``tumor`` (stage 2, liver box
            at full in-plane resolution) or ``single`` (whole slices, three classes).
        classes: output channel names, index = label value.
        context_slices: ``k``; the network sees ``2k+1`` adjacent slices (``in_channels``).
        spacing_zyx: target spacing in mm; ``z`` None keeps the native slices.
        window: ``(level, width)`` in HU, mapped to ``[0, 1]``.
        crop_margin_mm: tumor stage: margin around the liver box (mm).
    """

    stage: StageName
    classes: tuple[str, ...]
    context_slices: int
    spacing_zyx: tuple[float | None, float, float]
    window: tuple[float, float]
    crop_margin_mm: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        z, y, x = self.spacing_zyx
        object.__setattr__(self, "spacing_zyx", (None if z is None else float(z), float(y), float(x)))
        object.__setattr__(self, "window", (float(self.window[0]), float(self.window[1])))
        object.__setattr__(self, "context_slices", int(self.context_slices))
        object.__setattr__(self, "crop_margin_mm", float(self.crop_margin_mm))
        if self.context_slices < 0:
            raise ConfigError(f"StageSpec.context_slices: expected k >= 0, got {self.context_slices}")

    @property
    def in_channels(self) -> int:
        """``2k + 1``."""
        return 2 * self.context_slices + 1

    @property
    def out_channels(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe dict (lists for tuples)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageSpec:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                stage=data["stage"],
                classes=tuple(data["classes"]),
                context_slices=int(data["context_slices"]),
                spacing_zyx=tuple(data["spacing_zyx"]),  # type: ignore[arg-type]
                window=tuple(data["window"]),  # type: ignore[arg-type]
                crop_margin_mm=float(data.get("crop_margin_mm", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"invalid stage spec {dict(data)!r}: {exc}") from exc

    def resolved_spacing(self, native_zyx: Sequence[float]) -> tuple[float, float, float]:
        """Target spacing with ``z`` None replaced by the native slice spacing (mm)."""
        z, y, x = self.spacing_zyx
        return (float(native_zyx[0]) if z is None else z, y, x)


def slab_indices(n_slices: int, k: int, centers: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Slice indices ``(len(centers), 2k+1)`` of the slabs centred on ``centers`` (default: all).

    Indices beyond either end are clamped, i.e. the edge slice is replicated.
    """
    c = np.arange(n_slices) if centers is None else np.asarray(centers, dtype=np.int64).reshape(-1)
    if n_slices < 1:
        raise InputError("expected a volume with at least one slice, got 0")
    if c.size and (c.min() < 0 or c.max() >= n_slices):
        raise InputError(f"slab centres must lie in [0, {n_slices - 1}], got {c.min()}..{c.max()}")
    return np.clip(c[:, None] + np.arange(-k, k + 1)[None, :], 0, n_slices - 1)


def gather_slab(array_zyx: np.ndarray, z: int, k: int) -> np.ndarray:
    """The HU slab ``(2k+1, y, x)`` centred on slice ``z`` (same dtype as ``array_zyx``)."""
    return array_zyx[slab_indices(array_zyx.shape[0], k, [z])[0]]


def normalise_slab(slab_hu: np.ndarray, spec: StageSpec) -> np.ndarray:
    """Window HU values to float32 ``[0, 1]`` with ``spec.window`` (any shape)."""

    level, width = spec.window
    return np.asarray(window(slab_hu, level, width), dtype=np.float32)


def make_slab(volume_array_hu: np.ndarray, spec: StageSpec) -> np.ndarray:
    """Network input of every slice: ``(z, 2k+1, y, x)`` float32 in ``[0, 1]``.

    Args:
        volume_array_hu: ``(z, y, x)`` HU on the stage grid (already resampled/cropped).
        spec: the stage spec (``context_slices`` and ``window`` are used).
    """
    arr = np.asarray(volume_array_hu)
    if arr.ndim != 3:
        raise InputError(f"make_slab expects a (z, y, x) HU array, got shape {arr.shape}")
    windowed = normalise_slab(arr, spec)
    return windowed[slab_indices(arr.shape[0], spec.context_slices)]
