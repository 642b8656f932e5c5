"""Test helpers for the service: synthetic CT files and a fast fake segmenter.

The fake segmenter has the signature of ``liverseg.service.jobs.run_job_segmentation`` and
writes the same outputs (label map on the input grid, the real report JSON, a short HTML page).
It thresholds HU: 40..100 -> liver (1), -10..30 -> tumor (2), which is exact on the phantom made
by :func:`make_ct` (the real pipeline is exercised by the e2e test when present).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from liverseg.io import Volume, read_volume, write_volume
from liverseg.reporting import build_report, write_report_json
from liverseg.utils import atomic_write_text

HERE = Path(__file__).resolve().parent
LIVER_HU, TUMOR_HU = 70.0, 10.0
PASSWORDS = {"admin": "admin-password-1", "alice": "alice-password-1", "bob": "bob-password-12"}


def subprocess_env() -> dict[str, str]:
    """Environment for server/worker subprocesses, so that they can import this module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def wait_until_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    """Wait until ``liverseg serve`` at ``url`` answers ``/healthz`` with 200.

    Raises:
        AssertionError: the process exited or ``timeout_s`` passed; the message ends with the
            last 3,000 characters of its log ``log_path``.
    """
    end = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError("server did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)


@contextlib.contextmanager
def running_server(cmd: list[str], port: int, log_path: Path, timeout_s: float) -> Iterator[str]:
    """Run ``cmd`` (a ``liverseg serve`` on ``port``) until the block ends; yield its URL.

    The server runs in its own process group, so teardown reaches its workers too; its output
    goes to ``log_path`` (quoted when it does not start within ``timeout_s``).
    """
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        cmd, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log_path, timeout_s)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind
        log.close()


def upload(client: Any, path: Path, label: str = "case") -> Any:
    """POST a file as a study upload (raw body) with a TestClient/httpx client; returns the response."""
    return client.post(
        "/api/studies",
        content=path.read_bytes(),
        headers={"Content-Type": "application/octet-stream", "X-Study-Label": quote(label)},
    )


def make_ct(
    shape: tuple[int, int, int] = (20, 48, 48),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
    direction: np.ndarray | None = None,
) -> Volume:
    """Phantom CT (z, y, x) in HU: air, a fat body ellipse, a liver ellipsoid with two tumors."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    arr = np.full(shape, -1000.0, dtype=np.float32)
    arr[(y / 0.9) ** 2 + (x / 0.95) ** 2 < 1] = -100.0
    arr[(z / 0.8) ** 2 + ((y - 0.1) / 0.6) ** 2 + ((x + 0.3) / 0.5) ** 2 < 1] = LIVER_HU
    arr[(z / 0.35) ** 2 + ((y - 0.1) / 0.2) ** 2 + ((x + 0.3) / 0.2) ** 2 < 1] = TUMOR_HU  # big tumor
    arr[((z - 0.5) / 0.2) ** 2 + ((y - 0.3) / 0.12) ** 2 + ((x + 0.5) / 0.12) ** 2 < 1] = (
        TUMOR_HU  # small one
    )
    return Volume(arr, spacing, (-20.0, -20.0, -25.0), np.eye(3) if direction is None else direction)


def write_ct(path: Path, **kw: Any) -> Path:
    """Write :func:`make_ct` as NIfTI (suffix decides .nii / .nii.gz)."""
    write_volume(make_ct(**kw), path)
    return path


def fake_labels(image: np.ndarray) -> np.ndarray:
    """The fake segmentation of an HU array: uint8 0/1/2."""
    labels = np.zeros(image.shape, np.uint8)
    labels[(image >= 40) & (image <= 100)] = 1
    labels[(image >= -10) & (image <= 30)] = 2
    return labels


def fake_segmenter(
    input_path: Path,
    out_dir: Path,
    *,
    model: str,
    dicom_input: bool,
    progress: Any,
    identity: dict[str, Any] | None = None,
    delay_s: float = 0.0,
) -> dict[str, Any]:
    """Fast stand-in for the real pipeline: thresholds instead of a model, then the real
    reporting (lesion table, slice numbers, locations) and a short HTML page."""
    t0 = time.perf_counter()
    progress("read", 0.0)
    image = read_volume(input_path, kind="image")
    steps = 6
    for k in range(steps):
        if delay_s:
            time.sleep(delay_s / steps)
        progress("segment", (k + 1) / steps)
    labels = image.with_array(fake_labels(image.array))
    write_volume(labels, out_dir / "labels.nii.gz")
    elapsed = time.perf_counter() - t0
    info: dict[str, Any] = {"name": input_path.name}
    if identity:
        info["identity"] = identity
    report = build_report(
        image,
        labels,
        model={"name": "fake", "version": "0.0.1", "ref": model},
        timings_s={"read": 0.01, "segment": elapsed, "total": elapsed},
        input_info=info,
        warnings=[],
    )
    write_report_json(report, out_dir / "report.json")
    atomic_write_text(
        out_dir / "report.html",
        f"<html><body><h1>Report</h1><p>{report['lesion_count']} lesions</p></body></html>",
    )
    progress("report", 1.0)
    return report


def fake_gate(model_ref: str, scratch: Path) -> dict[str, Any]:
    """Stand-in for the validation gate (:func:`liverseg.service.gate.run_gate`): passes unless
    the model's path names it ``failing``."""
    passed = "failing" not in str(model_ref)
    dice = 0.95 if passed else 0.41
    return {
        "passed": passed,
        "liver_dice": dice,
        "threshold": 0.85,
        "seconds": 0.1,
        "message": f"liver Dice {dice:.3f} on the sample (at least 0.85 required)",
    }


def model_zip_bytes(
    folder: Path,
    name: str = "test-cascade",
    version: str = "2.0.0",
    *,
    card: bool = True,
    stages: tuple[str, ...] = ("liver", "tumor"),
) -> bytes:
    """A zip of a model folder with tiny untrained stage checkpoints (model.json, stageN.pt, card)."""
    from liverseg.models import build_model
    from liverseg.training.checkpoint import save_checkpoint
    from liverseg.training.slabs import StageSpec

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, stage in enumerate(stages, 1):
        classes = ("background", "liver") if stage == "liver" else ("background", "liver", "tumor")
        spec = StageSpec(
            stage=stage, classes=classes, context_slices=1, spacing_zyx=(None, 3.0, 3.0), window=(50.0, 400.0)
        )
        net = build_model("unet", 3, len(classes), features=4, depth=2)
        files[stage] = save_checkpoint(
            folder / f"stage{i}.pt", net, spec=spec, model_name="unet", model_kwargs={"features": 4, "depth": 2},
            config={}, dataset_fingerprint=None, metrics={"dice": 0.5},
        )  # fmt: skip
    meta = {"name": name, "version": version, "stages": {k: v.name for k, v in files.items()}}
    if card:
        meta["card"] = "MODEL_CARD.md"
        (folder / "MODEL_CARD.md").write_text(f"# {name} {version}\n\nA test model.\n")
    (folder / "model.json").write_text(json.dumps(meta))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{name}/{f.name}")
    return buf.getvalue()


def slow_fake_segmenter(input_path: Path, out_dir: Path, **kw: Any) -> dict[str, Any]:
    """The fake segmenter taking ~4 s (for kill-and-resume tests)."""
    return fake_segmenter(input_path, out_dir, delay_s=4.0, **kw)


def failing_segmenter(input_path: Path, out_dir: Path, **kw: Any) -> dict[str, Any]:
    """A segmenter that always crashes with an unexpected error."""
    raise RuntimeError("simulated crash inside the pipeline")


def dicom_zip_bytes(
    n_slices: int = 4,
    shape: tuple[int, int] = (16, 16),
    *,
    volume: Volume | None = None,
    patient_id: str = "TP1",
    study_date: str = "20250110",
    accession: str = "ACC0001",
    series_description: str = "Abdomen venous 2.0",
) -> bytes:
    """A zip of a CT DICOM series written with pydicom: ``volume`` (axis-aligned, HU) when given,
    else ``n_slices`` constant 60 HU slices of ``shape``. Instance numbers run head first (1 = the
    most superior image), as an ordinary cranio-caudal abdominal CT."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    if volume is None:
        volume = Volume(np.full((n_slices, *shape), 60.0, np.float32), (2.0, 0.8, 0.8))
    if not np.allclose(volume.direction, np.eye(3)):
        raise ValueError("dicom_zip_bytes writes axis-aligned volumes only")
    n = volume.shape[0]
    series, study = generate_uid(), generate_uid()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k in range(n):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series, study
            ds.PatientName, ds.PatientID = "Test^Patient", patient_id
            ds.AccessionNumber, ds.StudyDate, ds.SeriesDescription = accession, study_date, series_description
            ds.Rows, ds.Columns = volume.shape[1:]
            ds.PixelSpacing, ds.SliceThickness = [volume.spacing[1], volume.spacing[2]], volume.spacing[0]
            ox, oy, oz = volume.origin
            ds.ImagePositionPatient = [ox, oy, oz + volume.spacing[0] * k]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.InstanceNumber = n - k  # head first
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
            ds.PixelData = (np.rint(volume.array[k]) + 1024).astype(np.int16).tobytes()
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            zf.writestr(f"series/IM{k:04d}", out.getvalue())
    return buf.getvalue()
