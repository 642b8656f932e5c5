"""Overlay pictures (PNG) of a segmented scan, drawn with matplotlib's Agg backend.

* ``overview.png``: axial, coronal and sagittal planes through the liver centre (volume centre
  when no liver was found) with the liver (green) and tumor (red) outlines.
* ``lesion_NN.png`` per lesion (``NN`` = report id, 1 = largest): the axial slice of its longest
  diameter, the whole slice with a box around the lesion and a zoom with the lesion outline and
  the diameter line (yellow, solid), the short axis (dashed) and the length.

Images use the liver window (W400/L50 HU) and the radiological convention (patient right on the
image's left, anterior up, superior up), drawn from the canonical grid with the physical pixel
aspect ratio, whatever the input's orientation.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from liverseg.errors import InputError
from liverseg.io.volume import Volume
from liverseg.reporting.measure import CanonicalScan, canonical_scan
from liverseg.utils import atomic_write_bytes, ensure_parent

__all__ = [
    "LIVER_WINDOW",
    "lesion_picture_name",
    "overlay_images",
    "render_lesion_png",
    "render_overview_png",
    "write_overlays",
]

LIVER_WINDOW = (50.0, 400.0)
"""(level, width) in HU of the liver window used for every picture."""
# Pictures are drawn for the largest lesions only (ids are assigned largest first): a scan with
# hundreds of segmented specks (a failed segmentation) must not spend minutes drawing them. The
# lesion table always lists every lesion.
MAX_LESION_PICTURES = 25

_LIVER_COLOUR, _TUMOR_COLOUR, _LINE_COLOUR = "#32cd32", "#ff3030", "#ffd700"


def _windowed(hu: np.ndarray) -> np.ndarray:
    level, width = LIVER_WINDOW
    return np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0.0, 1.0)


def _figure(width_in: float, height_in: float) -> Any:
    fig = Figure(figsize=(width_in, height_in), dpi=100, facecolor="black")
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor())
    return buf.getvalue()


def _panel(
    ax: Any,
    hu: np.ndarray,
    masks: list[tuple[np.ndarray, str]],
    aspect: float,
    title: str,
    letters: tuple[str, str, str, str],
) -> None:
    """Draw one plane: windowed HU, mask outlines, orientation letters (left, right, top, bottom)."""
    ax.imshow(_windowed(hu), cmap="gray", vmin=0, vmax=1, aspect=aspect, interpolation="nearest")
    for mask, colour in masks:
        if mask.any() and not mask.all():
            ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=0.8)
    ax.set_title(title, color="white", fontsize=8)
    ax.set_axis_off()
    h, w = hu.shape
    style = {"color": "white", "fontsize": 7, "ha": "center", "va": "center"}
    left, right, top, bottom = letters
    ax.text(w * 0.03, h / 2, left, **style)
    ax.text(w * 0.97, h / 2, right, **style)
    ax.text(w / 2, h * 0.04, top, **style)
    ax.text(w / 2, h * 0.96, bottom, **style)


def _centre(scan: CanonicalScan, report: dict[str, Any]) -> np.ndarray:
    shape = np.asarray(scan.labels.shape)
    centroid = report.get("liver_centroid_lps_mm")
    if centroid is None:
        return shape // 2
    idx = np.rint(scan.labels.physical_to_index(np.asarray(centroid, dtype=float))).astype(int)
    return np.clip(idx, 0, shape - 1)


def render_overview_png(scan: CanonicalScan, report: dict[str, Any]) -> bytes:
    """Three-plane overview through the liver centre, as PNG bytes."""
    if scan.image is None:
        raise InputError("an image is needed to draw overlays")
    hu, lab = scan.image.array, scan.labels.array
    sz, sy, sx = scan.labels.spacing
    cz, cy, cx = _centre(scan, report)
    planes = [  # (hu plane, label plane, aspect, title, letters): superior up in coronal/sagittal
        (hu[cz], lab[cz], sy / sx, f"axial (slice {scan.to_original_slice(cz)})", ("R", "L", "A", "P")),
        (hu[::-1, cy], lab[::-1, cy], sz / sx, "coronal", ("R", "L", "S", "I")),
        (hu[::-1, :, cx], lab[::-1, :, cx], sz / sy, "sagittal", ("A", "P", "S", "I")),
    ]
    fig = _figure(10.5, 3.8)
    for i, (h, lab2d, aspect, title, letters) in enumerate(planes):
        ax = fig.add_subplot(1, 3, i + 1)
        _panel(ax, h, [(lab2d >= 1, _LIVER_COLOUR), (lab2d == 2, _TUMOR_COLOUR)], aspect, title, letters)
    fig.suptitle("liver (green), tumor (red); liver window W400/L50", color="white", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def render_lesion_png(scan: CanonicalScan, lesion: dict[str, Any]) -> bytes:
    """Axial picture of one lesion at its longest diameter (whole slice + zoom), as PNG bytes."""
    if scan.image is None:
        raise InputError("an image is needed to draw overlays")

    ends = scan.to_canonical_index(np.asarray(lesion["diameter_endpoints_voxel"], dtype=float))
    k = int(np.clip(np.rint(ends[0, 0]), 0, scan.labels.shape[0] - 1))
    hu, lab, ids = scan.image.array[k], scan.labels.array[k], scan.lesion_ids[k]
    _, sy, sx = scan.labels.spacing
    aspect = sy / sx
    lesion_mask = ids == int(lesion["id"])
    # zoom window: centred on the diameter, at least 50 mm and 2.5 diameters wide
    half_mm = max(25.0, 1.25 * float(lesion["longest_axial_diameter_mm"]))
    mid = ends[:, 1:].mean(axis=0)
    hy, hx = int(np.ceil(half_mm / sy)), int(np.ceil(half_mm / sx))
    y0, y1 = max(int(mid[0]) - hy, 0), min(int(mid[0]) + hy + 1, hu.shape[0])
    x0, x1 = max(int(mid[1]) - hx, 0), min(int(mid[1]) + hx + 1, hu.shape[1])

    fig = _figure(9.0, 4.6)
    ax_full = fig.add_subplot(1, 2, 1)
    _panel(
        ax_full,
        hu,
        [(lab >= 1, _LIVER_COLOUR), (lab == 2, _TUMOR_COLOUR)],
        aspect,
        (
            f"axial slice {lesion['largest_slice_number']} (z {lesion['largest_slice_z_mm']:.1f} mm)"
            if "largest_slice_number" in lesion
            else f"axial index {lesion['largest_slice']}"
        ),
        ("R", "L", "A", "P"),
    )
    ax_full.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=_LINE_COLOUR, linewidth=0.8)
    )
    ax_zoom = fig.add_subplot(1, 2, 2)
    _panel(
        ax_zoom,
        hu[y0:y1, x0:x1],
        [(lesion_mask[y0:y1, x0:x1], _TUMOR_COLOUR)],
        aspect,
        "zoom",
        ("R", "L", "A", "P"),
    )
    ax_zoom.plot(
        ends[:, 2] - x0, ends[:, 1] - y0, color=_LINE_COLOUR, linewidth=1.2, marker="+", markersize=6
    )
    short = scan.to_canonical_index(np.asarray(lesion["short_axis_endpoints_voxel"], dtype=float))
    ax_zoom.plot(short[:, 2] - x0, short[:, 1] - y0, color=_LINE_COLOUR, linewidth=0.8, linestyle="--")
    ax_zoom.text(
        float(ends[:, 2].mean() - x0),
        float(ends[:, 1].min() - y0) - 2,
        f"{lesion['longest_axial_diameter_mm']:.1f} mm",
        color=_LINE_COLOUR,
        fontsize=8,
        ha="center",
        va="bottom",
    )
    measurable = "RECIST measurable" if lesion["recist_measurable"] else "not measurable (< 10 mm)"
    fig.suptitle(
        f"Lesion {lesion['id']}: {lesion['longest_axial_diameter_mm']:.1f} x {lesion['short_axis_mm']:.1f} mm, "
        f"{lesion['volume_ml']:.2f} ml, {lesion['location']['description']}, {measurable}",
        color="white",
        fontsize=9,
    )
    fig.tight_layout()
    return _png(fig)


def overlay_images(
    image: Volume, labels: Volume, report: dict[str, Any], *, scan: CanonicalScan | None = None
) -> list[tuple[str, bytes]]:
    """``[("overview.png", png), ("lesion_01.png", png), ...]`` for a scan and its report.

    Lesion pictures: the :data:`MAX_LESION_PICTURES` largest confirmed lesions (lowest ids) only;
    possible lesions (not label 2 in ``labels``) are listed in the report, not pictured.

    Raises:
        InputError: the report's lesions do not belong to ``labels`` (different lesion count).
    """
    scan = scan or canonical_scan(image, labels)
    all_lesions = report.get("lesions", [])
    lesions = [les for les in all_lesions if not les.get("possible", False)]
    if len(lesions) != scan.n_lesions:
        raise InputError(
            f"the report lists {len(lesions)} lesion(s) but the label map has "
            f"{scan.n_lesions}: report and labels do not belong together"
        )
    images = [("overview.png", render_overview_png(scan, report))]
    for lesion in sorted(lesions, key=lambda les: les["id"])[:MAX_LESION_PICTURES]:
        images.append((lesion_picture_name(lesion["id"], len(all_lesions)), render_lesion_png(scan, lesion)))
    return images


def lesion_picture_name(lesion_id: int, n_lesions: int) -> str:
    """File name of a lesion's picture: ``lesion_07.png`` (zero-padded to sort with ``n_lesions``)."""
    return f"lesion_{lesion_id:0{max(2, len(str(n_lesions)))}d}.png"


def write_overlays(image: Volume, labels: Volume, report: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write the overview and one picture per lesion into ``folder`` (atomically); returns the paths."""
    folder = Path(folder)
    ensure_parent(folder / "overview.png")
    return [atomic_write_bytes(folder / name, data) for name, data in overlay_images(image, labels, report)]
