"""Synthetic source trees for the dataset-preparation tests (tiny volumes, written in tmp_path).

The phantom (``z, y, x`` = 8 x 32 x 32 by default) has a body (-50 HU) in air (-1000 HU), a
liver block on the patient's right (low ``x`` in LPS, 60 HU) and two tumors inside it (20 HU):
labels 0 background, 1 liver, 2 tumor.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from _helpers_dicom import ct_slice
from liverseg.utils import set_progress_enabled

SHAPE = (8, 32, 32)


@pytest.fixture(autouse=True)
def _no_progress() -> Any:
    set_progress_enabled(False)
    yield
    set_progress_enabled(True)


def phantom(shape: Sequence[int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """``(image HU int16, label uint8)`` arrays ``(z, y, x)``: liver at x 2..13, two tumors."""
    z, y, x = shape
    img = np.full(shape, -1000, np.int16)
    img[:, 2 : y - 2, 1 : x - 1] = -50
    lab = np.zeros(shape, np.uint8)
    lab[1 : z - 1, 6:24, 2:14] = 1
    lab[2:5, 8:12, 4:8] = 2  # tumor A: 3*4*4 = 48 voxels
    lab[5:7, 16:20, 9:12] = 2  # tumor B: 2*4*3 = 24 voxels, not touching A
    img[lab == 1] = 60
    img[lab == 2] = 20
    return img, lab


def write_itk(
    array: np.ndarray,
    path: Path,
    spacing_zyx: Sequence[float] = (2.5, 0.8, 0.7),
    origin: Sequence[float] = (-10.0, 5.0, 30.0),
) -> Path:
    """Write an array (z, y, x) with SimpleITK (format by suffix)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    img.SetOrigin(tuple(float(o) for o in origin))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def dicom_series_bytes(
    array: np.ndarray,
    *,
    spacing_zyx: Sequence[float] = (1.6, 0.6, 0.6),
    z0: float = 0.0,
    descending: bool = False,
    intercept: float = -1024.0,
    bits: int = 16,
    names: Callable[[int], str] = lambda i: f"image_{i}",
    study_uid: str | None = None,
) -> dict[str, bytes]:
    """A CT series as ``{file name: bytes}``; slice ``k`` of ``array`` is at z0 + k*dz.

    With ``descending`` the file with index 0 holds the *last* (most superior) slice, as CHAOS
    does. Stored value = array - intercept.
    """
    series, study = generate_uid(), study_uid or generate_uid()
    n = array.shape[0]
    out: dict[str, bytes] = {}
    for i in range(n):
        k = n - 1 - i if descending else i
        ds = ct_slice(
            array[k] - intercept,
            position=(-20.0, -30.0, z0 + k * spacing_zyx[0]),
            pixel_spacing=spacing_zyx[1:],
            series_uid=series,
            study_uid=study,
            for_uid=generate_uid(entropy_srcs=[study]),
            instance=i + 1,
            intercept=intercept,
            bits=bits,
            thickness=2.0,
        )
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out[names(i)] = buf.getvalue()
    return out


def write_files(files: dict[str, bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def write_zip(members: dict[str, bytes], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def ircadb_patient(
    folder: Path,
    *,
    masks_as_zip: bool = False,
    ct_as_zip: bool = True,
    extra_masks: dict[str, np.ndarray] | None = None,
    mask_spacing_zyx: Sequence[float] | None = None,
) -> dict[str, np.ndarray]:
    """Write a 3D-IRCADb-like patient folder; returns the structure masks (bool, z, y, x).

    Structures: ``liver`` (tumors included, as in 3D-IRCADb), ``livertumor01`` (tumor A),
    ``liverkyst`` (a cyst inside the liver), ``tumor`` (outside the liver, like patient 7) and
    ``artery``; masks are 0/255 8-bit stacks on the CT grid.
    """
    img, lab = phantom()
    sp = (1.6, 0.6, 0.6)
    masks = {
        "liver": lab > 0,
        "livertumor01": np.zeros(SHAPE, bool),
        "liverkyst": np.zeros(SHAPE, bool),
        "tumor": np.zeros(SHAPE, bool),
        "artery": np.zeros(SHAPE, bool),
    }
    masks["livertumor01"][2:5, 8:12, 4:8] = True
    masks["liverkyst"][3:5, 20:22, 10:12] = True
    masks["tumor"][2:6, 10:16, 20:28] = True  # right of the liver block: outside it
    masks["artery"][:, 14:16, 16:18] = True
    masks.update(extra_masks or {})
    study = generate_uid()
    ct = dicom_series_bytes(img, spacing_zyx=sp, study_uid=study)
    if ct_as_zip:
        write_zip({f"PATIENT_DICOM/{k}": v for k, v in ct.items()}, folder / "PATIENT_DICOM.zip")
    else:
        write_files(ct, folder / "PATIENT_DICOM")
    members: dict[str, bytes] = {}
    for name, m in masks.items():
        files = dicom_series_bytes(
            m.astype(np.int16) * 255,
            spacing_zyx=mask_spacing_zyx or sp,
            intercept=0.0,
            bits=8,
            study_uid=study,
        )
        members.update({f"MASKS_DICOM/{name}/{k}": v for k, v in files.items()})
    if masks_as_zip:
        write_zip(members, folder / "MASKS_DICOM.zip")
    else:
        for k, v in members.items():
            (folder / k).parent.mkdir(parents=True, exist_ok=True)
            (folder / k).write_bytes(v)
    return masks


def write_mrc(array: np.ndarray, path: Path) -> Path:
    import mrcfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(array)
    return path


def data_cli(argv: list[str]) -> int:
    """Run ``liverseg data ...`` through the data command group's own parser (like cli.main)."""
    from liverseg.cli import data

    parser = argparse.ArgumentParser(prog="liverseg")
    data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *argv])
    args.debug, args.quiet = False, True
    return int(args.func(args))


@pytest.fixture
def synth() -> Any:
    """Namespace of the helpers above, for the test modules."""
    return argparse.Namespace(
        phantom=phantom,
        write_itk=write_itk,
        dicom_series_bytes=dicom_series_bytes,
        write_files=write_files,
        write_zip=write_zip,
        ircadb_patient=ircadb_patient,
        write_mrc=write_mrc,
        data_cli=data_cli,
        SHAPE=SHAPE,
    )
