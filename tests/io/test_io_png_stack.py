"""PNG slice stacks (the seed format)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liverseg.errors import InputError
from liverseg.io import read_png_stack


def _write_stack(tmp_path: Path, n: int = 12, *, mask_values=(0, 127, 255), rgb_images: bool = False):
    """Slice k of the image has grey value 10 * k; mask k holds a square of mask_values[k % 3]."""
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    for k in range(n):
        img = np.full((9, 11), 10 * k, np.uint8)
        img[0, 0] = 255
        mask = np.zeros((9, 11), np.uint8)
        mask[2:5, 3:7] = mask_values[k % len(mask_values)]
        pil = Image.fromarray(img).convert("RGB") if rgb_images else Image.fromarray(img)
        pil.save(img_dir / f"image_{k}.png")
        Image.fromarray(mask).save(mask_dir / f"image_{k}_mask.png")
    return img_dir, mask_dir


def test_seed_format_pairs_by_natural_sort(tmp_path, caplog):
    img_dir, mask_dir = _write_stack(tmp_path)
    with caplog.at_level(logging.WARNING):
        image, label = read_png_stack(img_dir, mask_dir)
    assert "assuming 1 mm" in caplog.text
    assert image.shape == label.shape == (12, 9, 11)
    # image_2 before image_10: slice k has value 10 * k
    np.testing.assert_array_equal(image.array[:, 5, 5], 10 * np.arange(12))
    assert image.array.dtype == np.float32 and label.array.dtype == np.uint8
    assert image.metadata["intensity"] == "png8"
    assert image.metadata["files"][:3] == ["image_0.png", "image_1.png", "image_2.png"]
    assert image.metadata["spacing_assumed"] is True
    # mask k: 0 -> 0, 127 -> liver (1), 255 -> lesion (2)
    np.testing.assert_array_equal(label.array[:, 3, 4], [0, 1, 2] * 4)
    assert image.same_grid(label)


def test_spacing_parameter_and_rgb_grey_images(tmp_path, caplog):
    img_dir, mask_dir = _write_stack(tmp_path, n=3, rgb_images=True)
    with caplog.at_level(logging.WARNING):
        image, _ = read_png_stack(img_dir, mask_dir, spacing_zyx=(2.5, 0.8, 0.8))
    assert image.spacing == (2.5, 0.8, 0.8)
    assert "assuming" not in caplog.text
    assert image.metadata["spacing_assumed"] is False


@pytest.mark.parametrize(
    ("encoding", "values", "expected"),
    [
        ("labels", (0, 1, 2), [0, 1, 2]),
        ("binary", (0, 255), [0, 1]),
    ],
)
def test_other_mask_encodings(tmp_path, encoding, values, expected):
    img_dir, mask_dir = _write_stack(tmp_path, n=len(values), mask_values=values)
    _, label = read_png_stack(img_dir, mask_dir, mask_encoding=encoding)
    np.testing.assert_array_equal(label.array[:, 3, 4], expected)


def test_bad_masks_and_mismatches_are_errors(tmp_path):
    img_dir, mask_dir = _write_stack(tmp_path, n=4, mask_values=(0, 50))
    with pytest.raises(InputError, match=r"got values \[0, 50\]"):
        read_png_stack(img_dir, mask_dir)
    (mask_dir / "image_3_mask.png").unlink()
    with pytest.raises(InputError, match=r"4 image PNGs .* but 3 mask PNGs"):
        read_png_stack(img_dir, mask_dir)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(mask_dir / "image_3_mask.png")
    with pytest.raises(InputError, match=r"image_3_mask\.png: expected every slice to be 11x9"):
        read_png_stack(img_dir, mask_dir)
    with pytest.raises(InputError, match="does not exist"):
        read_png_stack(tmp_path / "nothing", mask_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="found none"):
        read_png_stack(empty, mask_dir)
