"""The prepared dataset: ``dataset.json`` schema, fingerprint and :func:`load_dataset`.

A prepared dataset (written by ``liverseg data prepare``, see docs/contracts.md) is a folder::

    OUT/images/<case>.nii.gz   CT in HU (int16 when integral, else float32)
    OUT/labels/<case>.nii.gz   uint8 label map 0 background / 1 liver / 2 tumor, same grid as the image
    OUT/dataset.json           the manifest described by :class:`PreparedDataset`

Training and evaluation read it only through :func:`load_dataset`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liverseg.data.records import (
    DATASET_FORMAT,
    DATASET_JSON,
    DATASET_VERSION,
    LABEL_NAMES,
    CaseInfo,
    Splits,
    compute_fingerprint,
    write_dataset_json,
)
from liverseg.errors import ConfigError, GeometryError, InputError
from liverseg.io import read_volume
from liverseg.utils import sha256_file

if TYPE_CHECKING:
    from liverseg.io import Volume

__all__ = [
    "DATASET_FORMAT",
    "DATASET_JSON",
    "DATASET_VERSION",
    "LABEL_NAMES",
    "CaseInfo",
    "PreparedDataset",
    "Splits",
    "compute_fingerprint",
    "load_dataset",
    "write_dataset_json",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset folder, as read by :func:`load_dataset`.

    Attributes:
        root: the dataset folder.
        name: dataset name.
        source_format: the ``--format`` used (``"mixed"`` when cases come from several formats).
        created: ISO-8601 creation time (UTC).
        fingerprint: :func:`compute_fingerprint` of the cases.
        cases: the cases, in manifest order.
        splits: the folds/test split, or ``None`` before ``liverseg data split``.
        manifest: the full parsed ``dataset.json`` (for keys not modelled here).
    """

    root: Path
    name: str
    source_format: str
    created: str
    fingerprint: str
    cases: tuple[CaseInfo, ...]
    splits: Splits | None = None
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def case_ids(self) -> list[str]:
        """Case ids in manifest order."""
        return [c.id for c in self.cases]

    @property
    def patients(self) -> dict[str, list[str]]:
        """patient_id -> its case ids."""
        out: dict[str, list[str]] = {}
        for c in self.cases:
            out.setdefault(c.patient_id, []).append(c.id)
        return out

    def case(self, case_id: str) -> CaseInfo:
        """The :class:`CaseInfo` of ``case_id``; :class:`InputError` lists the valid ids."""
        for c in self.cases:
            if c.id == case_id:
                return c
        raise InputError(
            f"no case {case_id!r} in the dataset; expected one of {', '.join(self.case_ids) or '(none)'}",
            self.root / DATASET_JSON,
        )

    def image_path(self, case_id: str) -> Path:
        return self.root / self.case(case_id).image

    def label_path(self, case_id: str) -> Path:
        return self.root / self.case(case_id).label

    def load_case(self, case_id: str) -> tuple[Volume, Volume]:
        """Read one case: ``(image, label)``.

        Returns:
            image: CT ``Volume`` in HU (float32), array ``(z, y, x)``.
            label: uint8 ``Volume`` with values in {0, 1, 2} on exactly the image's grid.

        Raises:
            InputError: unknown case id or unreadable file. GeometryError: grids differ.
        """

        info = self.case(case_id)
        image = read_volume(self.root / info.image, kind="image")
        label = read_volume(self.root / info.label, kind="label")
        try:
            image.require_same_grid(label, what=f"label of case {case_id!r}")
        except GeometryError as exc:
            raise GeometryError(f"{self.root / info.label}: {exc}") from exc
        return image, label

    def fold(self, k: int) -> tuple[list[str], list[str]]:
        """Case ids ``(train_ids, val_ids)`` of fold ``k`` (0-based).

        Raises:
            ConfigError: the dataset has no splits yet, or fold ``k`` does not exist.
        """
        if self.splits is None:
            raise ConfigError(
                f"dataset {self.root} has no splits; run `liverseg data split {self.root} --folds K --seed S` first"
            )
        n = len(self.splits.folds)
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
            raise ConfigError(
                f"fold {k!r} does not exist: the dataset {self.root} has {n} fold(s), expected 0..{n - 1}"
            )
        train, val = self.splits.folds[k]
        return list(train), list(val)

    @property
    def test_ids(self) -> list[str]:
        """Held-out test case ids (empty without splits or without a test set)."""
        return [] if self.splits is None else list(self.splits.test)

    def verify(self) -> None:
        """Recompute every file's sha256 and compare with the manifest.

        Raises:
            InputError: a file is missing or its content changed since preparation.
        """
        for c in self.cases:
            for rel, expected in ((c.image, c.image_sha256), (c.label, c.label_sha256)):
                path = self.root / rel
                if not path.is_file():
                    raise InputError(f"file of case {c.id!r} is missing", path)
                actual = sha256_file(path)
                if expected and actual != expected:
                    raise InputError(
                        f"file of case {c.id!r} changed since preparation: sha256 {actual}, "
                        f"dataset.json says {expected}",
                        path,
                    )


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(
            "expected a prepared dataset folder with a dataset.json (made by `liverseg data prepare`), "
            "found no dataset.json",
            path.parent,
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"dataset.json is not readable JSON ({exc})", path) from exc
    if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputError(
            f'expected a dataset.json with "format": "{DATASET_FORMAT}", got format {got!r} '
            "(an MSD/nnU-Net dataset.json? prepare it first with `liverseg data prepare --format msd`)",
            path,
        )
    version = data.get("version")
    if version != DATASET_VERSION:
        raise InputError(
            f"unsupported prepared-dataset version {version!r}, expected {DATASET_VERSION}", path
        )
    return data


def load_dataset(path: str | Path, *, check_files: bool = True) -> PreparedDataset:
    """Open a prepared dataset folder (or its ``dataset.json``).

    Args:
        path: the dataset folder, or the ``dataset.json`` inside it.
        check_files: also check that every case's image and label file exists.

    Raises:
        InputError: no/invalid ``dataset.json``, a dataset without cases, or a case without its
            label (or image) file; the message names the dataset, the case and the file.
    """
    path = Path(path)
    manifest_path = path if path.name == DATASET_JSON and path.is_file() else path / DATASET_JSON
    root = manifest_path.parent
    data = _read_manifest(manifest_path)
    where = str(manifest_path)
    entries = data.get("cases")
    if not isinstance(entries, list) or not entries:
        raise InputError("the dataset has no cases (expected a non-empty 'cases' list)", manifest_path)
    cases = tuple(CaseInfo.from_dict(e, where=where) for e in entries)
    ids = [c.id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate case ids {dup}: case ids must be unique", manifest_path)
    if check_files:
        for c in cases:
            if not (root / c.label).is_file():
                raise InputError(
                    f"case {c.id!r} has no label file (expected {c.label}); a prepared dataset needs a label "
                    "map for every case",
                    root / c.label,
                )
            if not (root / c.image).is_file():
                raise InputError(f"case {c.id!r} has no image file (expected {c.image})", root / c.image)
    splits = Splits.from_dict(data["splits"], where=where) if data.get("splits") else None
    if splits is not None:
        known = set(ids)
        unknown = sorted(({i for tr, va in splits.folds for i in (*tr, *va)} | set(splits.test)) - known)
        if unknown:
            raise InputError(
                f"splits name case ids that are not in the dataset: {unknown}; re-run `liverseg data split`",
                manifest_path,
            )
    fingerprint = str(data.get("fingerprint") or compute_fingerprint(cases))
    return PreparedDataset(
        root=root,
        name=str(data.get("name", root.name)),
        source_format=str(data.get("source_format", "")),
        created=str(data.get("created", "")),
        fingerprint=fingerprint,
        cases=cases,
        splits=splits,
        manifest=data,
    )
