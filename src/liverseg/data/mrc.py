"""MRC layout: the LiTS-117 liver crop shipped in ``liver-ct-segmentation-package==1.6.0``.

The package's ``data/img_117.mrc`` / ``data/lab_117.mrc`` are 128^3 arrays (float32 HU, uint16
labels 0/1/2) with no voxel size (``voxel_size`` is 0) and no orientation. Looking at the data
(axial slices show the spine posterior, the heart and lungs at the top, the aorta left of the
liver) the stored array is nibabel's ``(x, y, z)`` order of LiTS volume 117, with index axes
running patient right->left, anterior->posterior and inferior->superior, i.e. LPS+. So the
volume is ``data.transpose(2, 1, 0)`` with an identity direction: the liver is at low ``x``
(patient's right) and the heart at high ``z``.

Spacing is not stored: ``--spacing Z Y X`` sets it; the default 1 mm isotropic is logged as an
assumption (volumes in ml then depend on it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import mrcfile
import numpy as np

from liverseg.data.cases import LayoutOptions, LoadedCase, SourceCase, apply_value_map, sanitize_id
from liverseg.errors import GeometryError, InputError
from liverseg.io import Volume

__all__ = ["discover_mrc", "load_mrc_pair", "read_mrc_array"]

log = logging.getLogger(__name__)

DEFAULT_SPACING_ZYX = (1.0, 1.0, 1.0)
_IMG = re.compile(r"^(?:img|image|vol|volume)[_-]?(.+)\.mrc$", re.IGNORECASE)
_LAB = re.compile(r"^(?:lab|label|seg|segmentation)[_-]?(.+)\.mrc$", re.IGNORECASE)


def read_mrc_array(path: Path) -> np.ndarray:
    """The 3D data of an MRC file as stored, ``(nz, ny, nx)`` = the ``(x, y, z)`` LiTS order here."""

    try:
        with mrcfile.open(path, permissive=True) as mrc:
            data = None if mrc.data is None else np.array(mrc.data)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the MRC file ({exc})", path) from exc
    if data is None or data.ndim != 3:
        got = "no data" if data is None else f"{data.ndim}D data of shape {data.shape}"
        raise InputError(f"expected a 3D MRC volume, got {got}", path)
    return data


def load_mrc_pair(
    image_path: Path,
    label_path: Path,
    spacing_zyx: tuple[float, float, float] | None,
    value_map: dict[int, int],
) -> LoadedCase:
    """Read an image/label MRC pair as LPS volumes (see the module docstring for the axes)."""

    warnings: list[str] = []
    if spacing_zyx is None:
        spacing_zyx = DEFAULT_SPACING_ZYX
        msg = (
            f"{image_path.name}: MRC stores no voxel size; assuming {DEFAULT_SPACING_ZYX} mm (z, y, x) — "
            "volumes in ml depend on it; pass --spacing Z Y X if you know the real spacing"
        )
        log.warning(msg)
        warnings.append(msg)
    img = read_mrc_array(image_path)
    lab = read_mrc_array(label_path)
    if img.shape != lab.shape:
        raise GeometryError(f"{label_path}: label shape {lab.shape} differs from image shape {img.shape}")
    image = Volume(
        np.ascontiguousarray(img.transpose(2, 1, 0), dtype=np.float32),
        spacing_zyx,
        metadata={"source": str(image_path)},
    )
    label_raw = image.with_array(np.ascontiguousarray(lab.transpose(2, 1, 0)))
    label = apply_value_map(label_raw, value_map, path=label_path)
    mapping = {
        "label_file": str(label_path),
        "values": {str(k): int(v) for k, v in sorted(value_map.items())},
        "axes": "stored (x, y, z) transposed to (z, y, x); direction identity (LPS); origin 0",
        "spacing_zyx_mm": list(spacing_zyx),
        "spacing_assumed": bool(warnings),
    }
    return LoadedCase(image=image, label=label, mapping=mapping, warnings=tuple(warnings))


def discover_mrc(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """``img_<N>.mrc`` + ``lab_<N>.mrc`` pairs under ``src`` (recursively; e.g. the unzipped wheel).

    Case and patient id ``lits_<N>`` (the package's crop is LiTS volume N).
    """
    images: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    for p in sorted(src.rglob("*.mrc") if src.is_dir() else []):
        for pattern, found in ((_IMG, images), (_LAB, labels)):
            m = pattern.match(p.name)
            if m and m.group(1) not in found:
                found[m.group(1)] = p
    if not images:
        raise InputError(
            "expected img_<N>.mrc and lab_<N>.mrc files (e.g. the unzipped "
            "liver-ct-segmentation-package wheel), found none",
            src,
        )
    missing = sorted(set(images) - set(labels))
    if missing:
        raise InputError(f"no lab_<N>.mrc label for: {', '.join(images[k].name for k in missing)}", src)
    value_map = dict(options.value_map or {0: 0, 1: 1, 2: 2})
    cases = []
    for key in sorted(images):
        cid = f"lits_{int(key)}" if key.isdigit() else f"lits_{sanitize_id(key)}"
        cases.append(
            SourceCase(
                cid,
                cid,
                images[key],
                "mrc",
                lambda i=images[key], lab=labels[key]: load_mrc_pair(i, lab, options.spacing_zyx, value_map),
            )
        )
    return cases
