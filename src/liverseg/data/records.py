"""The records of a prepared dataset's ``dataset.json``: cases, splits, fingerprint, writer.

See :mod:`liverseg.data.dataset` for the folder layout and :func:`~liverseg.data.dataset.load_dataset`.
:class:`CaseInfo` and :class:`Splits` are frozen pydantic models (:mod:`liverseg.frozen`); a
malformed entry raises :class:`~liverseg.errors.InputError` naming the case, the key, what was
expected and what was received.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from liverseg.errors import InputError
from liverseg.frozen import FrozenModel, describe_validation_error
from liverseg.utils import atomic_write_text

__all__ = [
    "DATASET_FORMAT",
    "DATASET_JSON",
    "DATASET_VERSION",
    "LABEL_NAMES",
    "CaseInfo",
    "Splits",
    "compute_fingerprint",
    "write_dataset_json",
]

DATASET_FORMAT = "liverseg-prepared"
DATASET_VERSION = 1
DATASET_JSON = "dataset.json"
LABEL_NAMES: dict[str, str] = {"0": "background", "1": "liver", "2": "tumor"}

# Keys of a case entry that CaseInfo models explicitly; anything else is kept in ``extra``.
_CASE_KEYS = (
    "id",
    "patient_id",
    "image",
    "label",
    "source",
    "shape_zyx",
    "spacing_zyx_mm",
    "hu_range",
    "liver_volume_ml",
    "tumor_volume_ml",
    "tumor_components",
    "image_sha256",
    "label_sha256",
    "mapping",
)


class CaseInfo(FrozenModel):
    """One case of a prepared dataset (one entry of ``dataset.json["cases"]``).

    Attributes:
        id: stable case id, e.g. ``ircadb_01``, ``chaos_03``, ``lits_117``.
        patient_id: cases sharing it are one patient (never split across train/val/test).
        image, label: paths relative to the dataset folder.
        source: where the case was read from (absolute path at preparation time).
        shape_zyx: array shape ``(z, y, x)``.
        spacing_zyx_mm: voxel size in mm, ``(z, y, x)``.
        hu_range: ``{"p0.5", "p99.5", "min", "max"}`` of the image in HU.
        liver_volume_ml: whole liver (labels 1 and 2, tumors included) in ml.
        tumor_volume_ml: label 2 in ml.
        tumor_components: 26-connected components of label 2.
        image_sha256, label_sha256: sha256 of the written files.
        mapping: how source labels/structures were mapped to 0/1/2 (format specific).
        extra: any further keys of the entry (``source_format``, ``warnings``, ...).
    """

    error_class: ClassVar[type[Exception]] = InputError

    id: str
    patient_id: str
    image: str
    label: str
    source: str = ""
    shape_zyx: tuple[int, int, int] = (0, 0, 0)
    spacing_zyx_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hu_range: dict[str, float] = Field(default_factory=dict)
    liver_volume_ml: float = 0.0
    tumor_volume_ml: float = 0.0
    tumor_components: int = 0
    image_sha256: str = ""
    label_sha256: str = ""
    mapping: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def has_tumor(self) -> bool:
        """True when the label map contains tumor voxels."""
        return self.tumor_volume_ml > 0

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], *, where: str = DATASET_JSON) -> CaseInfo:
        """Parse one ``cases[]`` entry; :class:`InputError` names the case and the missing key."""
        case_id = entry.get("id", "<no id>")
        for key in ("id", "patient_id", "image", "label"):
            if not entry.get(key):
                raise InputError(
                    f"case {case_id!r} has no {key!r}: every case of a prepared dataset needs an id, "
                    "a patient_id, an image and a label",
                    where,
                )
        values = {k: v for k, v in entry.items() if k in _CASE_KEYS}
        values["extra"] = {k: v for k, v in entry.items() if k not in _CASE_KEYS}
        for key in ("id", "patient_id", "image", "label"):
            values[key] = str(values[key])  # ids may be written as numbers by hand
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            message = describe_validation_error(exc, cls, values, where="case")
            raise InputError(f"case {case_id!r} has a malformed entry ({message})", where) from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry (contract key order, then ``extra``)."""
        out: dict[str, Any] = {
            "id": self.id,
            "patient_id": self.patient_id,
            "image": self.image,
            "label": self.label,
            "source": self.source,
            "shape_zyx": list(self.shape_zyx),
            "spacing_zyx_mm": [round(float(s), 6) for s in self.spacing_zyx_mm],
            "hu_range": dict(self.hu_range),
            "liver_volume_ml": self.liver_volume_ml,
            "tumor_volume_ml": self.tumor_volume_ml,
            "tumor_components": self.tumor_components,
            "image_sha256": self.image_sha256,
            "label_sha256": self.label_sha256,
            "mapping": dict(self.mapping),
        }
        out.update(self.extra)
        return out


class Splits(FrozenModel):
    """Patient-level cross-validation folds plus a held-out test set (``dataset.json["splits"]``).

    Attributes:
        folds: one ``(train_ids, val_ids)`` pair per fold.
        test: case ids never used for training or model selection.
        seed: the seed that produced the splits.
        method: ``"stratified-kfold"`` or ``"leave-one-patient-out"``.
        test_fraction: requested fraction of patients held out as test.
    """

    error_class: ClassVar[type[Exception]] = InputError

    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    test: tuple[str, ...] = ()
    seed: int
    method: str = "stratified-kfold"
    test_fraction: float = 0.0

    @classmethod
    def from_dict(cls, data: Any, *, where: str = DATASET_JSON) -> Splits:  # type: ignore[override]
        """Parse ``dataset.json["splits"]``: ``{"folds": [{"train": [...], "val": [...]}], "test",
        "seed", "method", "test_fraction"}``; :class:`InputError` names the malformed key."""
        shape = "'splits' must be {'folds': [{'train': [...], 'val': [...]}], 'test': [...], 'seed': int}"
        if not isinstance(data, Mapping):
            raise InputError(f"{shape}, got {type(data).__name__}", where)
        values = dict(data)
        folds = values.get("folds")
        if isinstance(folds, list | tuple):
            pairs = []
            for i, f in enumerate(folds):
                if not isinstance(f, Mapping) or set(f) != {"train", "val"}:
                    raise InputError(f"{shape}; folds[{i}] is {f!r}", where)
                pairs.append((f["train"], f["val"]))
            values["folds"] = pairs
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            message = describe_validation_error(exc, cls, values, where="splits", prefix="splits")
            raise InputError(f"{shape}; {message}", where) from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :meth:`from_dict` reads back equal."""
        return {
            "folds": [{"train": list(tr), "val": list(va)} for tr, va in self.folds],
            "test": list(self.test),
            "seed": self.seed,
            "method": self.method,
            "test_fraction": self.test_fraction,
        }


def compute_fingerprint(cases: Iterable[CaseInfo]) -> str:
    """sha256 (hex) over the sorted ``(case id, image sha256, label sha256)`` triples.

    Each triple is written as ``id\\timage_sha256\\tlabel_sha256\\n`` (UTF-8), in sorted case-id
    order, so the fingerprint changes exactly when a case is added, removed or its data changes.
    """
    h = hashlib.sha256()
    for c in sorted(cases, key=lambda c: c.id):
        h.update(f"{c.id}\t{c.image_sha256}\t{c.label_sha256}\n".encode())
    return h.hexdigest()


def write_dataset_json(
    root: str | Path,
    *,
    name: str,
    source_format: str,
    created: str,
    cases: Sequence[CaseInfo],
    splits: Splits | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``root/dataset.json`` atomically (the fingerprint is computed here)."""
    doc: dict[str, Any] = {
        "name": name,
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "labels": dict(LABEL_NAMES),
        "source_format": source_format,
        "created": created,
        "fingerprint": compute_fingerprint(cases),
        "cases": [c.to_dict() for c in cases],
    }
    if extra:
        doc.update({k: v for k, v in extra.items() if k not in doc})
    if splits is not None:
        doc["splits"] = splits.to_dict()
    path = Path(root) / DATASET_JSON
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return path
