"""Compressed transfer syntaxes and enhanced multi-frame CT, on files the tests encode themselves.

Encoders: GDCM (``gdcm.ImageChangeTransferSyntax``: JPEG lossless processes 14 and 14 SV1,
JPEG-LS, JPEG 2000), pydicom's native RLE and deflate, highdicom for multi-frame objects. The
reader decodes through pydicom's plugins (GDCM, pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls).
Stored values are signed 16-bit with negative numbers, as many scanners write them.
"""

from __future__ import annotations

from pathlib import Path

import gdcm
import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.uid import generate_uid

from _helpers_dicom import ct_slice
from liverseg.io import read_dicom_series, read_volume

Z = [0.0, 2.0, 4.0, 6.0]
SHAPE = (40, 36)

GDCM_SYNTAXES = {
    uid.JPEGLosslessSV1: gdcm.TransferSyntax.JPEGLosslessProcess14_1,
    uid.JPEGLossless: gdcm.TransferSyntax.JPEGLosslessProcess14,
    uid.JPEGLSLossless: gdcm.TransferSyntax.JPEGLSLossless,
    uid.JPEG2000Lossless: gdcm.TransferSyntax.JPEG2000Lossless,
}


def _signed_series(folder: Path) -> tuple[np.ndarray, list[Path]]:
    """An uncompressed series with signed stored values (HU = stored, intercept 0)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    hu = rng.integers(-1024, 1500, size=(len(Z), *SHAPE)).astype(np.int16)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    files = []
    for k, z in enumerate(Z):
        ds = ct_slice(
            np.zeros(SHAPE, np.uint16),
            position=(0.0, 0.0, z),
            series_uid=series,
            study_uid=study,
            for_uid=frame,
            instance=k + 1,
            intercept=0.0,
        )
        ds.PixelRepresentation = 1
        ds.PixelData = hu[k].tobytes()
        files.append(folder / f"IM{k}")
        ds.save_as(files[-1], enforce_file_format=True)
    return hu.astype(np.float32), files


def _gdcm_encode(path: Path, syntax: int) -> None:
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()


@pytest.mark.parametrize("syntax", [*GDCM_SYNTAXES, uid.RLELossless, uid.DeflatedExplicitVRLittleEndian])
def test_compressed_series_decode_to_the_same_hu(tmp_path, syntax):
    hu, files = _signed_series(tmp_path / "s")
    for f in files:
        if syntax in GDCM_SYNTAXES:
            _gdcm_encode(f, GDCM_SYNTAXES[syntax])
        elif syntax == uid.RLELossless:
            ds = pydicom.dcmread(f)
            ds.compress(uid.RLELossless)
            ds.save_as(f)
        else:  # deflate compresses the whole dataset, not the pixels
            ds = pydicom.dcmread(f)
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(f, enforce_file_format=True)
        assert pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    vol = read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(vol.array, hu)
    assert vol.metadata["dicom"]["transfer_syntax_uid"] == syntax
    assert vol.metadata["dicom"]["selection"]["chosen"]["transfer_syntax"] == syntax


@pytest.mark.parametrize(
    "syntax", [uid.ExplicitVRLittleEndian, uid.RLELossless, uid.JPEG2000Lossless, uid.JPEGLSLossless]
)
def test_enhanced_multiframe_ct_compressed_or_not(tmp_path, syntax):
    hu, files = _signed_series(tmp_path / "s")
    single = read_dicom_series(tmp_path / "s")
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        [pydicom.dcmread(f) for f in files],
        series_instance_uid=generate_uid(),
        series_number=7,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        transfer_syntax_uid=uid.RLELossless if syntax == uid.RLELossless else uid.ExplicitVRLittleEndian,
    )
    out = tmp_path / "mf"
    out.mkdir()
    enhanced.save_as(out / "enhanced.dcm")
    if syntax in GDCM_SYNTAXES:  # highdicom encodes JPEG-family frames of unsigned data only
        _gdcm_encode(out / "enhanced.dcm", GDCM_SYNTAXES[syntax])
    assert (
        pydicom.dcmread(out / "enhanced.dcm", stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    )
    for vol in (read_volume(out / "enhanced.dcm"), read_dicom_series(out)):
        np.testing.assert_array_equal(vol.array, hu)
        assert vol.same_grid(single)
        chosen = vol.metadata["dicom"]["selection"]["chosen"]
        assert chosen["multiframe"] and chosen["n_slices"] == len(Z) and chosen["orientation"] == "axial"
