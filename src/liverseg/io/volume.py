"""The one volume type of liverseg: a voxel array plus its physical geometry.

Conventions (read these once, they hold everywhere in the package):

* ``array`` is indexed ``(z, y, x)`` (slice, row, column), the order numpy, nibabel-after-
  transpose and SimpleITK's ``GetArrayFromImage`` agree on.
* ``spacing`` is in millimetres **in array order** ``(z, y, x)``, so it can be passed straight to
  the metric functions ``f(pred, ref, spacing_mm)`` together with ``array``.
* ``origin`` is the physical position (mm, DICOM/ITK LPS patient coordinates ``(x, y, z)``) of
  the centre of voxel ``array[0, 0, 0]``.
* ``direction`` is the 3x3 ITK direction matrix: column ``j`` is the unit LPS vector along ITK
  index axis ``j`` where ITK index ``(i, j, k)`` is array index ``(k, j, i)`` reversed, i.e.
  column 0 is the direction of increasing ``x`` (array axis 2), column 2 of increasing ``z``.

A label map is a :class:`liverseg.io.labels.LabelMap`: a ``Volume`` whose array is ``uint8``
with values in {0, 1, 2}, checked when it is built; resampling and writing pick
nearest-neighbour and ``uint8`` from that type. :class:`Grid` is the geometry alone (what a file
header holds); grid comparisons and SimpleITK images are made here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment

from liverseg.errors import GeometryError, InputError
from liverseg.io.limits import ORTHONORMAL_ATOL

__all__ = ["Grid", "Reorientation", "Volume", "to_canonical"]

Triple = tuple[float, float, float]


def _as_triple(values: Any, name: str) -> Triple:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{name} must be 3 finite numbers, got {values!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _direction(values: Any) -> np.ndarray:
    direction = np.asarray(values, dtype=float)
    if direction.size == 9:
        direction = direction.reshape(3, 3)
    if direction.shape != (3, 3):
        raise GeometryError(f"direction must be a 3x3 matrix, got shape {direction.shape}")
    if not np.allclose(direction.T @ direction, np.eye(3), atol=ORTHONORMAL_ATOL):
        raise GeometryError(f"direction must be orthonormal, got {direction.tolist()}")
    direction = direction.copy()
    direction.setflags(write=False)
    return direction


@dataclass(frozen=True, eq=False)
class Grid:
    """A voxel grid without voxels: shape, spacing, origin, direction (conventions of the module).

    What a file header describes (:func:`liverseg.io.read_grid`), what :attr:`Volume.grid`
    returns, and the one place two grids are compared.

    Attributes:
        shape: ``(z, y, x)`` voxel counts.
        spacing: mm, ``(z, y, x)``.
        origin: LPS mm ``(x, y, z)`` of the centre of voxel ``[0, 0, 0]``.
        direction: 3x3 ITK direction cosines (read-only).
    """

    shape: tuple[int, int, int]
    spacing: Triple = (1.0, 1.0, 1.0)
    origin: Triple = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"expected a non-empty 3D grid (z, y, x), got shape {shape}")
        spacing = _as_triple(self.spacing, "spacing")
        if min(spacing) <= 0:
            raise GeometryError(f"spacing must be positive (mm), got {spacing}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", _as_triple(self.origin, "origin"))
        object.__setattr__(self, "direction", _direction(self.direction))

    @classmethod
    def from_geometry(cls, geometry: Mapping[str, Any]) -> Grid:
        """Inverse of :meth:`geometry` (e.g. a grid stored in a manifest or the service's study record)."""
        return cls(
            tuple(geometry["shape_zyx"]),  # type: ignore[arg-type]
            geometry["spacing_zyx_mm"],
            geometry["origin_lps_mm"],
            np.asarray(geometry["direction"], dtype=float),
        )

    @classmethod
    def from_itk_header(cls, reader: Any) -> Grid:
        """The grid of a 3D ``SimpleITK.ImageFileReader`` after ``ReadImageInformation`` (or an Image)."""
        sx, sy, sz = reader.GetSpacing()
        return cls(tuple(reversed(reader.GetSize())), (sz, sy, sx), reader.GetOrigin(), reader.GetDirection())  # type: ignore[arg-type]

    @property
    def spacing_xyz(self) -> Triple:
        """Spacing in ITK order ``(x, y, z)``."""
        z, y, x = self.spacing
        return (x, y, z)

    def same_as(self, other: Grid, *, atol: float = 1e-3) -> bool:
        """True when ``other`` has the same shape, spacing, origin and direction (within ``atol``)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def require_same(
        self,
        other: Grid,
        what: str = "label",
        *,
        reference: str = "image",
        error: type[Exception] = GeometryError,
    ) -> None:
        """Raise ``error`` (default :class:`GeometryError`) naming both grids unless they are the same."""
        if not self.same_as(other):
            raise error(
                f"{what} grid does not match the {reference} grid: {reference} {self.describe()}; "
                f"{what} {other.describe()}"
            )

    def describe(self) -> str:
        """One-line description: shape, spacing and origin (direction only when not identity)."""
        text = f"shape {self.shape}, spacing {fmt_triple(self.spacing)} mm, origin {fmt_triple(self.origin)}"
        if not np.allclose(self.direction, np.eye(3), atol=1e-6):
            text += f", direction {[[round(v, 4) for v in row] for row in self.direction.tolist()]}"
        return text

    def geometry(self) -> dict[str, Any]:
        """JSON-serialisable description of the grid (for reports and manifests)."""
        return {
            "shape_zyx": list(self.shape),
            "spacing_zyx_mm": [round(s, 6) for s in self.spacing],
            "origin_lps_mm": [round(o, 6) for o in self.origin],
            "direction": [[round(v, 6) for v in row] for row in self.direction.tolist()],
        }

    def to_sitk(self, array: np.ndarray) -> Any:
        """A ``SimpleITK.Image`` of ``array`` on this grid.

        Args:
            array: ``(z, y, x)`` (scalar image) or ``(C, z, y, x)`` (a C-component vector image,
                e.g. class probabilities), spatial shape equal to :attr:`shape`.
        """

        array = np.asarray(array)
        if array.ndim not in (3, 4) or tuple(array.shape[-3:]) != self.shape:
            raise GeometryError(
                f"expected an array of shape {self.shape} or (C, *{self.shape}) on this grid, got {array.shape}"
            )
        if array.ndim == 4:
            img = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(array, 0, -1)), isVector=True)
        else:
            img = sitk.GetImageFromArray(np.ascontiguousarray(array))
        img.SetSpacing(self.spacing_xyz)
        img.SetOrigin(self.origin)
        img.SetDirection(tuple(float(v) for v in self.direction.reshape(-1)))
        return img


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D voxel array with spacing, origin and direction (see the module docstring).

    Attributes:
        array: voxel data, shape ``(z, y, x)``; HU (float32/int16) for CT, uint8 for labels.
        spacing: voxel size in mm, array order ``(z, y, x)``.
        origin: LPS position in mm ``(x, y, z)`` of the centre of voxel ``[0, 0, 0]``.
        direction: 3x3 ITK direction cosines (columns: x, y, z index axes, in LPS).
        metadata: free-form provenance (source path, DICOM UIDs, ...); never geometry.
    """

    array: np.ndarray
    spacing: Triple = (1.0, 1.0, 1.0)
    origin: Triple = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(
                f"expected a 3D volume (z, y, x), got an array with {arr.ndim} dimension(s) "
                f"and shape {arr.shape}"
            )
        if min(arr.shape) < 1:
            raise InputError(f"expected a non-empty 3D volume, got shape {arr.shape}")
        grid = Grid(arr.shape, self.spacing, self.origin, self.direction)  # the geometry checks
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "spacing", grid.spacing)
        object.__setattr__(self, "origin", grid.origin)
        object.__setattr__(self, "direction", grid.direction)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ basic properties
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_xyz(self) -> Triple:
        """Spacing in ITK order ``(x, y, z)``."""
        z, y, x = self.spacing
        return (x, y, z)

    @property
    def grid(self) -> Grid:
        """The volume's :class:`Grid` (geometry without voxels)."""
        return Grid(self.shape, self.spacing, self.origin, self.direction)

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3."""
        return float(np.prod(self.spacing))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        return self.voxel_volume_mm3 / 1000.0

    @property
    def affine(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous array indices ``(z, y, x, 1)`` to LPS mm ``(x, y, z, 1)``."""
        d_scaled = self.direction * np.asarray(self.spacing_xyz)[None, :]  # columns x, y, z
        a = np.eye(4)
        a[:3, :3] = d_scaled[:, ::-1]  # array order z, y, x
        a[:3, 3] = self.origin
        return a

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Map array indices ``(..., 3)`` in ``(z, y, x)`` order to LPS mm ``(..., 3)``."""
        idx = np.asarray(index_zyx, dtype=float)
        aff = self.affine
        return idx @ aff[:3, :3].T + aff[:3, 3]

    def physical_to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`index_to_physical` (continuous indices, ``(z, y, x)``)."""
        pts = np.asarray(points_lps, dtype=float)
        aff = self.affine
        return (pts - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T

    # ------------------------------------------------------------------ derived volumes
    def with_array(self, array: np.ndarray, **metadata: Any) -> Volume:
        """A plain :class:`Volume` on the same grid with another array of the same shape.

        The result is a ``Volume`` whatever ``self`` is (e.g. a CT intensity array on a label
        map's grid); build a label map on a grid with :meth:`liverseg.io.LabelMap.on`.
        """
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise GeometryError(f"with_array needs shape {self.array.shape}, got {array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction, {**self.metadata, **metadata})

    def regridded(self, array: np.ndarray, grid: Grid, **metadata: Any) -> Volume:
        """The same kind of volume (``Volume`` or ``LabelMap``) with ``array`` on ``grid``.

        Used by reorientation and resampling so that a label map stays a label map (and is
        checked again) without the caller choosing its type.
        """
        return dataclasses.replace(
            self,
            array=array,
            spacing=grid.spacing,
            origin=grid.origin,
            direction=grid.direction,
            metadata={**self.metadata, **metadata},
        )

    def same_grid(self, other: Volume | Grid, *, atol: float = 1e-3) -> bool:
        """True when ``other`` has the same shape, spacing, origin and direction (within ``atol``)."""
        return self.grid.same_as(other if isinstance(other, Grid) else other.grid, atol=atol)

    def require_same_grid(self, other: Volume | Grid, what: str = "label") -> None:
        """Raise :class:`GeometryError` naming both grids unless ``other`` shares this grid."""
        self.grid.require_same(other if isinstance(other, Grid) else other.grid, what)

    def geometry(self) -> dict[str, Any]:
        """JSON-serialisable description of the grid (for reports and manifests)."""
        return self.grid.geometry()

    # ------------------------------------------------------------------ SimpleITK bridge
    @classmethod
    def from_sitk(cls, image: Any, **metadata: Any) -> Volume:
        """Build a volume from a 3D ``SimpleITK.Image`` (scalar pixels)."""

        if image.GetDimension() != 3:
            raise InputError(f"expected a 3D image, got {image.GetDimension()}D with size {image.GetSize()}")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(
                f"expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components per voxel"
            )
        grid = Grid.from_itk_header(image)
        return cls(sitk.GetArrayFromImage(image), grid.spacing, grid.origin, grid.direction, metadata)

    def to_sitk(self) -> Any:
        """Convert to a ``SimpleITK.Image`` with identical geometry."""
        return self.grid.to_sitk(self.array)

    def __repr__(self) -> str:
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing_zyx={fmt_triple(self.spacing)}, "
            f"origin={fmt_triple(self.origin)})"
        )


def fmt_triple(values: Any) -> str:
    """``(z, y, x)`` numbers as ``"(a, b, c)"`` with 4 significant digits (reprs and messages)."""
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


@dataclass(frozen=True)
class Reorientation:
    """An exact axis permutation/flip between an input grid and the canonical grid.

    ``perm[p]`` is the ITK index axis of the input that becomes canonical ITK axis ``p``;
    ``flip[p]`` says whether that axis is reversed. No interpolation is involved, so
    :meth:`to_original` is the exact inverse of the forward mapping.
    """

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    original: Volume

    @property
    def is_identity(self) -> bool:
        return self.perm == (0, 1, 2) and not any(self.flip)

    def to_canonical_array(self, array: np.ndarray) -> np.ndarray:
        """Apply the forward mapping to the last three axes of ``array`` (input grid, ``z,y,x``)."""
        lead = array.ndim - 3
        # array order (z,y,x) is ITK order reversed: ITK axis a is array axis 2 - a.
        itk_axes = [lead + 2 - self.perm[p] for p in (2, 1, 0)]
        out = np.transpose(array, [*range(lead), *itk_axes])
        for p in range(3):
            if self.flip[p]:
                out = np.flip(out, axis=lead + 2 - p)
        return np.ascontiguousarray(out)

    def to_original_array(self, array: np.ndarray) -> np.ndarray:
        """Map an array on the canonical grid (last three axes) back to the input grid exactly."""
        lead = array.ndim - 3
        out = array
        for p in range(3):
            if self.flip[p]:
                out = np.flip(out, axis=lead + 2 - p)
        # canonical array axis (lead + 2 - p) holds input ITK axis perm[p]
        inv = [0, 0, 0]
        for p in range(3):
            inv[2 - self.perm[p]] = lead + 2 - p
        out = np.transpose(out, [*range(lead), *inv])
        return np.ascontiguousarray(out)

    def to_original(self, volume: Volume) -> Volume:
        """Map a canonical-grid volume (e.g. a label map) back onto the input's exact grid."""
        expected = self.to_canonical_array(np.empty(self.original.shape, dtype=bool)).shape
        if volume.shape != expected:
            raise GeometryError(f"array on the canonical grid must have shape {expected}, got {volume.shape}")
        return volume.regridded(self.to_original_array(volume.array), self.original.grid)


def to_canonical(volume: Volume) -> tuple[Volume, Reorientation]:
    """Permute/flip ``volume`` so its direction is as close as possible to identity (LPS+).

    In the canonical grid array axis 2 runs right->left (x), axis 1 anterior->posterior (y) and
    axis 0 inferior->superior (z). Oblique directions keep their small rotation (no resampling);
    only the axis order and signs change. Returns the canonical volume and the
    :class:`Reorientation` that maps results back exactly.
    """

    d = volume.direction
    # cost[p, i]: how badly ITK axis i fits physical axis p
    rows, cols = linear_sum_assignment(-np.abs(d))
    perm = [0, 0, 0]
    for p, i in zip(rows, cols, strict=True):
        perm[int(p)] = int(i)
    flip = tuple(bool(d[p, perm[p]] < 0) for p in range(3))
    reo = Reorientation(tuple(perm), flip, volume)  # type: ignore[arg-type]
    if reo.is_identity:
        return volume, reo
    arr = reo.to_canonical_array(volume.array)
    sp_itk = volume.spacing_xyz
    new_sp_itk = [sp_itk[perm[p]] for p in range(3)]
    new_dir = np.stack([d[:, perm[p]] * (-1.0 if flip[p] else 1.0) for p in range(3)], axis=1)
    # origin: physical point of the input voxel that becomes canonical index (0,0,0)
    first_itk = np.zeros(3)
    shape_itk = volume.shape[::-1]
    for p in range(3):
        if flip[p]:
            first_itk[perm[p]] = shape_itk[perm[p]] - 1
    origin = volume.index_to_physical(first_itk[::-1])
    grid = Grid(arr.shape, (new_sp_itk[2], new_sp_itk[1], new_sp_itk[0]), origin, new_dir)  # type: ignore[arg-type]
    return volume.regridded(arr, grid), reo
