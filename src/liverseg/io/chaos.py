"""CHAOS challenge CT cases (Kavur et al., Zenodo 3431873): ``<case>/DICOM_anon`` + ``<case>/Ground``.

Each CT case holds the DICOM slices (``iNNNN,0000b.dcm``) and one liver ground-truth PNG per
slice (``liver_GT_NNN.png``). The n-th PNG belongs to the n-th DICOM file in file-name order
(checked on case 3: with this pairing 94% of mask pixels lie in 60-200 HU against 60% for the
reversed order, and the liver sits on the patient's right). The PNG rows/columns are the DICOM
pixel rows/columns, unflipped. The volume itself is ordered by slice position (via
:func:`read_dicom_series`), so each mask is placed at the array index of its DICOM file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from liverseg.errors import InputError
from liverseg.io.dicom_series import read_dicom_series
from liverseg.io.labels import LabelMap
from liverseg.io.png_stack import natural_key, read_png_slices
from liverseg.io.volume import Volume

__all__ = ["read_chaos_case"]

log = logging.getLogger(__name__)

#: median HU inside a correctly aligned contrast-CT liver mask lies well inside this range
_LIVER_HU_RANGE = (0.0, 250.0)


def read_chaos_case(folder: str | Path) -> tuple[Volume, Volume]:
    """Read one CHAOS CT case folder as ``(image, label)``.

    Args:
        folder: a case folder holding ``DICOM_anon/`` and ``Ground/``.

    Returns:
        image: float32 HU ``(z, y, x)`` from the DICOM series (see :func:`read_dicom_series`).
        label: uint8 on the same grid, 1 = liver (CHAOS CT labels the liver only), 0 elsewhere.

    Raises:
        InputError: missing sub-folders, a PNG count that differs from the DICOM file count,
            mask sizes that differ from the slices, or masks that are not binary.
    """
    folder = Path(folder)
    dicom_dir, ground_dir = folder / "DICOM_anon", folder / "Ground"
    for sub in (dicom_dir, ground_dir):
        if not sub.is_dir():
            raise InputError(
                f"expected a CHAOS CT case folder with DICOM_anon/ and Ground/, missing {sub.name}/", folder
            )
    image = read_dicom_series(dicom_dir)
    dicom = image.metadata["dicom"]
    all_files = sorted([*dicom["files"], *dicom["dropped_files"]], key=natural_key)
    pngs = sorted(
        (p for p in ground_dir.iterdir() if p.suffix.lower() == ".png"), key=lambda p: natural_key(p.name)
    )
    if len(pngs) != len(all_files):
        raise InputError(
            f"expected one ground-truth PNG per DICOM slice ({len(all_files)}), got {len(pngs)} PNGs",
            ground_dir,
        )
    masks = read_png_slices(pngs)
    if masks.shape[1:] != image.shape[1:]:
        raise InputError(
            f"expected ground-truth PNGs of the slice size {image.shape[1:]} (rows, columns), got "
            f"{masks.shape[1:]}",
            ground_dir,
        )
    values = np.unique(masks)
    if values.size > 2:
        raise InputError(
            f"expected binary liver masks (CHAOS CT), got {values.size} grey values "
            f"{values[:8].tolist()} (CHAOS MR ground truth is not supported here)",
            ground_dir,
        )
    z_of = {name: k for k, name in enumerate(dicom["files"])}
    label = np.zeros(image.shape, dtype=np.uint8)
    for png_index, name in enumerate(all_files):
        if name in z_of:
            label[z_of[name]] = masks[png_index] > 0
        elif masks[png_index].any():
            log.warning(
                "%s: mask %s belongs to the dropped slice %s; ignored", folder, pngs[png_index].name, name
            )
    if label.any():
        median_hu = float(np.median(image.array[label > 0]))
        if not _LIVER_HU_RANGE[0] <= median_hu <= _LIVER_HU_RANGE[1]:
            log.warning(
                "%s: median HU inside the liver mask is %.0f, expected %g-%g for liver; the ground "
                "truth may be misaligned with the slices",
                folder,
                median_hu,
                *_LIVER_HU_RANGE,
            )
    meta = {"source": str(ground_dir), "mapping": {"liver": 1}, "png_files": [p.name for p in pngs]}
    return image, LabelMap.on(image.grid, label, **meta)
