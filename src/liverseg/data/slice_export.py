"""``--format slice-export``: windowed JPEG/PNG slice pictures + label PNGs -> approximate-HU cases.

Layout (the LiTS export of ``../shared/data/lits-slices`` and similar public exports)::

    SRC/<...images...>/<volume>_slice_<k>.jpg|.jpeg|.png     one picture per stored slice
    SRC/<...masks|labels...>/<volume>_slice_<k>_mask.png     (or <volume>_slice_<k>.png)

One sub-folder whose name contains ``image`` and one whose name contains ``mask`` or ``label``.
Slices of one volume may be every ``step``-th slice of the original (``k = 0, 2, 4, ...``); the
stored stack gets the real z spacing ``step x original spacing``. Labels 0/1/2 or 0/127/255.

Spacing, per volume, from the first that applies:

1. ``--spacing Z Y X`` (one spacing for every volume; ``Z`` is the *original* slice spacing);
2. a sidecar CSV (``--spacing-csv``) with columns ``volume`` (the number in the volume name),
   ``z_spacing_mm``, ``inplane_spacing_mm`` and optionally ``spacing_status``,
   ``spacing_source``, ``use`` (rows whose ``use`` starts with ``exclude`` are skipped, with the
   reason logged) and ``same_patient_as`` (e.g. ``3D-IRCADb-01 patient 2`` -> patient id
   ``ircadb_02``, so splits keep one patient's cases together);
3. an anatomical estimate (:mod:`liverseg.data.spacing_estimate`), flagged as ``estimated``.

Every case records in ``dataset.json`` (``extra.image_quality``) that it is a clipped, possibly
lossy export (``full_quality: false``), so training can use it and evaluation can keep its scores
apart from full-quality CT.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liverseg.data.cases import LayoutOptions, LoadedCase, SourceCase, case_number, sanitize_id
from liverseg.data.spacing_estimate import (
    DEFAULT_REFERENCE,
    AnatomyReference,
    calibrate,
    estimate_spacing,
    measure_anatomy,
    orientation_warnings,
)
from liverseg.errors import ConfigError, InputError
from liverseg.io.slice_export import SliceExportSpec, read_slice_export, regular_step
from liverseg.io.volume import Grid, Volume

__all__ = ["SpacingRow", "discover_slice_export", "image_quality", "is_full_quality", "read_spacing_csv"]

log = logging.getLogger(__name__)

_PICTURE = re.compile(r"^(?P<vol>.+?)_slice_(?P<k>\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_LABEL = re.compile(r"^(?P<vol>.+?)_slice_(?P<k>\d+)(?:_mask)?\.png$", re.IGNORECASE)
_IRCADB_PATIENT = re.compile(r"3d-?ircadb-?0?1\D+patient\s*(\d+)", re.IGNORECASE)


def image_quality(extra: dict[str, Any]) -> dict[str, Any]:
    """The ``image_quality`` record of a case's ``extra`` (full quality when absent)."""
    return dict(extra.get("image_quality") or {"full_quality": True})


def is_full_quality(extra: dict[str, Any]) -> bool:
    """Whether a prepared case (its ``CaseInfo.extra``) is full-quality CT, not a clipped export."""
    return bool(image_quality(extra).get("full_quality", True))


@dataclass(frozen=True)
class SpacingRow:
    """One row of the spacing sidecar CSV."""

    volume: int
    z_mm: float | None
    inplane_mm: float | None
    status: str = ""
    source: str = ""
    use: str = ""
    same_patient_as: str = ""


def _float_or_none(text: str | None, what: str, where: Path) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise InputError(f"{what}: expected a number in mm or an empty cell, got {text!r}", where) from exc
    if not value > 0:
        raise InputError(f"{what}: expected a positive spacing in mm, got {value}", where)
    return value


def read_spacing_csv(path: Path) -> dict[int, SpacingRow]:
    """Read the spacing sidecar (see the module docstring) into ``volume number -> row``."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read the spacing CSV ({exc})", path) from exc
    need = {"volume", "z_spacing_mm", "inplane_spacing_mm"}
    if not rows or not need <= set(rows[0]):
        have = sorted(rows[0]) if rows else []
        raise InputError(f"expected CSV columns {sorted(need)} (and optional use, ...), got {have}", path)
    out: dict[int, SpacingRow] = {}
    for i, r in enumerate(rows, start=2):
        try:
            vol = int(str(r["volume"]).strip())
        except ValueError as exc:
            raise InputError(f"line {i}: volume must be an integer, got {r['volume']!r}", path) from exc
        out[vol] = SpacingRow(
            volume=vol,
            z_mm=_float_or_none(r.get("z_spacing_mm"), f"line {i} z_spacing_mm", path),
            inplane_mm=_float_or_none(r.get("inplane_spacing_mm"), f"line {i} inplane_spacing_mm", path),
            status=(r.get("spacing_status") or "").strip(),
            source=(r.get("spacing_source") or "").strip(),
            use=(r.get("use") or "").strip(),
            same_patient_as=(r.get("same_patient_as") or "").strip(),
        )
    return out


def _patient_id(row: SpacingRow | None, case_id: str) -> str:
    if row is None or not row.same_patient_as:
        return case_id
    m = _IRCADB_PATIENT.search(row.same_patient_as)
    return f"ircadb_{int(m.group(1)):02d}" if m else sanitize_id(row.same_patient_as)


def _folders(src: Path) -> tuple[Path, Path]:
    subs = [p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")]
    images = [p for p in subs if "image" in p.name.lower()]
    labels = [p for p in subs if "mask" in p.name.lower() or "label" in p.name.lower()]
    if len(images) != 1 or len(labels) != 1:
        raise InputError(
            "expected one sub-folder of slice pictures (name containing 'image') and one of label "
            f"PNGs (name containing 'mask' or 'label'), found {sorted(p.name for p in subs)}",
            src,
        )
    return images[0], labels[0]


def _index(folder: Path, pattern: re.Pattern[str]) -> dict[str, dict[int, Path]]:
    out: dict[str, dict[int, Path]] = {}
    for p in folder.iterdir():
        m = pattern.match(p.name)
        if m and p.is_file():
            out.setdefault(m.group("vol"), {})[int(m.group("k"))] = p
    return out


@dataclass
class _Export:
    """Shared state of one export: files per volume, options, the (lazy) spacing calibration."""

    images: dict[str, dict[int, Path]]
    labels: dict[str, dict[int, Path]]
    spec: SliceExportSpec
    options: LayoutOptions
    rows: dict[int, SpacingRow]
    _reference: AnatomyReference | None = field(default=None, init=False)

    def reference(self, names: list[str]) -> AnatomyReference:
        """Calibrate the anatomical reference on the volumes with a known spacing (once)."""
        if self._reference is None:
            known = []
            for name in names:
                row = self._row(name)
                if row is None or row.z_mm is None or row.inplane_mm is None or row.use.startswith("exclude"):
                    continue
                ks = sorted(self.images[name])
                image, label = self._read(name, (row.z_mm * regular_step(ks, where=name), 1.0, 1.0))
                anatomy = measure_anatomy(image.array, label.array)
                if anatomy is not None:
                    known.append((anatomy, row.inplane_mm, row.z_mm, image.metadata["slice_step"]))
            self._reference = calibrate(known)
            if self._reference is DEFAULT_REFERENCE:
                log.warning(
                    "fewer than 3 volumes of this export have a known spacing: spacing estimates use "
                    "the built-in reference (%s)",
                    DEFAULT_REFERENCE.source,
                )
        return self._reference

    def _row(self, name: str) -> SpacingRow | None:
        num = case_number(name)
        return None if num is None else self.rows.get(num)

    def _read(self, name: str, spacing_zyx: tuple[float, float, float]) -> Any:
        ks = sorted(self.images[name])
        return read_slice_export(
            [self.images[name][k] for k in ks],
            [self.labels[name][k] for k in ks],
            ks,
            self.spec,
            spacing_zyx=spacing_zyx,
        )

    def load(self, name: str, names: list[str]) -> LoadedCase:
        ks = sorted(self.images[name])
        step = regular_step(ks, where=self.images[name][ks[0]].parent)
        row = self._row(name)
        warnings: list[str] = []
        if self.options.spacing_zyx is not None:
            z, y, x = self.options.spacing_zyx
            status, source = "given", "--spacing"
        elif row is not None and row.z_mm is not None and row.inplane_mm is not None:
            z, y, x = row.z_mm, row.inplane_mm, row.inplane_mm
            status, source = row.status or "csv", row.source or "spacing CSV"
        else:
            z = y = x = 1.0  # replaced below, before any volume with this spacing is returned
            status, source = "estimated", ""
        image, label = self._read(name, (z * step, y, x))
        anatomy = measure_anatomy(image.array, label.array)
        if status == "estimated":
            if anatomy is None:
                raise InputError(
                    "no spacing for this volume (not in --spacing-csv) and no liver in its labels to "
                    "estimate one from; give --spacing or a CSV row",
                    self.images[name][ks[0]].parent,
                )
            ref = self.reference(names)
            z, inplane = estimate_spacing(anatomy, step, ref)
            y = x = inplane
            source = (
                f"estimated: in-plane from the body width ({anatomy.body_width_px} px vs "
                f"{ref.body_width_mm} mm), slices from the liver extent ({anatomy.liver_slices} stored "
                f"slices vs {ref.liver_cc_mm} mm); reference: {ref.source}"
            )
            warnings.append(f"{name}: spacing estimated ({z} mm slices, {inplane} mm in-plane): {source}")
            image, label = (_regrid(v, (z * step, y, x), step) for v in (image, label))
        warnings += [f"{name}: {w}" for w in orientation_warnings(anatomy)]
        for w in warnings:
            log.warning(w)
        quality = {
            "full_quality": False,
            "kind": "slice-export",
            "intensity": "clipped to the HU window, 8-bit",
            "window_hu": list(self.spec.window_hu),
            "channel": self.spec.channel,
            "lossy": "JPEG" if image.metadata["lossy"] else None,
            "slice_step": step,
            "original_z_spacing_mm": z,
            "spacing_status": status,
            "spacing_source": source,
            "note": "approximate HU from windowed 8-bit pictures; never report scores on these cases "
            "as scores on full-quality CT",
        }
        mapping = {
            "labels": str(self.labels[name][ks[0]].parent),
            "values": image.metadata["label_encoding"],
            "rule": "label pictures 0/1/2 (or 0/127/255) = background/liver/tumor",
            "slices": f"stored slices {ks[0]}..{ks[-1]} every {step}",
        }
        return LoadedCase(
            image=image,
            label=label,
            mapping=mapping,
            warnings=tuple(warnings),
            extra={"image_quality": quality},
        )


def _regrid(volume: Volume, spacing_zyx: tuple[float, float, float], step: int) -> Volume:
    """The same stack with another spacing (origin z = first slice index x original spacing)."""
    k0 = int(volume.metadata.get("first_slice_index", 0))
    return volume.regridded(
        volume.array, Grid(volume.shape, spacing_zyx, (0.0, 0.0, k0 * spacing_zyx[0] / step))
    )


def discover_slice_export(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """Find the volumes of a slice export (see the module docstring); nothing is read yet.

    Raises:
        ConfigError: ``--window`` missing, or ``--map`` given (label values are fixed).
        InputError: folders not found, pictures without labels, no volume left.
    """
    if options.window_hu is None:
        raise ConfigError(
            "--format slice-export needs --window LOW HIGH: the HU range the pictures' grey values "
            "0..255 stand for (e.g. --window -40 160 --channel G for the LiTS export)"
        )
    if options.value_map is not None:
        raise ConfigError("--map does not apply to --format slice-export (labels are 0/1/2 or 0/127/255)")
    image_dir, label_dir = _folders(src)
    images, labels = _index(image_dir, _PICTURE), _index(label_dir, _LABEL)
    if not images:
        raise InputError("expected pictures named <volume>_slice_<k>.jpg|png, found none", image_dir)
    rows = read_spacing_csv(options.spacing_csv) if options.spacing_csv else {}
    spec = SliceExportSpec(options.window_hu, options.channel or "gray")
    export = _Export(images, labels, spec, options, rows)
    prefix = options.case_prefix or "export"
    names, cases = sorted(images), []
    for name in names:
        missing = sorted(set(images[name]) - set(labels.get(name, {})))
        if missing:
            raise InputError(
                f"{name}: {len(missing)} picture(s) without a label, e.g. slice {missing[0]}", label_dir
            )
        num = case_number(name)
        row = rows.get(num if num is not None else -1)
        if row is not None and row.use.lower().startswith("exclude"):
            log.warning("%s: skipped, the spacing CSV says %r", name, row.use)
            continue
        cid = f"{prefix}_{num}" if num is not None else f"{prefix}_{sanitize_id(name)}"
        cases.append(
            SourceCase(
                cid,
                _patient_id(row, cid),
                image_dir / f"{name}_slice_*",
                "slice-export",
                lambda name=name: export.load(name, names),
            )
        )
    if not cases:
        raise InputError("every volume of the export was excluded by the spacing CSV", src)
    return cases
