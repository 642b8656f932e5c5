"""Patient-level, tumor-stratified cross-validation splits (``liverseg data split``).

Rules: cases sharing a ``patient_id`` always land in the same fold/test set; patients are
stratified by image quality (full-quality CT before clipped slice exports, so that every fold
holds full-quality cases to report on) and by tumor presence (a patient "has tumor" when any of
its cases does); the result depends only on the set of cases and the seed (not on manifest order).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liverseg.data.dataset import DATASET_JSON, CaseInfo, Splits, load_dataset
from liverseg.data.slice_export import is_full_quality
from liverseg.errors import ConfigError
from liverseg.utils import atomic_write_text

__all__ = ["make_splits", "split_dataset"]

log = logging.getLogger(__name__)


Stratum = tuple[bool, bool]  # (full quality, has tumor)
#: the order strata are dealt in (continuing one counter, so fold sizes differ by at most one)
_STRATA: tuple[Stratum, ...] = ((True, True), (True, False), (False, True), (False, False))


def _group_patients(cases: Sequence[CaseInfo]) -> dict[str, tuple[list[str], Stratum]]:
    """patient_id -> (sorted case ids, (full quality, has tumor)), patients in sorted order.

    A patient is full quality when any of its cases is full-quality CT.
    """
    groups: dict[str, list[CaseInfo]] = {}
    for c in cases:
        groups.setdefault(c.patient_id, []).append(c)
    return {
        p: (
            sorted(c.id for c in cs),
            (any(is_full_quality(c.extra) for c in cs), any(c.has_tumor for c in cs)),
        )
        for p, cs in sorted(groups.items())
    }


def _allocate(total: int, sizes: Sequence[int]) -> list[int]:
    """Split ``total`` over strata proportionally to ``sizes`` (largest remainder, ties to the first)."""
    n = sum(sizes)
    if n == 0:
        return [0] * len(sizes)
    exact = [total * s / n for s in sizes]
    quota = [int(np.floor(e)) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - quota[i]), i))
    for i in order[: total - sum(quota)]:
        quota[i] += 1
    return quota


def make_splits(
    cases: Sequence[CaseInfo],
    *,
    folds: int,
    seed: int,
    test_fraction: float = 0.0,
    lopo: bool = False,
) -> Splits:
    """Patient-level K-fold splits stratified by tumor presence, plus an optional test set.

    Args:
        cases: the dataset's cases (``id``, ``patient_id``, ``tumor_volume_ml`` are used).
        folds: number of folds K >= 2; 0 means leave-one-patient-out (as does ``lopo=True``).
        seed: makes the assignment reproducible.
        test_fraction: fraction of patients held out as a test set first, in [0, 1). When > 0
            at least one patient is held out.
        lopo: leave-one-patient-out: one fold per remaining patient.

    Raises:
        ConfigError: K is 1 or negative, K exceeds the number of (non-test) patients, or the
            test fraction is out of range / leaves too few patients.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    lopo = lopo or folds == 0
    if not lopo and folds < 2:
        raise ConfigError(f"--folds must be >= 2 (or 0 for leave-one-patient-out), got {folds}")
    patients = _group_patients(cases)
    n_patients = len(patients)
    rng = np.random.default_rng(seed)
    strata: dict[Stratum, list[str]] = {s: [] for s in _STRATA}
    for p, (_, stratum) in patients.items():
        strata[stratum].append(p)
    # Shuffle each non-empty stratum once (an all-full-quality dataset draws exactly what the
    # tumor-only stratification drew); test patients come from the front, folds from the rest.
    order = {s: [ps[i] for i in rng.permutation(len(ps))] for s, ps in strata.items() if ps}

    n_test = 0
    if test_fraction > 0:
        n_test = max(1, round(test_fraction * n_patients))
    n_left = n_patients - n_test
    k = n_left if lopo else folds
    if n_left < max(k, 2):
        raise ConfigError(
            f"cannot make {'leave-one-patient-out' if lopo else f'{folds}'} folds: the dataset has "
            f"{n_patients} patient(s)"
            + (f", {n_test} of them held out as test (--test-fraction {test_fraction})" if n_test else "")
            + f", leaving {n_left} for cross-validation; need at least {max(k, 2)}"
        )
    keys = list(order)
    quota = _allocate(n_test, [len(order[s]) for s in keys])
    test_patients = [p for s, q in zip(keys, quota, strict=True) for p in order[s][:q]]
    rest = {s: order[s][q:] for s, q in zip(keys, quota, strict=True)}

    fold_patients: list[list[str]] = [[] for _ in range(k)]
    if lopo:
        for i, p in enumerate(sorted(p for ps in rest.values() for p in ps)):
            fold_patients[i].append(p)
    else:
        # Deal the strata round-robin in _STRATA order, continuing the counter so that fold sizes
        # differ by at most one and each stratum is spread as evenly as possible.
        i = 0
        for stratum in keys:
            for p in rest[stratum]:
                fold_patients[i % k].append(p)
                i += 1

    def ids(ps: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(cid for p in ps for cid in patients[p][0]))

    all_cv = [p for fp in fold_patients for p in fp]
    out_folds = []
    for fp in fold_patients:
        val = ids(fp)
        train = ids([p for p in all_cv if p not in fp])
        out_folds.append((train, val))
    splits = Splits(
        folds=tuple(out_folds),
        test=ids(test_patients),
        seed=int(seed),
        method="leave-one-patient-out" if lopo else "stratified-kfold",
        test_fraction=float(test_fraction),
    )
    for j, (_, val) in enumerate(splits.folds):
        n_t = sum(patients[p][1][1] for p in fold_patients[j])
        n_fq = sum(patients[p][1][0] for p in fold_patients[j])
        log.info(
            "fold %d: %d val case(s) from %d patient(s), %d with tumor, %d full-quality",
            j,
            len(val),
            len(fold_patients[j]),
            n_t,
            n_fq,
        )
    if splits.test:
        log.info("test: %s", ", ".join(splits.test))
    return splits


def split_dataset(
    path: str | Path, *, folds: int, seed: int, test_fraction: float = 0.0, lopo: bool = False
) -> Splits:
    """Compute :func:`make_splits` for a prepared dataset and store it in its ``dataset.json``.

    Every other key of the manifest is kept as is; the file is replaced atomically.
    """
    ds = load_dataset(path, check_files=False)
    splits = make_splits(ds.cases, folds=folds, seed=seed, test_fraction=test_fraction, lopo=lopo)
    manifest = dict(ds.manifest)
    manifest["splits"] = splits.to_dict()
    atomic_write_text(ds.root / DATASET_JSON, json.dumps(manifest, indent=2) + "\n")
    return splits
