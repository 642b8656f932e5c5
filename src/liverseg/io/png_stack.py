"""Folders of 2D PNG slices (the seed data format) as a 3D image + label pair.

The seed format: one folder of 8-bit CT slice PNGs (already windowed, *not* HU) and one folder
of mask PNGs, paired by the natural sort order of their file names (``image_2`` before
``image_10``). Masks encode 127 = liver and 255 = lesion; other encodings are accepted through
``mask_encoding``. No geometry is stored in PNGs, so the spacing is a parameter (default 1 mm,
with a WARNING that it is assumed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from liverseg.errors import InputError
from liverseg.io.labels import LabelMap
from liverseg.io.volume import Volume

__all__ = ["MASK_ENCODINGS", "natural_key", "read_png_slices", "read_png_stack"]

log = logging.getLogger(__name__)

MaskEncoding = Literal["seed", "labels", "binary"]
#: mask encoding -> {pixel value: label}
MASK_ENCODINGS: dict[str, dict[int, int]] = {
    "seed": {0: 0, 127: 1, 255: 2},  # 127 liver, 255 lesion
    "labels": {0: 0, 1: 1, 2: 2},  # already 0/1/2
    "binary": {0: 0, 255: 1, 1: 1},  # liver-only masks, 0/255 (or 0/1)
}
_IMAGE_SUFFIXES = (".png",)


def natural_key(name: str) -> list[object]:
    """Sort key treating digit runs as numbers: ``image_2`` < ``image_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _list_pngs(folder: Path, what: str) -> list[Path]:
    if not folder.exists():
        raise InputError(f"does not exist; expected a folder of {what} PNG slices", folder)
    if not folder.is_dir():
        raise InputError(f"expected a folder of {what} PNG slices, got a file", folder)
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )
    if not files:
        raise InputError(f"expected {what} PNG slices (*.png), found none", folder)
    return files


def _load_gray(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGB", "RGBA"):
                arr = np.asarray(img.convert("RGB"))
                if not (
                    np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
                ):
                    raise InputError("expected a grayscale slice, got a colour PNG", path)
                return arr[..., 0]
            if img.mode == "LA":
                return np.asarray(img)[..., 0]
            if img.mode == "1":
                return np.asarray(img, dtype=np.uint8) * 255
            if img.mode == "P":
                return np.asarray(img.convert("L"))
            return np.asarray(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"not a readable PNG ({exc})", path) from exc


def read_png_slices(files: Sequence[Path]) -> np.ndarray:
    """Stack 2D grayscale PNGs (in the given order) into a ``(z, y, x)`` array.

    Raises:
        InputError: unreadable/colour files or slices of different sizes (naming the file).
    """
    first = _load_gray(files[0])
    stack = np.empty((len(files), *first.shape), dtype=first.dtype)
    stack[0] = first
    for k, f in enumerate(files[1:], start=1):
        arr = _load_gray(f)
        if arr.shape != first.shape:
            raise InputError(
                f"expected every slice to be {first.shape[1]}x{first.shape[0]} pixels (as {files[0].name}), "
                f"got {arr.shape[1]}x{arr.shape[0]}",
                f,
            )
        stack[k] = arr
    return stack


def _encode_mask(stack: np.ndarray, encoding: str, folder: Path) -> np.ndarray:
    table = MASK_ENCODINGS[encoding]
    values = np.unique(stack)
    bad = [int(v) for v in values if int(v) not in table]
    if bad:
        raise InputError(
            f"expected mask values {sorted(table)} (encoding {encoding!r}), got values "
            f"{[int(v) for v in values[:10]]}; choose mask_encoding among {sorted(MASK_ENCODINGS)}",
            folder,
        )
    lut = np.zeros(256 if stack.dtype == np.uint8 else int(stack.max()) + 1, dtype=np.uint8)
    for value, label in table.items():
        if value < lut.size:
            lut[value] = label
    return lut[stack]


def read_png_stack(
    image_folder: str | Path,
    mask_folder: str | Path,
    *,
    spacing_zyx: tuple[float, float, float] | None = None,
    mask_encoding: MaskEncoding = "seed",
) -> tuple[Volume, Volume]:
    """Read a folder of CT slice PNGs and a folder of mask PNGs as (image, label) volumes.

    Args:
        image_folder: 8-bit windowed CT slices (``*.png``), one per slice.
        mask_folder: mask PNGs, one per image slice, paired by natural sort of file names.
        spacing_zyx: voxel size in mm ``(z, y, x)``; ``None`` assumes 1 mm (WARNING).
        mask_encoding: ``"seed"`` (127 liver, 255 lesion), ``"labels"`` (0/1/2) or ``"binary"``
            (0/255 or 0/1 liver-only masks).

    Returns:
        ``(image, label)``: image float32 ``(z, y, x)`` with the PNG grey values 0..255 and
        ``metadata["intensity"] = "png8"`` (NOT Hounsfield units); label uint8 0/1/2 on the
        same grid. Slice ``k`` is the ``k``-th file in natural order; identity direction.

    Raises:
        InputError: missing/empty folders, different slice counts or sizes, unknown mask values.
    """
    image_folder, mask_folder = Path(image_folder), Path(mask_folder)
    images = _list_pngs(image_folder, "CT image")
    masks = _list_pngs(mask_folder, "mask")
    if len(images) != len(masks):
        raise InputError(
            f"expected one mask per image slice: {len(images)} image PNGs in {image_folder} but "
            f"{len(masks)} mask PNGs",
            mask_folder,
        )
    assumed = spacing_zyx is None
    if spacing_zyx is None:
        spacing_zyx = (1.0, 1.0, 1.0)
        log.warning(
            "%s: PNG slices carry no geometry; assuming 1 mm spacing in every direction", image_folder
        )
    image_arr = read_png_slices(images)
    if image_arr.dtype != np.uint8:
        log.warning("%s: CT PNGs are %s, not 8-bit; values kept as they are", image_folder, image_arr.dtype)
    mask_arr = _encode_mask(read_png_slices(masks), mask_encoding, mask_folder)
    if mask_arr.shape != image_arr.shape:
        raise InputError(
            f"expected masks of the image size {image_arr.shape[1:]} (rows, columns), got {mask_arr.shape[1:]}",
            mask_folder,
        )
    meta = {
        "source": str(image_folder),
        "intensity": "png8",
        "files": [p.name for p in images],
        "spacing_assumed": assumed,
    }
    image = Volume(image_arr.astype(np.float32), spacing_zyx, metadata=meta)
    label_meta = {
        "source": str(mask_folder),
        "files": [p.name for p in masks],
        "mask_encoding": mask_encoding,
    }
    return image, LabelMap(mask_arr, spacing_zyx, metadata=label_meta)
