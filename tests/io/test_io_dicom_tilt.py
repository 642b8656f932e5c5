"""Gantry-tilted series: read onto their true geometry, SEG frames back on the tilted slices."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom.uid import generate_uid

from _helpers_dicom import ct_slice
from liverseg.io import read_dicom_seg, read_dicom_series, write_dicom_seg

TILT_DEG = 15.0
DZ = 2.5  # table step between slices, mm
PS = (1.0, 0.8)  # PixelSpacing: row spacing (along the column direction), column spacing
ROWS, COLS, N = 20, 16, 10
P0 = np.array([-6.0, -8.0, 10.0])


def hu_at(p: np.ndarray) -> np.ndarray:
    """A linear HU field of the patient position (exact under linear interpolation)."""
    return 0.5 * p[..., 0] + 3.0 * p[..., 1] + 2.0 * p[..., 2]


def _frame() -> tuple[np.ndarray, np.ndarray]:
    t = np.radians(TILT_DEG)
    return np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])


def source_positions(k: int) -> np.ndarray:
    """LPS position of every pixel of source slice ``k``: ``(ROWS, COLS, 3)``."""
    row, col = _frame()
    i, j = np.mgrid[0:ROWS, 0:COLS]
    origin = P0 + np.array([0.0, 0.0, DZ * k])  # the table moves along z; the image plane is tilted
    return origin + j[..., None] * PS[1] * row + i[..., None] * PS[0] * col


@pytest.fixture
def tilted(tmp_path: Path) -> Path:
    row, col = _frame()
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    out = tmp_path / "tilted"
    out.mkdir()
    for k in range(N):
        stored = np.rint(hu_at(source_positions(k)) + 1024.0)
        ds = ct_slice(
            stored,
            position=P0 + np.array([0.0, 0.0, DZ * k]),
            orientation=(*row, *col),
            pixel_spacing=PS,
            series_uid=series,
            study_uid=study,
            for_uid=frame,
            instance=k + 1,
            thickness=DZ,
        )
        ds.GantryDetectorTilt = TILT_DEG
        ds.save_as(out / f"IM{N - k:03d}", enforce_file_format=True)
    return out


def test_tilted_series_is_resampled_onto_a_regular_grid_at_true_positions(tilted):
    vol = read_dicom_series(tilted)
    row, col = _frame()
    normal = np.cross(row, col)
    np.testing.assert_allclose(vol.direction, np.stack([row, col, normal], axis=1), atol=1e-6)
    assert vol.spacing == pytest.approx((DZ * np.cos(np.radians(TILT_DEG)), *PS))
    tilt = vol.metadata["dicom"]["tilt"]
    assert tilt["tilt_deg"] == pytest.approx(TILT_DEG, abs=1e-3)
    drift_rows = (N - 1) * DZ * np.sin(np.radians(TILT_DEG)) / PS[0]  # 5.8 rows over the stack
    assert vol.shape == (N, ROWS + int(np.ceil(drift_rows)), COLS)  # widened: no source pixel is lost
    assert any("gantry tilt of 15.0 degrees" in w for w in vol.metadata["dicom"]["warnings"])
    # every voxel that lies inside a source slice holds the HU of its true position
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in vol.shape], indexing="ij"), axis=-1)
    expected = hu_at(vol.index_to_physical(idx))
    offsets = np.asarray(tilt["offsets_px"])
    inside = np.zeros(vol.shape, bool)
    for k in range(N):
        r0 = int(np.ceil(offsets[k, 0]))
        inside[k, r0 : r0 + ROWS - 1, :] = True
    assert inside.sum() > 0.8 * N * ROWS * COLS
    np.testing.assert_allclose(vol.array[inside], expected[inside], atol=0.51)  # stored values are rounded
    # voxels no slice covers hold the lowest value of the series
    assert np.all(vol.array[~inside] >= vol.array.min())


def test_seg_of_a_tilted_series_lies_on_the_original_slices(tilted, tmp_path):
    vol = read_dicom_series(tilted)
    centre, radius = np.array([0.0, 0.0, 22.0]), 6.0
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in vol.shape], indexing="ij"), axis=-1)
    ball = np.linalg.norm(vol.index_to_physical(idx) - centre, axis=-1) < radius
    labels = np.where(ball, 1, 0).astype(np.uint8)
    labels[np.linalg.norm(vol.index_to_physical(idx) - centre, axis=-1) < 2.5] = 2
    out = write_dicom_seg(vol.with_array(labels), vol, tmp_path / "seg.dcm")
    seg = hd.seg.segread(out)
    uids = vol.metadata["dicom"]["sop_instance_uids"]
    frames = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], combine_segments=True)
    assert frames.shape == (N, ROWS, COLS)
    # each SEG pixel is labelled as the ball is at that source pixel's own position (to a pixel)
    dist = np.stack([np.linalg.norm(source_positions(k) - centre, axis=-1) for k in range(N)])
    wrong = (frames >= 1) != (dist < radius)
    assert wrong.sum() < 0.1 * (dist < radius).sum()
    assert np.all(np.abs(dist[wrong] - radius) < 1.5)  # only at the surface, within a pixel
    # read back onto the regular grid: the same labels but for the rounding at the surface
    back = read_dicom_seg(out, reference=vol)
    assert back.same_grid(vol)
    assert np.mean(back.array != labels) < 0.02
