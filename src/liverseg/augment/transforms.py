"""Training-time synthetic lesions: a transform for 2.5D slabs ``(C, H, W)`` and 3D volumes.

Usage from the training config (section ``augment.synthetic_lesions``)::

    synthetic_lesions:
      p: 0.5                      # probability per sample
      params:                     # any LesionParams field, plus replace_real_tumors
        count: [1, 3]
        diameter_mm: [3, 60]
        replace_real_tumors: false

``from_config(section)`` builds the transform; ``make_transform(**params)`` (p = 1, the caller draws
p) is what ``liverseg.training.augmentation`` calls.

Slabs. A slab is ``C`` adjacent slices (``spacing_zyx[0]`` = the slice spacing); the lesion is one 3D
object across them, cut by the slab's first and last slice (``border="open"``: the liver continues
beyond the slab). Pass the label of every slice, ``(C, H, W)``: the lesion then provably stays
inside the liver of each slice. A ``(H, W)`` label (the centre slice only) is accepted as an
approximation: the other slices' liver is taken as the centre slice's liver restricted to voxels
whose smoothed HU looks like parenchyma (median +- 3 MAD of the centre slice's liver), and the
returned label is ``(H, W)`` again.

Synthetic-only experiment arm (``replace_real_tumors: true``): real tumor voxels (label 2 in the
input) are relabelled liver (1) in the output, and synthetic lesions keep clear of them. The real
tumors are still visible in the image, so a network would be taught to call them liver: **exclude
samples that contain real tumors** (:func:`has_real_tumor` on the sample's label, or on the case's
label to drop whole cases) and keep ``replace_real_tumors`` as a safety net. Hiding real tumors by
inpainting parenchyma is not done: an inpainted tumor leaves traces a network can learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from liverseg.augment.appearance import robust_stats
from liverseg.augment.lesions import TUMOR, insert_lesions, make_rng
from liverseg.augment.params import LesionParams
from liverseg.errors import ConfigError, GeometryError, InputError

__all__ = ["SyntheticLesionTransform", "from_config", "has_real_tumor", "make_transform"]

_SECTION_KEYS = ("p", "params")
_EXTRA_PARAM_KEYS = ("replace_real_tumors",)
_HU_GATE_K = 3.0


def has_real_tumor(label: np.ndarray) -> bool:
    """True when ``label`` (any shape) contains tumor voxels (label 2)."""
    return bool(np.any(np.asarray(label) == TUMOR))


@dataclass(frozen=True)
class SyntheticLesionTransform:
    """Insert synthetic lesions with probability ``p``.

    Callable as ``(image_hu, label, spacing_zyx, rng) -> (image_hu, label)`` where ``image_hu`` is a
    ``(C, H, W)`` slab or a ``(Z, Y, X)`` volume/patch in HU, ``label`` is ``(C, H, W)``/``(Z, Y, X)``
    (or ``(H, W)`` for the slab's centre slice, see the module docstring), ``spacing_zyx`` the voxel
    size in mm and ``rng`` a ``np.random.Generator`` (or seed). Inputs are not modified; samples
    without liver are returned unchanged.

    Attributes:
        params: the random ranges (:class:`LesionParams`).
        p: probability of inserting lesions in a sample.
        replace_real_tumors: relabel real tumors (label 2 in the input) as liver in the output.
    """

    params: LesionParams = field(default_factory=LesionParams)
    p: float = 1.0
    replace_real_tumors: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.params, LesionParams):
            raise ConfigError(f"params must be a LesionParams, got {type(self.params).__name__}")
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"synthetic_lesions.p must be a probability in [0, 1], got {self.p!r}")
        if not isinstance(self.replace_real_tumors, bool):
            raise ConfigError(f"replace_real_tumors must be true or false, got {self.replace_real_tumors!r}")

    def __call__(
        self,
        image_hu: np.ndarray,
        label: np.ndarray,
        spacing_zyx: Sequence[float],
        rng: np.random.Generator | int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        gen = make_rng(rng)
        image_hu, label = np.asarray(image_hu), np.asarray(label)
        if image_hu.ndim != 3:
            raise InputError(
                f"expected a (C, H, W) slab or (Z, Y, X) volume, got image shape {image_hu.shape}"
            )
        centre_only = label.ndim == 2
        if centre_only and label.shape != image_hu.shape[1:]:
            raise GeometryError(
                f"2D label shape {label.shape} does not match the slab's slices {image_hu.shape[1:]}"
            )
        if not centre_only and label.shape != image_hu.shape:
            raise GeometryError(
                f"label shape {label.shape} must be the image shape {image_hu.shape} or its slice shape "
                f"{image_hu.shape[1:]}"
            )
        real = label == TUMOR if self.replace_real_tumors else None
        apply = self.p >= 1.0 or gen.random() < self.p
        if apply and (label > 0).any():
            label3 = self._label_3d(image_hu, label, spacing_zyx) if centre_only else label
            result = insert_lesions(
                image_hu, label3, spacing_zyx, self.params, rng=gen, border="open", empty_liver="skip"
            )
            image_hu = result.image
            label = result.label[image_hu.shape[0] // 2] if centre_only else result.label
        if real is not None and real.any():
            label = label.copy()
            label[real] = 1
        return image_hu, label

    @staticmethod
    def _label_3d(image_hu: np.ndarray, label2d: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
        """Approximate label of every slab slice from the centre slice's label (module docstring)."""
        c = image_hu.shape[0] // 2
        sp = [float(s) for s in spacing_zyx]
        sm = ndimage.gaussian_filter(
            image_hu.astype(np.float32), (0, 1.0 / sp[1], 1.0 / sp[2]), mode="nearest"
        )
        label3 = np.repeat(label2d[None].astype(np.uint8), image_hu.shape[0], axis=0)
        parenchyma = label2d == 1
        if parenchyma.sum() < 20:
            return label3
        median, mad = robust_stats(sm[c][parenchyma].astype(np.float64))
        looks_liver = np.abs(sm - median) <= _HU_GATE_K * max(mad, 1.0)
        looks_liver[c] = True
        label3[~looks_liver] = 0
        return label3


def make_transform(**params: Any) -> SyntheticLesionTransform:
    """The transform with ``p = 1`` (the caller draws p) from :class:`LesionParams` fields and
    ``replace_real_tumors``; unknown names raise :class:`ConfigError` listing the valid ones."""
    replace = params.pop("replace_real_tumors", False)
    try:
        lesion_params = LesionParams.from_dict(params)
    except ConfigError as exc:
        raise ConfigError(f"augment.synthetic_lesions.params: {exc}") from exc
    return SyntheticLesionTransform(lesion_params, 1.0, replace)


def from_config(section: Mapping[str, Any] | None) -> SyntheticLesionTransform:
    """Build the transform from the config section ``augment.synthetic_lesions``.

    Args:
        section: ``{"p": float, "params": {LesionParams fields..., "replace_real_tumors": bool}}``;
            missing keys take their defaults (p = 0.5). None gives the defaults.

    Raises:
        ConfigError: unknown keys (named, with the valid ones) or bad values.
    """
    section = dict(section or {})
    unknown = sorted(set(section) - set(_SECTION_KEYS))
    if unknown:
        raise ConfigError(
            f"augment.synthetic_lesions: unknown key(s) {unknown}; valid: {', '.join(_SECTION_KEYS)} "
            f"(lesion parameters go under 'params')"
        )
    params = section.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"augment.synthetic_lesions.params must be a mapping, got {type(params).__name__}")
    unknown = sorted(set(params) - set(LesionParams.field_names()) - set(_EXTRA_PARAM_KEYS))
    if unknown:
        raise ConfigError(
            f"augment.synthetic_lesions.params: unknown key(s) {unknown}; valid: "
            f"{', '.join(LesionParams.field_names() + _EXTRA_PARAM_KEYS)}"
        )
    transform = make_transform(**dict(params))
    return SyntheticLesionTransform(transform.params, section.get("p", 0.5), transform.replace_real_tumors)
