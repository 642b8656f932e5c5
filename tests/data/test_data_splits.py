"""Patient-level, tumor-stratified, deterministic splits."""

from __future__ import annotations

from collections import Counter

import pytest

from liverseg.data import CaseInfo, make_splits
from liverseg.errors import ConfigError


def _case(cid: str, patient: str, tumor_ml: float) -> CaseInfo:
    return CaseInfo(
        id=cid,
        patient_id=patient,
        image=f"images/{cid}.nii.gz",
        label=f"labels/{cid}.nii.gz",
        source="",
        shape_zyx=(1, 1, 1),
        spacing_zyx_mm=(1.0, 1.0, 1.0),
        hu_range={},
        liver_volume_ml=1.0,
        tumor_volume_ml=tumor_ml,
        tumor_components=int(tumor_ml > 0),
        image_sha256="",
        label_sha256="",
    )


def _cases() -> list[CaseInfo]:
    """12 patients (p00..p11), 6 with tumor; p00, p03, p07 have a second scan (one of p07's without tumor)."""
    cases = [_case(f"c{i:02d}", f"p{i:02d}", 5.0 if i % 2 == 0 else 0.0) for i in range(12)]
    cases += [_case("c00b", "p00", 3.0), _case("c03b", "p03", 0.0), _case("c07b", "p07", 0.0)]
    return cases


def _patient_of(cases: list[CaseInfo]) -> dict[str, str]:
    return {c.id: c.patient_id for c in cases}


def test_kfold_is_patient_level_and_covers_every_case_once() -> None:
    cases = _cases()
    s = make_splits(cases, folds=3, seed=1)
    patient = _patient_of(cases)
    vals = [cid for _, val in s.folds for cid in val]
    assert sorted(vals) == sorted(patient)  # every case validated exactly once
    for train, val in s.folds:
        assert not set(train) & set(val)
        assert set(train) | set(val) == set(patient)
        assert not {patient[c] for c in train} & {patient[c] for c in val}  # no patient straddles
    assert s.test == () and s.method == "stratified-kfold" and s.seed == 1


def test_kfold_is_stratified_by_tumor_presence() -> None:
    cases = _cases()
    tumor_patients = {c.patient_id for c in cases if c.has_tumor}
    for seed in range(5):
        s = make_splits(cases, folds=3, seed=seed)
        patient = _patient_of(cases)
        per_fold = [len({patient[c] for c in val} & tumor_patients) for _, val in s.folds]
        assert sorted(per_fold) == [2, 2, 2], (seed, per_fold)
        sizes = [len({patient[c] for c in val}) for _, val in s.folds]
        assert max(sizes) - min(sizes) <= 1


def test_splits_are_deterministic_per_seed_and_order_independent() -> None:
    cases = _cases()
    a = make_splits(cases, folds=4, seed=7, test_fraction=0.2)
    b = make_splits(list(reversed(cases)), folds=4, seed=7, test_fraction=0.2)
    assert a == b
    others = {make_splits(cases, folds=4, seed=s, test_fraction=0.2).folds for s in range(8)}
    assert len(others) > 1  # the seed matters


def test_test_fraction_holds_out_whole_patients() -> None:
    cases = _cases()
    s = make_splits(cases, folds=3, seed=3, test_fraction=0.25)
    patient = _patient_of(cases)
    test_patients = {patient[c] for c in s.test}
    assert len(test_patients) == 3
    assert Counter(p in {c.patient_id for c in cases if c.has_tumor} for p in test_patients) in (
        Counter({True: 2, False: 1}),
        Counter({True: 1, False: 2}),
    )
    for train, val in s.folds:
        assert not ({patient[c] for c in (*train, *val)} & test_patients)
    assert sorted([*s.test, *(c for _, v in s.folds for c in v)]) == sorted(patient)


def test_leave_one_patient_out() -> None:
    cases = _cases()
    s = make_splits(cases, folds=0, seed=0)
    assert s.method == "leave-one-patient-out" and len(s.folds) == 12
    patient = _patient_of(cases)
    assert all(len({patient[c] for c in val}) == 1 for _, val in s.folds)
    assert make_splits(cases, folds=5, seed=0, lopo=True).folds == s.folds
    assert len(make_splits(cases, folds=0, seed=0, test_fraction=0.2).folds) == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"folds": 13}, "13 folds: the dataset has 12 patient"),
        ({"folds": 1}, ">= 2"),
        ({"folds": -2}, ">= 2"),
        ({"folds": 11, "test_fraction": 0.2}, "held out as test"),
        ({"folds": 3, "test_fraction": 1.0}, r"\[0, 1\)"),
    ],
)
def test_bad_fold_counts_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_splits(_cases(), seed=0, **kwargs)
