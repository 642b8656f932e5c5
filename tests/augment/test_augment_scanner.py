"""Scanner, contrast-phase and slice-export variation (liverseg.augment.scanner)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from liverseg.augment.scanner import (
    UNENHANCED_HU,
    jpeg_like,
    jpeg_table,
    sharpen,
    simulate_phase,
    simulate_slice_export,
    simulate_thick_slices,
)


def _picture(seed: int = 0, shape: tuple[int, int] = (64, 70)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(128, 40, shape), 2)
    return np.clip(smooth + rng.normal(0, 8, shape), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("quality", [60, 75, 90, 95])
def test_jpeg_like_matches_libjpeg(quality: int) -> None:
    pic = _picture(quality)
    buf = io.BytesIO()
    Image.fromarray(pic, "L").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    real = np.asarray(Image.open(buf)).astype(np.float32)
    mine = jpeg_like(pic.astype(np.float32), quality)
    assert mine.shape == pic.shape  # 70 is not a multiple of 8: padded, then cut back
    assert np.abs(mine - real).mean() < 0.6  # same quantisation, rounding details aside
    # the error grows as quality falls, like a real JPEG's
    assert np.abs(mine - pic).mean() == pytest.approx(np.abs(real - pic).mean(), rel=0.1)


def test_jpeg_table_follows_libjpeg_scaling() -> None:
    assert jpeg_table(50)[0, 0] == 16 and jpeg_table(100).max() == 1
    assert jpeg_table(90)[0, 0] == 3  # floor((16 * 20 + 50) / 100)
    assert (jpeg_table(10) >= jpeg_table(90)).all()


def test_phase_has_a_fixed_point_and_spares_air_and_bone() -> None:
    slab = np.array([[[-1000.0, UNENHANCED_HU, 100.0, 1000.0]]], np.float32)
    out = simulate_phase(slab, gain=0.5, offset_hu=0.0)
    assert out[0, 0, 0] == -1000.0 and out[0, 0, 3] == 1000.0
    assert out[0, 0, 1] == pytest.approx(UNENHANCED_HU)
    assert out[0, 0, 2] == pytest.approx(UNENHANCED_HU + 0.5 * (100.0 - UNENHANCED_HU))
    shifted = simulate_phase(slab, gain=1.0, offset_hu=20.0)
    assert shifted[0, 0, 2] == pytest.approx(120.0)


def test_thick_slices_average_across_the_slab_only() -> None:
    slab = np.zeros((5, 8, 8), np.float32)
    slab[2] = 100.0
    out = simulate_thick_slices(slab, 1.0)
    assert out[2, 0, 0] < 100.0 and out[1, 0, 0] > 0.0
    assert np.allclose(out.sum(axis=0), 100.0, atol=1.0)  # mass kept (edges replicated)
    assert np.array_equal(simulate_thick_slices(slab, 0.0), slab)
    assert np.allclose(out[:, 0, 0], out[:, 5, 5])  # no in-plane blur


def test_sharpen_keeps_flat_regions_and_steepens_edges() -> None:
    slab = np.zeros((1, 16, 16), np.float32)
    slab[:, :, 8:] = 100.0
    out = sharpen(slab, 1.0)
    assert out[0, 8, 0] == pytest.approx(0.0, abs=1e-3) and out[0, 8, 15] == pytest.approx(100.0, abs=1e-3)
    assert out[0, 8, 8] > 100.0 and out[0, 8, 7] < 0.0  # overshoot on both sides of the edge


def test_slice_export_clips_to_the_window() -> None:
    rng = np.random.default_rng(1)
    slab = rng.normal(60, 80, (3, 32, 32)).astype(np.float32)
    out = simulate_slice_export(slab, (-40.0, 160.0), 90)
    assert out.min() >= -40.0 and out.max() <= 160.0
    inside = (slab > -30) & (slab < 150)
    assert np.abs(out - slab)[inside].mean() < 12.0  # 8-bit + JPEG noise of a noisy field
