"""`liverseg segment` under full disks, clashing or unusable output paths, and hostile inputs.

The segmentation itself is replaced by a fast fake (:func:`fake_segment_volume`, a threshold on
the phantom) where the test is about what happens around it: output checks before any work,
atomic all-or-nothing publication of every output, verified label maps, exit codes.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liverseg.errors import InputError, LiversegError, OutputError
from liverseg.inference import SegmentOptions, api, run_segment
from liverseg.io import Volume, read_volume, write_volume

HERE = Path(__file__).resolve().parent


def phantom() -> Volume:
    """A CT-like phantom (z, y, x) in HU: air, body, a liver-like block with a tumor."""
    arr = np.full((12, 40, 40), -1000.0, np.float32)
    arr[:, 4:36, 4:36] = -80.0
    arr[2:10, 8:28, 8:30] = 60.0
    arr[4:8, 12:18, 12:18] = 10.0
    return Volume(arr, (2.5, 0.8, 0.8), (-16.0, -16.0, 100.0))


def fake_segment_volume(image: Volume, options: SegmentOptions = SegmentOptions(), progress=None):
    """Stand-in for the model: thresholds the phantom (liver 40..100 HU, tumor -10..30 HU)."""
    labels = np.zeros(image.shape, np.uint8)
    labels[(image.array >= 40) & (image.array <= 100)] = 1
    labels[(image.array >= -10) & (image.array <= 30)] = 2
    return api.SegmentResult(
        image.with_array(labels), None, True, {"segment": 0.0}, {"name": "fake", "version": "0"}, []
    )


@pytest.fixture
def ct(tmp_path: Path) -> Path:
    return write_volume(phantom(), tmp_path / "ct.nii.gz")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "segment_volume", fake_segment_volume)


@pytest.fixture
def no_segmentation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("the segmentation started although an output was unusable")

    monkeypatch.setattr(api, "segment_volume", refuse)


# --------------------------------------------------------------------------- output checks first
@pytest.mark.parametrize(
    "outputs, message",
    [
        ({"output": "INPUT"}, "label map .* is the input"),
        ({"report_json": "INPUT"}, "JSON report .* is the input"),
        ({"report_json": "OUT"}, "label map and the JSON report outputs are the same file"),
        ({"html": "r.json", "report_json": "r.json"}, "same file"),
        ({"output": "labels.png"}, "expected an output suffix"),
        ({"probabilities": "p.json"}, "expected an output suffix"),
        ({"output": "DIR"}, "is a folder"),
    ],
)
def test_unusable_outputs_fail_before_segmentation(tmp_path, ct, no_segmentation, outputs, message):
    (tmp_path / "existing_dir.nii.gz").mkdir()
    names = {"INPUT": ct, "OUT": tmp_path / "labels.nii.gz", "DIR": tmp_path / "existing_dir.nii.gz"}
    kw = {k: names.get(v, tmp_path / v) for k, v in outputs.items()}
    output = kw.pop("output", tmp_path / "labels.nii.gz")
    before = ct.read_bytes()
    with pytest.raises((OutputError, InputError), match=message):
        run_segment(ct, output, **kw)
    assert ct.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz", "existing_dir.nii.gz"]


def test_output_in_an_unwritable_folder_fails_before_segmentation(tmp_path, ct, no_segmentation):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: use a read-only file system
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)]).returncode:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"not writable|Read-only|Permission"):
            run_segment(ct, locked / "labels.nii.gz")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(locked)], check=True)
        else:
            locked.chmod(0o700)


def test_cli_refuses_output_equal_to_input(tmp_path, ct):
    before = ct.read_bytes()
    res = subprocess.run(
        [sys.executable, "-m", "liverseg", "segment", str(ct), "-o", str(ct)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "is the input" in lines[0], res.stderr
    assert ct.read_bytes() == before


def test_batch_output_folder_equal_to_input_folder_is_refused(tmp_path, ct, no_segmentation):
    from liverseg.cli.main import main

    cases = tmp_path / "cases"
    cases.mkdir()
    ct.rename(cases / "a.nii.gz")
    assert main(["segment", str(cases), "-o", str(cases), "--quiet"]) == 1
    assert [p.name for p in cases.iterdir()] == ["a.nii.gz"]


# --------------------------------------------------------------------------- full disk
_CLI_WITH_FAKE = (
    "import sys, resource\n"
    "sys.path.insert(0, {here!r})\n"
    "limit = int(sys.argv[1])\n"
    "if limit: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "import test_segment_hardening as t\n"
    "from liverseg.inference import api\n"
    "api.segment_volume = t.fake_segment_volume\n"
    "from liverseg.cli.main import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def _cli_with_fake(args: list[str], fsize_limit: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI_WITH_FAKE.format(here=str(HERE)), str(fsize_limit), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(params=["tmpfs", "file-size-limit"])
def full_disk(request, tmp_path):
    """An output folder where every write fails: a full tmpfs (needs root) or RLIMIT_FSIZE."""
    out = tmp_path / "out"
    out.mkdir()
    if request.param == "file-size-limit":
        yield out, 200  # bytes: smaller than a NIfTI header
        return
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the file-size-limit variant runs instead)")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(out)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        fd = os.open(out / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it up
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield out, 0
    finally:
        subprocess.run(["umount", str(out)], check=True)


def test_full_disk_gives_exit_1_one_line_and_no_file(full_disk, ct):
    out, limit = full_disk
    before = sorted(p.name for p in out.iterdir())
    res = _cli_with_fake(
        ["segment", str(ct), "-o", str(out / "labels.nii.gz"), "--report", str(out / "r.json"), "-q"],
        limit,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("liverseg: error: "), res.stderr
    assert "labels.nii.gz" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == before  # no label map, no report, no temp file


def test_full_disk_is_found_before_segmentation(full_disk, ct, no_segmentation):
    out, limit = full_disk
    if limit:
        pytest.skip("a file-size limit cannot be set inside the test process")
    with pytest.raises(OutputError, match="No space left on device"):
        run_segment(ct, out / "labels.nii.gz")


def test_full_disk_fake_cli_runs_when_there_is_room(tmp_path, ct):
    res = _cli_with_fake(["segment", str(ct), "-o", str(tmp_path / "o" / "l.nii.gz"), "-q"])
    assert res.returncode == 0, res.stderr
    assert read_volume(tmp_path / "o" / "l.nii.gz", kind="label").array.max() == 2


def test_silently_truncated_label_map_is_detected(tmp_path, monkeypatch):
    """SimpleITK does not report a failed write: the written file is read back and compared."""
    import SimpleITK as sitk

    real_write = sitk.WriteImage

    def truncating_write(image, name, *args, **kwargs):
        real_write(image, name, *args, **kwargs)
        data = Path(name).read_bytes()
        Path(name).write_bytes(data[: len(data) * 2 // 3])  # what a full disk leaves

    monkeypatch.setattr(sitk, "WriteImage", truncating_write)
    target = tmp_path / "out" / "labels.nii.gz"
    labels = phantom().with_array((phantom().array > 0).astype(np.uint8))
    with pytest.raises(OutputError, match="does not read back"):
        write_volume(labels, target)
    assert list(target.parent.iterdir()) == []


def test_outputs_are_published_all_or_none(tmp_path, ct, fake, monkeypatch):
    """The label map is complete but the report cannot be written: neither appears, and the
    previous run's outputs stay as they were."""
    out = tmp_path / "out"
    run_segment(ct, out / "labels.nii.gz", report_json=out / "r.json", html=out / "r.html")
    previous = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write_bytes = Path.write_bytes

    def disk_full_for_json(self, data):
        if self.name.endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full_for_json)
    ct2 = write_volume(phantom().with_array(phantom().array + 5), tmp_path / "ct2.nii.gz")
    with pytest.raises(OutputError, match="No space left on device") as err:
        run_segment(ct2, out / "labels.nii.gz", report_json=out / "r.json", html=out / "r.html")
    assert "r.json" in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == previous


# --------------------------------------------------------------------------- hostile inputs
def test_cli_nan_voxels_exit_1_one_line(tmp_path):
    import nibabel as nib

    arr = phantom().array.transpose(2, 1, 0).copy()
    arr[3, 3, 3] = np.nan
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.diag([0.8, 0.8, 2.5, 1.0])), path)
    res = _cli_with_fake(["segment", str(path), "-o", str(tmp_path / "l.nii.gz")])
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "NaN/infinite" in lines[0], res.stderr
    assert not (tmp_path / "l.nii.gz").exists()


def test_reader_warnings_reach_the_report(tmp_path):
    image = phantom()
    image = Volume(image.array, image.spacing, image.origin, image.direction, {"warnings": ["sheared"]})
    assert "sheared" in api.input_warnings(image)
    dicom = Volume(image.array, metadata={"dicom": {"warnings": ["left out IM9: off the stack"]}})
    assert api.input_warnings(dicom) == ["left out IM9: off the stack"]


def test_sample_with_5_mm_spacing_is_refused_before_any_work(tmp_path, monkeypatch):
    """The sample with its spacing changed to 5 mm (a 0.9 x 1.2 m field of view) took 8 minutes
    and 8.7 GB before this check; now it is refused before the model is even loaded."""
    from liverseg import catalog
    from liverseg.io import SAMPLE_IMAGE

    def no_model(*_a, **_k):
        raise AssertionError("the model was loaded for an impossible input")

    monkeypatch.setattr(catalog, "resolve_model", no_model)
    image = read_volume(SAMPLE_IMAGE)
    path = write_volume(Volume(image.array, (5.0, 5.0, 5.0), image.origin), tmp_path / "s5.nii.gz")
    with pytest.raises(InputError, match=r"field of view .* 885 x 1240 mm in-plane") as err:
        run_segment(path, tmp_path / "l.nii.gz")
    assert "\n" not in str(err.value)


def test_too_large_resampled_grid_is_refused_before_allocating(tmp_path):
    """A plausible field of view (1 x 1 x 3 m) whose stage-1 grid would still be 160 M voxels."""
    rng = np.random.default_rng(0)
    arr = rng.uniform(-1000, 1000, (150, 100, 100)).astype(np.float32)
    path = write_volume(Volume(arr, (20.0, 10.0, 10.0)), tmp_path / "coarse.nii.gz")
    with pytest.raises(LiversegError, match=r"too large to resample") as err:
        run_segment(path, tmp_path / "l.nii.gz", options=SegmentOptions(device="cpu", backend="torch"))
    assert "\n" not in str(err.value) and "(1000, 400, 400)" in str(err.value)
    assert not (tmp_path / "l.nii.gz").exists()


def test_report_json_is_valid_after_a_normal_run(tmp_path, ct, fake):
    report = run_segment(ct, tmp_path / "l.nii.gz", report_json=tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["lesion_count"] == report["lesion_count"] == 1
