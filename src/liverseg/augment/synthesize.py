"""File-level synthetic lesions (``liverseg synth-lesions``): read a CT and its label, insert lesions,
write the new CT, label, a JSON record and a gallery PNG, all on the input's exact grid."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from liverseg.augment.gallery import lesion_gallery
from liverseg.augment.lesions import LesionInsertion, insert_lesions
from liverseg.augment.params import LesionParams
from liverseg.errors import ConfigError, InputError
from liverseg.io import LabelMap, Volume, read_volume, write_volume
from liverseg.utils import atomic_write_text, code_version

__all__ = ["SynthesisOutputs", "case_name", "load_params_file", "synthesize_files"]

log = logging.getLogger(__name__)

_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".zip", ".dcm")
_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class SynthesisOutputs:
    """Paths written by :func:`synthesize_files` and the insertion result."""

    image: Path
    label: Path
    record: Path
    gallery: Path
    result: LesionInsertion


def case_name(path: str | Path) -> str:
    """File name without its image suffix (``volume-3.nii.gz`` -> ``volume-3``), or the folder name."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def load_params_file(path: str | Path | None) -> LesionParams:
    """:class:`LesionParams` from a JSON or YAML file of field values (None: the defaults)."""
    if path is None:
        return LesionParams()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the lesion parameter file ({exc.strerror})", path) from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(
            f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {exc}"
        ) from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of lesion parameters, got {type(data).__name__}")
    return LesionParams.from_dict(data)


def _output_dtype(original: np.ndarray) -> type:
    """int16 when the input CT holds whole HU values within int16 (the usual case), else float32."""
    if (
        np.isfinite(original).all()
        and original.min() >= _INT16.min
        and original.max() <= _INT16.max
        and np.array_equal(original, np.rint(original))
    ):
        return np.int16
    return np.float32


def synthesize_files(
    ct_path: str | Path,
    label_path: str | Path,
    out_dir: str | Path,
    *,
    count: int | None = None,
    seed: int | None = 0,
    params: LesionParams | None = None,
) -> SynthesisOutputs:
    """Insert synthetic lesions into one CT and write the results into ``out_dir``.

    Writes (``<case>`` = the CT's name without suffix): ``<case>_synth.nii.gz`` (CT, int16 when the
    input holds whole HU values, else float32), ``<case>_synth_label.nii.gz`` (uint8 0/1/2),
    ``<case>_lesions.json`` (lesion records, skipped lesions, parameters, seed, code version) and
    ``<case>_gallery.png`` (an axial slice through each lesion, original next to synthetic).

    Args:
        ct_path: CT file or DICOM folder/zip (read with ``liverseg.io.read_volume``).
        label_path: label map (0/1/2) on the CT's grid (a DICOM-SEG is placed on the CT's grid).
        out_dir: output folder (created).
        count: number of lesions (default: drawn from ``params.count``).
        seed: random seed (same seed, same output).
        params: lesion parameters (default :class:`LesionParams`).

    Raises:
        InputError / GeometryError: unreadable inputs, label on another grid, no liver.
    """
    params = params or LesionParams()
    image = read_volume(ct_path, kind="image")
    label = read_volume(label_path, kind="label", reference=image)
    image.require_same_grid(label, "label")
    try:
        result = insert_lesions(image.array, label.array, image.spacing, params, rng=seed, count=count)
    except InputError as exc:
        raise InputError(str(exc), label_path) from exc
    out = Path(out_dir)
    name = case_name(ct_path)
    dtype = _output_dtype(image.array)
    new_image = image.with_array(result.image.astype(dtype) if dtype is np.int16 else result.image)
    new_label = LabelMap.on(label, result.label)
    paths = {
        "image": out / f"{name}_synth.nii.gz",
        "label": out / f"{name}_synth_label.nii.gz",
        "record": out / f"{name}_lesions.json",
        "gallery": out / f"{name}_gallery.png",
    }
    write_volume(new_image, paths["image"])
    write_volume(new_label, paths["label"])
    record = {
        "ct": str(ct_path),
        "label": str(label_path),
        "seed": seed,
        "count_requested": count,
        "code_version": code_version(),
        "params": params.to_dict(),
        "geometry": image.geometry(),
        "lesions": [r.to_dict() for r in result.lesions],
        "skipped": [s.to_dict() for s in result.skipped],
    }
    atomic_write_text(paths["record"], json.dumps(record, indent=2) + "\n")
    items = [
        (r.center_voxel, r.diameter_mm, lesion_title(i, r)) for i, r in enumerate(result.lesions, start=1)
    ]
    lesion_gallery(_display(image), _display(new_image), new_label, items, paths["gallery"])
    log.info("inserted %d lesion(s) into %s, wrote %s", len(result.lesions), name, out)
    return SynthesisOutputs(paths["image"], paths["label"], paths["record"], paths["gallery"], result)


def _display(volume: Volume) -> Volume:
    return volume if volume.array.dtype == np.float32 else volume.with_array(volume.array.astype(np.float32))


def lesion_title(index: int, record: Any) -> str:
    """Short gallery title of a :class:`~liverseg.augment.lesions.LesionRecord`."""
    extras = "".join(
        (
            " rim" if record.rim else "",
            " necrotic" if record.necrotic else "",
            f" {record.blobs} blobs" if record.blobs > 1 else "",
        )
    )
    return f"#{index} {record.diameter_mm:.0f} mm, {record.contrast_hu:+.0f} HU\n{record.kind}{extras}"
