"""Conversion from ``highdicom.Volume`` (used for DICOM-SEG and multi-frame images) to :class:`Volume`."""

from __future__ import annotations

from typing import Any

import numpy as np

from liverseg.errors import GeometryError
from liverseg.io.volume import Volume

__all__ = ["from_highdicom", "volume_from_affine"]


def from_highdicom(hvol: Any, **metadata: Any) -> Volume:
    """Convert a ``highdicom.Volume`` (spatial axes ``(slice, row, column)``, affine to LPS mm).

    highdicom's affine maps array indices in the same ``(z, y, x)`` order to LPS, i.e. it is
    :attr:`Volume.affine`; spacing is the column norms and the direction the normalised columns
    in reversed (ITK ``x, y, z``) order.

    Raises:
        GeometryError: the volume has channel dimensions or a non-orthogonal affine.
    """
    array = np.asarray(hvol.array)
    if array.ndim != 3:
        raise GeometryError(f"expected a 3D highdicom volume without channels, got shape {array.shape}")
    return volume_from_affine(array, hvol.affine, **metadata)


def volume_from_affine(array: np.ndarray, affine: np.ndarray, **metadata: Any) -> Volume:
    """A :class:`Volume` from a ``(z, y, x)`` array and a 4x4 affine mapping ``(z, y, x)`` indices to LPS mm."""
    lin = np.asarray(affine, dtype=float)[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)  # (z, y, x)
    direction = (lin / spacing[None, :])[:, ::-1]
    origin = np.asarray(affine, dtype=float)[:3, 3]
    return Volume(array, tuple(spacing), tuple(origin), direction, metadata)
