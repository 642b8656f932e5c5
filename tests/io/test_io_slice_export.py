"""Reading windowed 8-bit slice exports (liverseg.io.slice_export)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _helpers_slice_export import WINDOW, synthetic_volume, write_export
from liverseg.errors import ConfigError, InputError
from liverseg.io.slice_export import SliceExportSpec, decode_label_values, read_slice_export, regular_step


def _files(root: Path, volume: str, ks: list[int]) -> tuple[list[Path], list[Path]]:
    return (
        [root / "train_images" / f"{volume}_slice_{k}.jpg" for k in ks],
        [root / "train_masks" / f"{volume}_slice_{k}_mask.png" for k in ks],
    )


def test_hu_window_round_trip_within_jpeg_error(tmp_path: Path) -> None:
    hu, lab = synthetic_volume(8, 64)
    ks = write_export(tmp_path, "volume-3", hu, lab, step=2, first=4)
    imgs, labs = _files(tmp_path, "volume-3", ks)
    image, label = read_slice_export(
        imgs[::-1], labs[::-1], ks[::-1], SliceExportSpec(WINDOW, "G"), spacing_zyx=(3.0, 0.8, 0.8)
    )
    assert image.shape == hu.shape and label.shape == hu.shape
    assert np.array_equal(label.array, lab)  # sorted by slice index whatever the file order
    inside = (hu > -30) & (hu < 150)
    err = np.abs(image.array - np.clip(hu, *WINDOW))[inside]
    assert err.mean() < 4.0  # JPEG q90 on a 200 HU window: a few HU
    assert image.array.min() >= WINDOW[0] and image.array.max() <= WINDOW[1]  # clipped, never beyond
    assert image.spacing == (3.0, 0.8, 0.8)
    assert image.origin == pytest.approx((0.0, 0.0, 4 * 3.0 / 2))  # k0 x original spacing
    assert image.metadata["intensity"] == "clipped-8bit" and image.metadata["lossy"] is True
    assert image.metadata["slice_step"] == 2 and image.metadata["window_hu"] == list(WINDOW)


def test_seed_label_encoding_is_recognised() -> None:
    arr = np.array([[[0, 127, 255]]], np.uint8)
    out, enc = decode_label_values(arr, where="x")
    assert enc == "0/127/255" and out.tolist() == [[[0, 1, 2]]]
    with pytest.raises(InputError, match="0/1/2 or 0/127/255"):
        decode_label_values(np.array([[[0, 3]]], np.uint8), where="x")


def test_gaps_and_duplicates_are_refused() -> None:
    assert regular_step([0, 2, 4, 6], where="x") == 2
    with pytest.raises(InputError, match="missing"):
        regular_step([0, 2, 6, 8], where="x")
    with pytest.raises(InputError, match="twice"):
        regular_step([0, 2, 2, 4], where="x")
    with pytest.raises(InputError, match="at least 2"):
        regular_step([4], where="x")


def test_colour_pictures_need_a_channel(tmp_path: Path) -> None:
    hu, lab = synthetic_volume(4, 32)
    ks = write_export(tmp_path, "v-1", hu, lab)
    imgs, labs = _files(tmp_path, "v-1", ks)
    with pytest.raises(InputError, match="--channel"):
        read_slice_export(imgs, labs, ks, SliceExportSpec(WINDOW, "gray"), spacing_zyx=(2, 1, 1))
    with pytest.raises(ConfigError, match="LOW < HIGH"):
        SliceExportSpec((160, -40))


def test_grey_pictures_and_wrong_channel(tmp_path: Path) -> None:
    hu, lab = synthetic_volume(4, 32)
    ks = write_export(tmp_path, "v-2", hu, lab, rgb=False)
    imgs, labs = _files(tmp_path, "v-2", ks)
    image, _ = read_slice_export(imgs, labs, ks, SliceExportSpec(WINDOW), spacing_zyx=(2, 1, 1))
    assert image.shape == (4, 32, 32)
    with pytest.raises(InputError, match="grey one"):
        read_slice_export(imgs, labs, ks, SliceExportSpec(WINDOW, "R"), spacing_zyx=(2, 1, 1))


def test_corrupt_picture_names_the_file(tmp_path: Path) -> None:
    hu, lab = synthetic_volume(3, 32)
    ks = write_export(tmp_path, "v-4", hu, lab)
    imgs, labs = _files(tmp_path, "v-4", ks)
    imgs[1].write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=imgs[1].name):
        read_slice_export(imgs, labs, ks, SliceExportSpec(WINDOW, "G"), spacing_zyx=(2, 1, 1))
