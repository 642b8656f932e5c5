"""Slice numbers (scanner order, 1-based), table positions and anatomically right location words."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.io import Volume
from liverseg.reporting import canonical_scan, measure_lesions
from liverseg.reporting.position import body_midline_index, describe_location, slice_numbering


def _scan_with_body(body_cols: tuple[int, int], lesion_cols: tuple[int, int]) -> tuple[Volume, Volume]:
    """Air background, a body block over ``body_cols``, a liver over columns 30..70 (the
    patient's right of a body centred at 60), and one lesion over ``lesion_cols``."""
    vol = Volume(np.zeros((20, 80, 120), dtype=np.float32), (2.0, 1.0, 1.0), (0.0, 0.0, -100.0))
    hu = np.full(vol.shape, -1000.0, dtype=np.float32)
    hu[:, 10:70, body_cols[0] : body_cols[1]] = 40.0
    labels = np.zeros(vol.shape, dtype=np.uint8)
    labels[2:18, 20:60, 30:70] = 1
    labels[8:12, 30:40, lesion_cols[0] : lesion_cols[1]] = 2
    return vol.with_array(hu), vol.with_array(labels)


def test_side_is_relative_to_the_body_midline_not_the_liver_centre():
    # lesion centre column 54.5: left of the liver centre (49.5) but right of the midline (59.5)
    image, labels = _scan_with_body((20, 100), (50, 60))
    scan = canonical_scan(image, labels)
    assert body_midline_index(scan) == pytest.approx(59.5)
    (lesion,) = measure_lesions(image, labels)
    assert lesion["location"]["side"] == "right"
    assert lesion["location"]["midline_offset_mm"] == pytest.approx(-5.0)
    assert lesion["location"]["description"] == (
        "near the midline (patient's right, 5 mm), middle third of the liver"
    )
    # the same lesion in a patient lying off-centre (body shifted 30 mm to the scanner's right)
    image, labels = _scan_with_body((0, 60), (50, 60))
    (lesion,) = measure_lesions(image, labels)
    assert lesion["location"]["side"] == "left" and lesion["location"]["midline_offset_mm"] == 25.0
    assert (
        lesion["location"]["description"]
        == "patient's left, 25 mm from the midline, middle third of the liver"
    )
    text = lesion["location"]["description"]
    assert text.count("left") == 1 and "right" not in text  # said once, no duplicated words


def test_location_without_an_image_says_what_it_is_relative_to():
    _, labels = _scan_with_body((20, 100), (50, 60))
    scan = canonical_scan(None, labels)
    loc = describe_location(np.array([10.0, 35.0, 54.5]), scan, body_midline_index(scan))
    assert loc["midline_offset_mm"] is None and "no CT to find the body midline" in loc["description"]


def _numbering(direction: np.ndarray, instance_numbers: list[int] | None):
    vol = Volume(np.zeros((5, 4, 4), dtype=np.float32), (3.0, 1.0, 1.0), (0.0, 0.0, 50.0), direction)
    labels = vol.with_array(np.zeros(vol.shape, np.uint8))
    meta = {"dicom": {"instance_numbers": instance_numbers}} if instance_numbers is not None else {}
    return slice_numbering(canonical_scan(None, labels), meta)


def test_slice_numbers_follow_the_scanner_and_default_to_head_first():
    up = np.eye(3)
    # no DICOM: slice 1 is the most superior (canonical k = 4)
    nifti = _numbering(up, None)
    assert nifti.basis == "superior-to-inferior" and nifti.numbers.tolist() == [5, 4, 3, 2, 1]
    assert nifti.z_mm.tolist() == [50.0, 53.0, 56.0, 59.0, 62.0]
    assert nifti.describe() == {
        "count": 5,
        "basis": "superior-to-inferior",
        "description": "slice 1 is the most superior axial slice, numbers increase towards the feet",
        "slice_1_z_mm": 62.0,
    }
    # DICOM, instance numbers falling along the stored (inferior -> superior) stack: head first
    head_first = _numbering(up, [105, 104, 103, 102, 101])
    assert head_first.basis == "dicom-instance-number" and head_first.numbers.tolist() == [5, 4, 3, 2, 1]
    # DICOM acquired feet first: instance 1 is the most inferior image
    feet_first = _numbering(up, [1, 2, 3, 4, 5])
    assert feet_first.numbers.tolist() == [1, 2, 3, 4, 5] and feet_first.number(0) == 1
    # stored superior -> inferior (z axis flipped) with rising instance numbers: slice 1 on top
    flipped = np.diag([1.0, 1.0, -1.0])
    down = _numbering(flipped, [1, 2, 3, 4, 5])
    assert down.numbers.tolist() == [5, 4, 3, 2, 1] and down.z(4) == 50.0
    # repeated instance numbers are no order: the documented default applies, and says so
    assert _numbering(up, [1, 1, 2, 3, 4]).basis == "superior-to-inferior"
