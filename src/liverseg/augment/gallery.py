"""Gallery PNG: an axial slice through each lesion, original next to synthetic (liver window).

Volumes are shown in canonical orientation (``liverseg.io.to_canonical``) in the radiological
convention: patient right on the image's left, anterior up. Pixels keep their physical aspect ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from liverseg.io.volume import Volume, to_canonical
from liverseg.utils import atomic_path

__all__ = ["LIVER_WINDOW", "GalleryItem", "Panel", "lesion_gallery", "lesion_panel", "panel_gallery"]

# (level, width) HU: the liver window of the contract (liverseg.preprocessing.WINDOWS["liver"]).
LIVER_WINDOW = (50.0, 400.0)

# (center_voxel_zyx on the input grid, lesion diameter in mm, row title)
GalleryItem = tuple[Sequence[int], float, str]


def _to_canonical_index(volume: Volume, canon: Volume, index_zyx: Sequence[int]) -> tuple[int, int, int]:
    physical = volume.index_to_physical(np.asarray(index_zyx, float))
    idx = np.rint(canon.physical_to_index(physical)).astype(int)
    return tuple(int(np.clip(i, 0, n - 1)) for i, n in zip(idx, canon.shape, strict=True))  # type: ignore[return-value]


def lesion_gallery(
    original: Volume,
    synthetic: Volume,
    label: Volume,
    items: Sequence[GalleryItem],
    path: str | Path,
    *,
    window: tuple[float, float] = LIVER_WINDOW,
    max_rows: int = 12,
    min_half_mm: float = 25.0,
    titles: tuple[str, str] = ("original", "synthetic"),
) -> Path:
    """Write a PNG with one row per lesion: original slice, synthetic slice, synthetic + outline.

    Args:
        original: CT before insertion (any orientation).
        synthetic: CT after insertion, same grid.
        label: label map after insertion (tumor outline = label 2), same grid.
        items: ``(center_voxel_zyx, diameter_mm, title)`` per lesion, indices on the input grid.
        path: output ``.png`` (written atomically).
        window: display ``(level, width)`` in HU.
        max_rows: at most this many lesions are shown.
        min_half_mm: the crop around each lesion reaches ``max(min_half_mm, 1.5 x diameter)``
            from its centre (mm).
        titles: column titles of the first two panels.

    Returns:
        The written path.
    """

    orig_c, _ = to_canonical(original)
    syn_c, _ = to_canonical(synthetic)
    lab_c, _ = to_canonical(label)
    level, width = window
    lo, hi = level - width / 2, level + width / 2
    shown = list(items)[:max_rows]
    n_rows = max(len(shown), 1)
    fig = Figure(figsize=(7.5, 2.5 * n_rows), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, 3, squeeze=False)
    _, sy, sx = orig_c.spacing
    for row, (center, diameter, title) in enumerate(shown):
        cz, cy, cx = _to_canonical_index(original, orig_c, center)
        tumor = lab_c.array[cz] == 2
        extent = max(min_half_mm, 1.5 * float(diameter))
        hy, hx = int(extent / sy), int(extent / sx)
        ry = slice(max(cy - hy, 0), min(cy + hy + 1, orig_c.shape[1]))
        rx = slice(max(cx - hx, 0), min(cx + hx + 1, orig_c.shape[2]))
        panels = (orig_c.array[cz][ry, rx], syn_c.array[cz][ry, rx], syn_c.array[cz][ry, rx])
        for col, img in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, aspect=sy / sx, interpolation="nearest")
            if col == 2 and tumor[ry, rx].any():
                ax.contour(tumor[ry, rx].astype(float), levels=[0.5], colors="red", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title((*titles, "label 2 outline")[col], fontsize=9)
        axes[row][0].set_ylabel(f"{title}\nslice {cz}", fontsize=8)
    if not shown:
        axes[0][1].text(0.5, 0.5, "no lesion", ha="center", va="center")
        for ax in axes[0]:
            ax.set_axis_off()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


@dataclass(frozen=True)
class Panel:
    """An axial crop for a gallery: HU ``image`` (rows, cols), lesion ``mask``, pixel aspect, title."""

    image: np.ndarray
    mask: np.ndarray
    aspect: float
    title: str


def lesion_panel(
    image_hu: np.ndarray,
    mask: np.ndarray,
    spacing_zyx: Sequence[float],
    title: str,
    *,
    min_half_mm: float = 20.0,
) -> Panel:
    """Crop the axial slice (array axis 0) where ``mask`` has its largest cross-section.

    Args:
        image_hu: ``(z, y, x)`` HU on a canonical grid (axis 0 axial, radiological display).
        mask: ``(z, y, x)`` bool, the lesion.
        spacing_zyx: voxel size in mm.
        title: panel title.
        min_half_mm: the crop reaches at least this far (mm) from the lesion's centre.
    """
    areas = mask.sum(axis=(1, 2))
    z = int(np.argmax(areas))
    ys, xs = np.nonzero(mask[z])
    sy, sx = float(spacing_zyx[1]), float(spacing_zyx[2])
    cy, cx = round(float(ys.mean())), round(float(xs.mean()))
    half = max(min_half_mm, 0.8 * max(np.ptp(ys) * sy, np.ptp(xs) * sx))
    ry = slice(max(cy - int(half / sy), 0), min(cy + int(half / sy) + 1, mask.shape[1]))
    rx = slice(max(cx - int(half / sx), 0), min(cx + int(half / sx) + 1, mask.shape[2]))
    return Panel(np.asarray(image_hu[z][ry, rx], np.float32), mask[z][ry, rx].copy(), sy / sx, title)


def panel_gallery(
    rows: Sequence[tuple[str, Sequence[Panel]]],
    path: str | Path,
    *,
    window: tuple[float, float] = LIVER_WINDOW,
    outline: bool = False,
    panel_inches: float = 1.6,
    dpi: int = 72,
) -> Path:
    """Write a PNG grid: one row per ``(row title, panels)``, liver window, optional outlines."""

    n_rows = max(len(rows), 1)
    n_cols = max([len(p) for _, p in rows] + [1])
    fig = Figure(figsize=(panel_inches * n_cols + 0.4, panel_inches * n_rows + 0.3), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    level, width = window
    for r, (row_title, panels) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels):
                ax.set_axis_off()
                continue
            p = panels[c]
            ax.imshow(
                p.image,
                cmap="gray",
                vmin=level - width / 2,
                vmax=level + width / 2,
                aspect=p.aspect,
                interpolation="nearest",
            )
            if outline and p.mask.any():
                ax.contour(p.mask.astype(float), levels=[0.5], colors="red", linewidths=0.6)
            ax.set_title(p.title, fontsize=7)
        axes[r][0].set_ylabel(row_title, fontsize=8)
    fig.tight_layout(pad=0.3)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
