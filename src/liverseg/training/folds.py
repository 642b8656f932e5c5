"""Patient-level train/validation splits for a training run (from the cache manifest's copy of
``dataset.json`` splits, explicit ids, or leave-one-patient-out)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from liverseg.errors import ConfigError

__all__ = ["fold_count", "leave_one_patient_out", "resolve_split"]

log = logging.getLogger(__name__)


def leave_one_patient_out(
    patients: Mapping[str, str], exclude: Sequence[str] = ()
) -> list[tuple[list[str], list[str]]]:
    """One fold per patient (sorted by patient id): its cases are validation, the rest training.

    Args:
        patients: case id -> patient id.
        exclude: case ids never used (a held-out test set).
    """
    by_patient: dict[str, list[str]] = {}
    for cid, pid in patients.items():
        if cid not in exclude:
            by_patient.setdefault(pid, []).append(cid)
    folds = []
    for pid in sorted(by_patient):
        val = sorted(by_patient[pid])
        train = sorted(c for p, cs in by_patient.items() if p != pid for c in cs)
        folds.append((train, val))
    return folds


def _folds(
    splits: Mapping[str, Any] | None, patients: Mapping[str, str]
) -> list[tuple[list[str], list[str]]]:
    if splits and splits.get("folds"):
        return [(list(f["train"]), list(f["val"])) for f in splits["folds"]]
    test = list(splits.get("test", [])) if splits else []
    return leave_one_patient_out(patients, test)


def fold_count(splits: Mapping[str, Any] | None, patients: Mapping[str, str]) -> int:
    """Number of folds (dataset splits, else one per patient)."""
    return len(_folds(splits, patients))


def resolve_split(
    *,
    splits: Mapping[str, Any] | None,
    patients: Mapping[str, str],
    usable: Sequence[str],
    fold: int | None,
    train_ids: Sequence[str] | None,
    val_ids: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """``(train_ids, val_ids)`` for a run; explicit ids win over ``fold``.

    Args:
        splits: ``dataset.json`` ``splits`` (or None: leave-one-patient-out folds).
        patients: every case id -> patient id.
        usable: case ids that exist on this stage's grid (tumor stage: cases with liver).

    Raises:
        ConfigError: unknown ids, a fold that does not exist, a patient on both sides, or no
            training case; the message names the field (``data.fold``, ``data.val_ids``, ...).
    """
    for name, ids in (("data.train_ids", train_ids), ("data.val_ids", val_ids)):
        unknown = [i for i in ids or () if i not in patients]
        if unknown:
            raise ConfigError(f"{name}: unknown case id(s) {unknown}; the dataset has {sorted(patients)}")
    test = set(splits.get("test", [])) if splits else set()
    if train_ids is not None or val_ids is not None:
        val = list(val_ids or [])
        train = (
            list(train_ids)
            if train_ids is not None
            else [c for c in patients if c not in val and c not in test]
        )
    else:
        if fold is None:
            raise ConfigError("data.fold: expected a fold index or explicit data.train_ids/val_ids, got null")
        folds = _folds(splits, patients)
        if not 0 <= fold < len(folds):
            kind = "dataset.json splits" if splits and splits.get("folds") else "leave-one-patient-out folds"
            raise ConfigError(
                f"data.fold: fold {fold} does not exist; the dataset has {len(folds)} fold(s) "
                f"({kind}), expected 0..{len(folds) - 1}"
            )
        train, val = folds[fold]
    shared = {patients[c] for c in train} & {patients[c] for c in val}
    if shared:
        raise ConfigError(f"data.val_ids: patient(s) {sorted(shared)} appear in both training and validation")
    dropped = [c for c in (*train, *val) if c not in usable]
    if dropped:
        log.warning("cases without usable labels for this stage are left out: %s", dropped)
    train = [c for c in train if c in usable]
    val = [c for c in val if c in usable]
    if not train:
        raise ConfigError("data.train_ids: no training case left for this stage (check the split and labels)")
    if not val:
        log.warning("no validation case: the last epoch's weights are kept as best.pt")
    return train, val
