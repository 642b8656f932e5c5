"""The local engine end to end (the shipped model on small slabs of the sample): failure isolation,
resume rules, interruption, URL inputs, and the ``liverseg segment`` command on a manifest."""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import liverseg.cohort.worker as worker_module
from liverseg.cli.main import main
from liverseg.cohort import CohortConfig, LocalEngine, discover_cases, read_manifest, run_cohort
from liverseg.cohort.run import LOCK_FILE
from liverseg.errors import OutputError
from liverseg.inference import SegmentOptions
from liverseg.io import Volume, read_volume, write_volume

OPTIONS = SegmentOptions(device="cpu")


class CountingSegment:
    """Wraps run_segment: counts calls; inputs named in ``raise_for`` raise the given exception."""

    def __init__(self, raise_for: dict[str, BaseException] | None = None) -> None:
        self.calls: list[str] = []
        self.raise_for = raise_for or {}
        self.real = worker_module.run_segment

    def __call__(self, input_path: Any, *args: Any, **kw: Any) -> dict:
        name = Path(input_path).name.split(".")[0]
        self.calls.append(name)
        if name in self.raise_for:
            raise self.raise_for[name]
        return self.real(input_path, *args, **kw)


@pytest.fixture
def segment_spy(monkeypatch: pytest.MonkeyPatch):
    def install(raise_for: dict[str, BaseException] | None = None) -> CountingSegment:
        spy = CountingSegment(raise_for)
        monkeypatch.setattr(worker_module, "run_segment", spy)
        return spy

    return install


def _run(cases_dir: Path, out: Path, **kw: Any):
    config = CohortConfig(out_dir=out, options=OPTIONS, **kw)
    return run_cohort(discover_cases(cases_dir), config, LocalEngine(), show_progress=False)


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "cohort.csv", newline="") as fh:
        return {r["case"]: r for r in csv.DictReader(fh)}


def test_any_exception_fails_only_its_case(
    tmp_path: Path, make_cases, segment_spy, caplog: pytest.LogCaptureFixture
) -> None:
    cases = make_cases("a", "bad", "boom", "oom", "z")
    segment_spy({"boom": RuntimeError("boom\nsecond line"), "oom": MemoryError("Unable to allocate 9 GiB")})
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG, logger="liverseg.cohort.run")
    summary = _run(cases, out)
    assert "boom: traceback on" in caplog.text and "Traceback (most recent call last)" in caplog.text
    assert summary.exit_code == 1 and summary.segmented == 5
    rows = _rows(out)
    assert [rows[n]["status"] for n in ("a", "bad", "boom", "oom", "z")] == [
        "ok",
        "failed",
        "failed",
        "failed",
        "ok",
    ]
    assert rows["bad"]["error"].startswith(f"{cases / 'bad.nii.gz'}: ")  # the reader's one-line reason
    assert rows["boom"]["error"] == "RuntimeError: boom second line"
    assert rows["oom"]["error"].startswith("out of memory (MemoryError: Unable to allocate 9 GiB")
    for name in ("bad", "boom", "oom"):
        assert not (out / f"{name}.nii.gz").exists() and not (out / "ledger" / f"{name}.json").exists()
    report = json.loads((out / "a.report.json").read_text())
    assert float(rows["a"]["liver_ml"]) == report["liver_volume_ml"] > 100
    assert int(rows["a"]["lesions"]) == report["lesion_count"]
    assert int(rows["a"]["possible_lesions"]) == report["possible_lesion_count"]
    assert rows["a"]["model"] == "liver-cascade" and rows["a"]["resumed"] == "false"
    labels = read_volume(out / "a.nii.gz", kind="label")
    assert labels.same_grid(read_volume(cases / "a.nii.gz"))
    assert (out / "cohort.parquet").exists()
    assert summary.workers and summary.workers[0]["cases"] == 5


def test_resume_rules(tmp_path: Path, make_cases, segment_spy) -> None:
    cases = make_cases("a", "b")
    out = tmp_path / "out"
    spy = segment_spy()
    assert _run(cases, out).exit_code == 0 and spy.calls == ["a", "b"]
    mtime = (out / "a.nii.gz").stat().st_mtime_ns

    spy.calls.clear()  # same inputs, same model: nothing is segmented again
    summary = _run(cases, out)
    assert spy.calls == [] and summary.segmented == 0 and summary.resumed == 2
    assert (out / "a.nii.gz").stat().st_mtime_ns == mtime
    assert all(r["resumed"] == "true" and r["status"] == "ok" for r in _rows(out).values())

    os.utime(cases / "a.nii.gz")  # touched, same bytes: hashed again, not segmented again
    summary = _run(cases, out)
    assert spy.calls == [] and summary.resumed == 2

    image = read_volume(cases / "b.nii.gz")  # new bytes (another origin): segmented again
    write_volume(
        Volume(image.array, image.spacing, tuple(o + 1.0 for o in image.origin), image.direction),
        cases / "b.nii.gz",
    )
    _run(cases, out)
    assert spy.calls == ["b"]

    spy.calls.clear()  # (another model, options or set of outputs: see test_cohort_ledger)
    _run(cases, out, force=True)
    assert sorted(spy.calls) == ["a", "b"]


def test_a_case_that_now_fails_keeps_no_stale_output(tmp_path: Path, make_cases) -> None:
    cases = make_cases("a")
    out = tmp_path / "out"
    _run(cases, out, overlays_dir=out / "pictures")
    assert (out / "a.nii.gz").exists() and list((out / "pictures" / "a").glob("*.png"))
    (cases / "a.nii.gz").write_bytes(b"broken now")
    summary = _run(cases, out, overlays_dir=out / "pictures")
    assert summary.exit_code == 1
    assert not (out / "a.nii.gz").exists() and not (out / "a.report.json").exists()
    assert not (out / "pictures" / "a").exists() and not (out / "ledger" / "a.json").exists()


def test_interrupted_run_keeps_finished_cases(tmp_path: Path, make_cases, segment_spy) -> None:
    cases = make_cases("a", "b", "c")
    out = tmp_path / "out"
    spy = segment_spy({"b": KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        _run(cases, out)
    rows = _rows(out)  # written on the way out
    assert [rows[n]["status"] for n in "abc"] == ["ok", "pending", "pending"]
    assert (out / "ledger" / "a.json").exists() and not (out / "ledger" / "b.json").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [LOCK_FILE]  # no temporary file

    spy.raise_for.clear()
    spy.calls.clear()
    summary = _run(cases, out)
    assert spy.calls == ["b", "c"] and summary.exit_code == 0 and summary.resumed == 1


def test_url_inputs_file_and_dicom_folder(tmp_path: Path, slab_file: Path) -> None:
    from _helpers_dicom import write_volume_as_dicom

    dicom = write_volume_as_dicom(read_volume(slab_file), tmp_path / "remote" / "series_1")
    shutil.copy(slab_file, tmp_path / "remote" / "ct_2.nii.gz")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path\nfile://{dicom}\nfile://{tmp_path / 'remote' / 'ct_2.nii.gz'}\n")
    out = tmp_path / "out"
    summary = run_cohort(
        read_manifest(manifest), CohortConfig(out, OPTIONS), LocalEngine(), show_progress=False
    )
    rows = _rows(out)
    assert summary.exit_code == 0, rows
    assert rows["series_1"]["input"] == f"file://{dicom}"
    report = json.loads((out / "series_1.report.json").read_text())
    assert report["input"]["format"] == "dicom-folder" and report["liver_found"]
    assert read_volume(out / "series_1.nii.gz", kind="label").same_grid(read_volume(dicom), atol=1e-4)
    # a URL input has no cheap signature: the rerun hashes it again but does not segment it
    again = run_cohort(
        read_manifest(manifest), CohortConfig(out, OPTIONS), LocalEngine(), show_progress=False
    )
    assert again.segmented == 0 and again.resumed == 2


def test_cli_manifest_and_misplaced_options(
    tmp_path: Path, make_cases, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = make_cases("a", "bad")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,case\ncases/a.nii.gz,first\ncases/bad.nii.gz,second\n")
    assert main(["segment", str(manifest), "-o", str(tmp_path / "out"), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "second  FAILED" in printed and "1 of 2 case(s) succeeded" in printed
    assert "cohort table:" in printed and (tmp_path / "out" / "first.nii.gz").exists()

    assert (
        main(["segment", str(manifest), "-o", str(tmp_path / "o3"), "--dicom-sr", str(tmp_path / "sr")]) == 1
    )
    assert "--dicom-sr: single-case option(s)" in capsys.readouterr().err
    assert main(["segment", str(cases), "-o", str(tmp_path / "o2"), "--num-workers", "2"]) == 1
    assert "--num-workers need(s) --engine ray" in capsys.readouterr().err
    assert (
        main(["segment", str(cases / "a.nii.gz"), "-o", str(tmp_path / "x.nii.gz"), "--engine", "ray"]) == 1
    )
    assert "folder of cases or a manifest" in capsys.readouterr().err
    assert (
        main(["segment", str(cases / "a.nii.gz"), "-o", str(tmp_path / "x.nii.gz"), "--num-workers", "2"])
        == 1
    )
    assert "--num-workers: cohort option(s)" in capsys.readouterr().err
    (tmp_path / "file_out").write_text("")
    assert main(["segment", str(cases), "-o", str(tmp_path / "file_out")]) == 1
    assert "needs OUTPUT to be a folder" in capsys.readouterr().err


def test_one_driver_per_output_folder(tmp_path: Path, make_cases) -> None:
    cases = make_cases("a")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "w") as held:  # as a running driver holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OutputError, match="another liverseg cohort run"):
            _run(cases, out)
    assert not (out / "cohort.csv").exists()


def test_outputs_never_overwrite_inputs(
    tmp_path: Path, make_cases, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = make_cases("a")
    assert main(["segment", str(cases), "-o", str(cases)]) == 1
    assert "the output folder is the input folder" in capsys.readouterr().err
    manifest = tmp_path / "m.csv"  # OUT_DIR/a.nii.gz would be the input itself
    manifest.write_text(f"path\n{cases / 'a.nii.gz'}\n")
    with pytest.raises(OutputError, match="would overwrite or write inside the input"):
        run_cohort(read_manifest(manifest), CohortConfig(cases, OPTIONS), LocalEngine(), show_progress=False)
    assert (cases / "a.nii.gz").stat().st_size > 1000  # untouched
