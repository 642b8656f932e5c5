"""Slice-based layouts: CHAOS CT case folders and PNG slice stacks (the seed format).

Both are read by :mod:`liverseg.io` (``read_chaos_case``, ``read_png_stack``); this module only
finds the case folders, names the cases and records the label mapping.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from liverseg.data.cases import LayoutOptions, LoadedCase, SourceCase, case_number, sanitize_id
from liverseg.errors import ConfigError, GeometryError, InputError
from liverseg.io import read_chaos_case, read_png_stack
from liverseg.io.labels import LabelMap, check_label_map

if TYPE_CHECKING:
    from liverseg.io import Volume

__all__ = ["discover_chaos", "discover_png_slices"]

log = logging.getLogger(__name__)


def _no_map(options: LayoutOptions, fmt: str) -> None:
    if options.value_map is not None:
        raise ConfigError(f"--map does not apply to --format {fmt} (its mask values are fixed)")


def _checked(image: Volume, label: Volume, where: Path, what: str) -> tuple[Volume, LabelMap]:
    """Check ``label`` is on ``image``'s grid and holds 0/1/2; return both (label as uint8)."""
    try:
        image.require_same_grid(label, what=what)
    except GeometryError as exc:
        raise GeometryError(f"{where}: {exc}") from exc
    return image, check_label_map(label, path=where)


# ------------------------------------------------------------------------------------- CHAOS
def _is_chaos_case(folder: Path) -> bool:
    return (folder / "DICOM_anon").is_dir() and (folder / "Ground").is_dir()


def load_chaos(folder: Path) -> LoadedCase:
    """Read a CHAOS CT case folder (``DICOM_anon/`` + ``Ground/*.png``, liver only)."""

    image, label = _checked(*read_chaos_case(folder), folder, "CHAOS ground truth")
    if np.any(label.array == 2):
        raise InputError(
            "CHAOS CT ground truth is liver only, but the label map holds tumor (2) voxels", folder
        )
    mapping = {
        "ground": str(folder / "Ground"),
        "values": {"0": 0, "255 (liver)": 1},
        "rule": "Ground/liver_GT_NNN.png paired with DICOM_anon slice NNN by file index; liver only, no tumor label",
    }
    return LoadedCase(image=image, label=label, mapping=mapping)


def discover_chaos(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """A CHAOS CT case folder (``DICOM_anon`` + ``Ground``) or a folder of them (recursive).

    Case and patient id ``chaos_NN`` from the last number in the folder name (``3`` or
    ``chaos-ct-3`` -> ``chaos_03``).
    """
    _no_map(options, "chaos")
    folders = (
        [src]
        if _is_chaos_case(src)
        else sorted(p for p in src.rglob("*") if p.is_dir() and _is_chaos_case(p))
    )
    if not folders:
        raise InputError(
            "expected a CHAOS CT case folder (DICOM_anon/ and Ground/) or a folder of them, found none", src
        )
    cases = []
    for f in folders:
        n = case_number(f.name)
        cid = f"chaos_{n:02d}" if n is not None else f"chaos_{sanitize_id(f.name)}"
        cases.append(SourceCase(cid, cid, f, "chaos", lambda f=f: load_chaos(f)))
    return cases


# -------------------------------------------------------------------------------- PNG slices
def _is_png_case(folder: Path) -> bool:
    return (folder / "images").is_dir() and (folder / "masks").is_dir()


def load_png_case(folder: Path, spacing_zyx: tuple[float, float, float] | None) -> LoadedCase:
    """Read a seed-format PNG stack (``images/`` + ``masks/``; mask 127 liver, 255 lesion)."""

    image, label = _checked(
        *read_png_stack(folder / "images", folder / "masks", spacing_zyx=spacing_zyx, mask_encoding="seed"),
        folder,
        "PNG mask stack",
    )
    warnings = [
        f"{folder.name}: PNG slices hold 8-bit windowed grey values 0..255, not Hounsfield units; "
        "HU-based preprocessing does not apply to this case"
    ]
    log.warning(warnings[0])
    if spacing_zyx is None:  # read_png_stack has logged it already
        warnings.append(f"{folder.name}: PNG slices store no spacing; assumed 1 mm (pass --spacing Z Y X)")
    mapping = {
        "masks": str(folder / "masks"),
        "values": {"0": 0, "127": 1, "255": 2},
        "intensity": "png8 (grey values 0..255, not HU)",
        "spacing_zyx_mm": list(image.spacing),
        "spacing_assumed": spacing_zyx is None,
    }
    return LoadedCase(image=image, label=label, mapping=mapping, warnings=tuple(warnings))


def discover_png_slices(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """A seed-format case (``images/`` + ``masks/`` PNG slices) or a folder of such cases.

    Case and patient id ``png_<folder name>``.
    """
    _no_map(options, "png-slices")
    folders = (
        [src] if _is_png_case(src) else sorted(p for p in src.rglob("*") if p.is_dir() and _is_png_case(p))
    )
    if not folders:
        raise InputError(
            "expected a folder with images/ and masks/ PNG slices (or a folder of such folders), found none",
            src,
        )
    cases = []
    for f in folders:
        cid = f"png_{sanitize_id(f.name)}"
        cases.append(SourceCase(cid, cid, f, "png-slices", lambda f=f: load_png_case(f, options.spacing_zyx)))
    return cases
