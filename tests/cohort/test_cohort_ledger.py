"""The resume ledger: input digests and signatures, model identity, skip/verify/run decisions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from liverseg.cohort.cases import Case
from liverseg.cohort.ledger import Ledger, input_digest, input_signature, model_identity, new_record
from liverseg.inference import SegmentOptions


def test_digest_of_a_file_is_its_sha256(tmp_path: Path) -> None:
    f = tmp_path / "ct.nii.gz"
    f.write_bytes(b"abc")
    assert input_digest(f) == hashlib.sha256(b"abc").hexdigest()


def test_digest_of_a_folder_follows_names_and_contents(tmp_path: Path) -> None:
    d = tmp_path / "series"
    (d / "sub").mkdir(parents=True)
    (d / "1.dcm").write_bytes(b"one")
    (d / "sub" / "2.dcm").write_bytes(b"two")
    first = input_digest(d)
    (d / "sub" / "2.dcm").write_bytes(b"TWO")
    assert input_digest(d) != first
    (d / "sub" / "2.dcm").write_bytes(b"two")
    assert input_digest(d) == first
    (d / "sub" / "2.dcm").rename(d / "2.dcm")
    assert input_digest(d) != first  # same bytes under another name: another series


def test_signature_changes_with_mtime_not_with_reading(tmp_path: Path) -> None:
    f = tmp_path / "ct.nii.gz"
    f.write_bytes(b"abc")
    sig = input_signature(str(f))
    f.read_bytes()
    assert input_signature(str(f)) == sig
    os.utime(f, ns=(1, 10**18))
    assert input_signature(str(f)) != sig
    assert input_signature("s3://bucket/ct.nii.gz") is None


def test_model_identity_names_weights_and_result_options() -> None:
    base = model_identity(SegmentOptions())
    assert base["name"] == "liver-cascade" and len(base["weights_sha256"]) == 64
    assert len(base["postprocess_sha256"]) == 64
    assert model_identity(SegmentOptions(device="cpu", backend="torch")) == base  # same results
    assert model_identity(SegmentOptions(tta=True)) != base
    assert model_identity(SegmentOptions(min_lesion_mm3=5.0)) != base


@pytest.fixture
def finished(tmp_path: Path) -> tuple[Ledger, Case, list[Path], dict]:
    """A ledger with one finished case ``a`` whose outputs exist."""
    out = tmp_path / "out"
    src = tmp_path / "a.nii.gz"
    src.write_bytes(b"ct bytes")
    case = Case("a", str(src))
    outputs = [out / "a.nii.gz", out / "a.report.json"]
    for p in outputs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    identity = {"name": "m", "version": "1", "weights_sha256": "w", "tta": False, "min_lesion_mm3": None}
    ledger = Ledger(out)
    rel = [ledger.relative(p) for p in outputs]
    ledger.write(
        new_record(
            case,
            sha256=input_digest(src),
            signature=input_signature(str(src)),
            identity=identity,
            outputs=rel,
            files=rel,
            row={"case": "a"},
        )
    )
    return ledger, case, outputs, identity


def test_decisions(finished: tuple[Ledger, Case, list[Path], dict]) -> None:
    ledger, case, outputs, identity = finished
    decide = ledger.decide
    assert decide(case, outputs, identity, force=False).action == "skip"
    assert decide(case, outputs, identity, force=True).action == "run"
    assert decide(case, outputs, {**identity, "version": "2"}, force=False).action == "run"
    assert decide(case, [*outputs, outputs[0].parent / "a.html"], identity, force=False).action == "run"
    os.utime(case.input, ns=(1, 10**18))  # touched: the worker hashes it again
    verify = decide(case, outputs, identity, force=False)
    assert verify.action == "verify" and verify.record is not None
    outputs[1].unlink()
    assert decide(case, outputs, identity, force=False).action == "run"
    assert decide(Case("b", case.input), outputs, identity, force=False).action == "run"


def test_unreadable_record_counts_as_absent(finished: tuple[Ledger, Case, list[Path], dict]) -> None:
    ledger, case, outputs, identity = finished
    ledger.path("a").write_text("{ half a record")
    assert ledger.read("a") is None
    assert ledger.decide(case, outputs, identity, force=False).action == "run"
