"""Post-processing of cascade predictions (numpy only, on the canonical grid).

Steps, in order (each a pure function so it can be tested and ablated on its own):

1. :func:`keep_largest_liver` — the liver is one organ: keep the largest 26-connected
   component of liver-or-tumor, drop everything else (spleen/heart false positives).
2. :func:`fill_liver_holes` — fill enclosed holes of the liver (vessels, lesions the network
   missed at the centre) slice by slice and in 3D; the filled voxels become liver.
3. tumors only inside the liver: a tumor voxel that is not part of the kept liver component is
   removed by step 1 already (tumor counts as liver for connectivity).
4. :func:`remove_small_lesions` — tumor components below ``min_lesion_mm3`` become liver.
5. :func:`filter_lesions_by_confidence` — object-level false-positive reduction in the spirit of
   Chlebus et al. 2018: a lesion candidate whose mean tumor probability is low is relabelled
   liver. (Chlebus et al. trained a random forest on object features; with the few labelled
   cases available here a single, interpretable confidence feature is what can be validated.)
"""

from __future__ import annotations

import logging

import cc3d
import numpy as np
from scipy import ndimage

__all__ = [
    "fill_liver_holes",
    "filter_lesions_by_confidence",
    "keep_largest_liver",
    "postprocess_labels",
    "remove_small_lesions",
]

log = logging.getLogger(__name__)
LIVER, TUMOR = 1, 2


def keep_largest_liver(labels: np.ndarray) -> np.ndarray:
    """Keep only the largest 26-connected component of ``labels >= 1``.

    Args:
        labels: uint8 ``(z, y, x)`` with 0/1/2.
    Returns:
        A new uint8 array; voxels outside the largest component are set to 0.
    """
    fg = labels >= LIVER
    if not fg.any():
        return labels.copy()
    largest = cc3d.largest_k(fg.astype(np.uint8), k=1, connectivity=26) > 0
    out = labels.copy()
    out[~largest] = 0
    return out


def fill_liver_holes(labels: np.ndarray) -> np.ndarray:
    """Fill holes enclosed by liver-or-tumor, per axial slice and in 3D; filled voxels become liver."""
    fg = labels >= LIVER
    if not fg.any():
        return labels.copy()
    filled = ndimage.binary_fill_holes(fg)
    for z in np.flatnonzero(fg.any(axis=(1, 2))):
        filled[z] = ndimage.binary_fill_holes(filled[z])
    out = labels.copy()
    out[filled & (labels == 0)] = LIVER
    return out


def remove_small_lesions(
    labels: np.ndarray, spacing_zyx: tuple[float, float, float], min_mm3: float
) -> np.ndarray:
    """Relabel tumor components smaller than ``min_mm3`` (mm^3) as liver."""
    if min_mm3 <= 0 or not (labels == TUMOR).any():
        return labels.copy()
    voxel_mm3 = float(np.prod(spacing_zyx))
    comps = cc3d.connected_components((labels == TUMOR).astype(np.uint8), connectivity=26)
    sizes = np.bincount(comps.ravel())
    small = np.flatnonzero(sizes * voxel_mm3 < min_mm3)
    small = small[small > 0]
    out = labels.copy()
    if small.size:
        out[np.isin(comps, small)] = LIVER
        log.debug("removed %d lesion(s) smaller than %.0f mm^3", small.size, min_mm3)
    return out


def filter_lesions_by_confidence(
    labels: np.ndarray, tumor_prob: np.ndarray, min_mean_prob: float
) -> np.ndarray:
    """Relabel lesion candidates whose mean tumor probability is below ``min_mean_prob`` as liver.

    Args:
        labels: uint8 ``(z, y, x)``.
        tumor_prob: float ``(z, y, x)`` tumor probability in [0, 1] on the same grid.
        min_mean_prob: threshold on the component's mean probability; 0 disables the filter.
    """
    if min_mean_prob <= 0 or not (labels == TUMOR).any():
        return labels.copy()
    comps = cc3d.connected_components((labels == TUMOR).astype(np.uint8), connectivity=26)
    n = int(comps.max())
    means = ndimage.mean(tumor_prob, labels=comps, index=np.arange(1, n + 1))
    weak = np.flatnonzero(np.asarray(means) < min_mean_prob) + 1
    out = labels.copy()
    if weak.size:
        out[np.isin(comps, weak)] = LIVER
        log.debug("confidence filter removed %d of %d lesion candidate(s)", weak.size, n)
    return out


def postprocess_labels(
    labels: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    *,
    min_lesion_mm3: float = 10.0,
    tumor_prob: np.ndarray | None = None,
    min_lesion_confidence: float = 0.0,
) -> np.ndarray:
    """Apply the whole post-processing chain (see the module docstring) and return uint8 labels."""
    out = keep_largest_liver(labels.astype(np.uint8, copy=False))
    out = fill_liver_holes(out)
    out = remove_small_lesions(out, spacing_zyx, min_lesion_mm3)
    if tumor_prob is not None and min_lesion_confidence > 0:
        out = filter_lesions_by_confidence(out, tumor_prob, min_lesion_confidence)
    return out
