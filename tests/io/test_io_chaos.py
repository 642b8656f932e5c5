"""CHAOS case folders on a synthetic case (pairing by file-name index, placement by position)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from liverseg.errors import InputError
from liverseg.io import read_chaos_case


def test_masks_pair_with_dicom_files_by_name_index(make_series, tmp_path):
    _, hu, names = make_series(
        "case/DICOM_anon", z_positions=[8.0, 0.0, 4.0, 2.0, 6.0], shape=(6, 7), name_fmt="i{:04d},0000b.dcm"
    )
    ground = tmp_path / "case" / "Ground"
    ground.mkdir()
    for k in range(5):  # liver_GT_00k.png belongs to i000k,0000b.dcm; it marks column k
        mask = np.zeros((6, 7), np.uint8)
        mask[1, k] = 255
        Image.fromarray(mask).convert("1").save(ground / f"liver_GT_{k:03d}.png")
    image, label = read_chaos_case(tmp_path / "case")
    np.testing.assert_array_equal(image.array, hu)
    assert image.same_grid(label) and label.array.dtype == np.uint8
    for z, name in enumerate(names):
        k = int(name[1:5])
        expected = np.zeros((6, 7), np.uint8)
        expected[1, k] = 1
        np.testing.assert_array_equal(label.array[z], expected)


def test_missing_ground_and_count_mismatch(make_series, tmp_path):
    make_series("case/DICOM_anon", z_positions=[0.0, 2.0, 4.0], name_fmt="i{:04d},0000b.dcm")
    with pytest.raises(InputError, match="missing Ground/"):
        read_chaos_case(tmp_path / "case")
    ground = tmp_path / "case" / "Ground"
    ground.mkdir()
    for k in range(2):
        Image.fromarray(np.zeros((6, 7), np.uint8)).save(ground / f"liver_GT_{k:03d}.png")
    with pytest.raises(InputError, match=r"one ground-truth PNG per DICOM slice \(3\), got 2"):
        read_chaos_case(tmp_path / "case")
