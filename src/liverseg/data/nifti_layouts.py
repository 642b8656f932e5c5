"""File-pair layouts: LiTS (``volume-N``/``segmentation-N``), MSD Task03 and plain NIfTI pairs.

All three pair an image file with a label file, read both with :func:`liverseg.io.read_volume`,
check the label lies on the image grid (else :class:`~liverseg.errors.GeometryError`) and map the
label values to 0/1/2 (identity by default, ``--map`` to override).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liverseg.data.cases import (
    LayoutOptions,
    LoadedCase,
    SourceCase,
    apply_value_map,
    sanitize_id,
    strip_image_suffix,
    volume_files,
)
from liverseg.errors import GeometryError, InputError
from liverseg.io import read_volume

__all__ = ["discover_lits", "discover_msd", "discover_nifti_pairs", "load_label_pair"]

log = logging.getLogger(__name__)

IDENTITY_MAP: dict[int, int] = {0: 0, 1: 1, 2: 2}
_LITS_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$", re.IGNORECASE)
_LITS_SEGMENTATION = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$", re.IGNORECASE)
_TUMOR_WORDS = ("cancer", "tumor", "tumour", "lesion", "metastas")


def load_label_pair(
    image_path: Path,
    label_path: Path,
    value_map: Mapping[int, int],
    *,
    mapping_note: dict[str, Any] | None = None,
) -> LoadedCase:
    """Read an image/label file pair and map the label values to 0/1/2.

    Args:
        image_path: CT file (HU).
        label_path: label file on the same grid.
        value_map: source label value -> 0/1/2.
        mapping_note: extra keys stored in the case's ``mapping`` record.

    Raises:
        InputError: unreadable file or unmapped label values. GeometryError: different grids.
    """

    image = read_volume(image_path, kind="image")
    identity = dict(value_map) == IDENTITY_MAP
    try:
        # kind="label" is validated as 0/1/2 by io; other source values need the raw numbers.
        label = read_volume(label_path, kind="label" if identity else "image")
    except InputError as exc:
        raise InputError(f"{exc} (pass --map SRC=DST to map other label values)") from exc
    try:
        image.require_same_grid(label, what="label")
    except GeometryError as exc:
        raise GeometryError(f"{label_path}: {exc} (image {image_path})") from exc
    mapped = apply_value_map(label, value_map, path=label_path)
    mapping: dict[str, Any] = {
        "label_file": str(label_path),
        "values": {str(k): int(v) for k, v in sorted(value_map.items())},
        **(mapping_note or {}),
    }
    return LoadedCase(image=image, label=mapped, mapping=mapping)


def _loader(image: Path, label: Path, value_map: Mapping[int, int], note: dict[str, Any] | None = None):
    return lambda: load_label_pair(image, label, value_map, mapping_note=note)


# --------------------------------------------------------------------------------------- LiTS
def discover_lits(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """LiTS: ``volume-N.nii[.gz]`` + ``segmentation-N.nii[.gz]`` anywhere under ``src``.

    Case and patient id ``lits_N``. Labels 0/1/2 are used as they are (``--map`` overrides).

    Raises:
        InputError: no volumes, a volume without its segmentation, or duplicated numbers.
    """
    volumes: dict[int, Path] = {}
    segmentations: dict[int, Path] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith(".")):
        for pattern, found in ((_LITS_VOLUME, volumes), (_LITS_SEGMENTATION, segmentations)):
            m = pattern.match(path.name)
            if m:
                n = int(m.group(1))
                if n in found:
                    raise InputError(f"two files for LiTS case {n}: {found[n]} and {path}", src)
                found[n] = path
    if not volumes:
        raise InputError(
            "expected a LiTS folder with volume-N.nii[.gz] and segmentation-N.nii[.gz] files "
            "(possibly in subfolders), found no volume-N file",
            src,
        )
    missing = sorted(set(volumes) - set(segmentations))
    if missing:
        raise InputError(
            f"LiTS volumes without a segmentation-N file: {', '.join(f'volume-{n}' for n in missing)} "
            "(a prepared dataset needs a label for every case)",
            src,
        )
    value_map = dict(options.value_map or IDENTITY_MAP)
    return [
        SourceCase(
            f"lits_{n}", f"lits_{n}", volumes[n], "lits", _loader(volumes[n], segmentations[n], value_map)
        )
        for n in sorted(volumes)
    ]


# ---------------------------------------------------------------------------------------- MSD
def _msd_value_map(labels: Any, where: Path) -> dict[int, int]:
    """Map MSD ``labels`` ({"0": "background", "1": "liver", "2": "cancer"}; also name -> int)."""
    if not isinstance(labels, dict) or not labels:
        raise InputError(f"expected a 'labels' object in dataset.json, got {labels!r}", where)
    pairs: list[tuple[int, str]] = []
    for k, v in labels.items():
        try:
            pairs.append((int(k), str(v)) if str(k).lstrip("-").isdigit() else (int(v), str(k)))
        except (TypeError, ValueError) as exc:
            raise InputError(f"cannot read the label entry {k!r}: {v!r} in dataset.json", where) from exc
    out: dict[int, int] = {}
    for value, name in pairs:
        low = name.lower()
        if low in ("background", "bg") or value == 0:
            out[value] = 0
        elif any(w in low for w in _TUMOR_WORDS):
            out[value] = 2
        elif "liver" in low:
            out[value] = 1
        else:
            raise InputError(
                f"label {value} ({name!r}) in dataset.json is neither background, liver nor a tumor; "
                "pass --map SRC=DST for every label value",
                where,
            )
    return out


def discover_msd(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """Medical Segmentation Decathlon (Task03_Liver): ``imagesTr/``, ``labelsTr/``, ``dataset.json``.

    Cases come from ``dataset.json["training"]`` (or, without it, matching file names; nnU-Net's
    ``_0000`` channel suffix is understood). Labels are mapped by their names in
    ``dataset.json["labels"]`` (liver -> 1, cancer/tumor -> 2) unless ``--map`` is given. Case and
    patient id ``msd_<file stem>`` (e.g. ``msd_liver_3``).
    """
    images_dir, labels_dir, meta_path = src / "imagesTr", src / "labelsTr", src / "dataset.json"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise InputError("expected an MSD task folder with imagesTr/ and labelsTr/ (and dataset.json)", src)
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"dataset.json is not readable JSON ({exc})", meta_path) from exc
    else:
        log.warning("%s: no dataset.json; assuming Task03_Liver labels (1 liver, 2 tumor)", src)
    if options.value_map is not None:
        value_map = dict(options.value_map)
    elif "labels" in meta:
        value_map = _msd_value_map(meta["labels"], meta_path)
    else:
        value_map = dict(IDENTITY_MAP)
    pairs: list[tuple[Path, Path]] = []
    if isinstance(meta.get("training"), list) and meta["training"]:
        for entry in meta["training"]:
            try:
                pairs.append((src / str(entry["image"]), src / str(entry["label"])))
            except (KeyError, TypeError) as exc:
                raise InputError(f"malformed 'training' entry {entry!r} in dataset.json", meta_path) from exc
    else:
        labels = {strip_image_suffix(p.name): p for p in volume_files(labels_dir)}
        for img in volume_files(images_dir):
            stem = strip_image_suffix(img.name) or img.name
            key = stem[:-5] if re.search(r"_\d{4}$", stem) and stem not in labels else stem
            if key not in labels:
                raise InputError(f"no label in labelsTr/ for image {img.name} (expected {key}.nii.gz)", src)
            pairs.append((img, labels[key]))
    if not pairs:
        raise InputError("found no training images in imagesTr/", src)
    note = {"label_names": meta.get("labels")} if meta.get("labels") else None
    cases = []
    for img, lab in pairs:
        for p in (img, lab):
            if not p.is_file():
                raise InputError("listed in dataset.json but missing", p)
        stem = strip_image_suffix(lab.name) or lab.stem
        cid = f"msd_{sanitize_id(stem)}"
        cases.append(SourceCase(cid, cid, img, "msd", _loader(img, lab, value_map, note)))
    return cases


# -------------------------------------------------------------------------------- nifti-pairs
def discover_nifti_pairs(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """Plain pairs: ``images/`` + ``labels/`` matched by name, or ``<name>_image`` + ``<name>_label``.

    In the folder form a label named like the image, or like the image without nnU-Net's
    ``_0000`` suffix, matches. Any :data:`~liverseg.data.cases.NIFTI_SUFFIXES` file works. Case
    and patient id: the sanitised name. Labels must be 0/1/2 unless ``--map`` is given.
    """
    value_map = dict(options.value_map or IDENTITY_MAP)
    pairs: dict[str, tuple[Path, Path]] = {}
    if (src / "images").is_dir() and (src / "labels").is_dir():
        labels = {strip_image_suffix(p.name): p for p in volume_files(src / "labels")}
        for img in volume_files(src / "images"):
            stem = strip_image_suffix(img.name) or img.name
            key = stem if stem in labels else re.sub(r"_\d{4}$", "", stem)
            if key not in labels:
                raise InputError(f"no file in labels/ matches images/{img.name} (expected {stem}.*)", src)
            pairs[key] = (img, labels[key])
    else:
        images: dict[str, Path] = {}
        labels2: dict[str, Path] = {}
        for p in volume_files(src, recursive=True):
            stem = strip_image_suffix(p.name) or p.name
            m = re.match(r"^(.*?)[_-](image|img|label|seg)$", stem, re.IGNORECASE)
            if m:
                target = images if m.group(2).lower() in ("image", "img") else labels2
                target[m.group(1)] = p
        for name, img in images.items():
            if name not in labels2:
                raise InputError(f"no {name}_label file for {img.name}", src)
            pairs[name] = (img, labels2[name])
    if not pairs:
        raise InputError(
            "expected images/ + labels/ folders with matching names, or <name>_image / <name>_label "
            "files (.nii.gz, .nii, .nrrd, .mha), found none",
            src,
        )
    cases = []
    for name, (img, lab) in sorted(pairs.items()):
        cid = sanitize_id(name)
        cases.append(SourceCase(cid, cid, img, "nifti-pairs", _loader(img, lab, value_map)))
    return cases
