"""Viewer: cache geometry, plane extraction, windowing, overlays and the lesion -> slice mapping."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from svc_fakes import LIVER_HU, fake_labels, make_ct

from liverseg.errors import InputError
from liverseg.io import Volume
from liverseg.service.viewer import plane_slice, render_ct_png, render_overlay_png
from liverseg.service.volumes import build_viewer_cache, to_viewer_index


def _img(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


def test_windowing_maps_hu_to_gray():
    hu = np.array([[-1000.0, -150.0, 50.0, 250.0, 3000.0]], dtype=np.float32)
    gray = _img(render_ct_png(hu, level=50, width=400))
    assert gray.dtype == np.uint8 and gray.shape == (1, 5)
    assert gray.tolist() == [[0, 0, 127, 255, 255]]
    with pytest.raises(InputError, match="width"):
        render_ct_png(hu, 50, 0)


def test_overlay_colours_and_transparency():
    rgba = _img(render_overlay_png(np.array([[0, 1, 2]], np.uint8)))
    assert rgba.shape == (1, 3, 4)
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] == 255 and rgba[0, 2, 3] == 255
    assert rgba[0, 1, 1] > rgba[0, 1, 0] and rgba[0, 2, 0] > rgba[0, 2, 1]  # liver green, tumor red


def test_planes_are_radiological():
    vol = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    assert plane_slice(vol, "axial", 1).tolist() == vol[1].tolist()
    cor = plane_slice(vol, "coronal", 2)
    assert cor.shape == (3, 5) and cor[0].tolist() == vol[2, 2].tolist()  # superior (last z) on top
    sag = plane_slice(vol, "sagittal", 4)
    assert sag.shape == (3, 4) and sag[-1].tolist() == vol[0, :, 4].tolist()
    with pytest.raises(InputError, match=r"0\.\.2"):
        plane_slice(vol, "axial", 3)
    with pytest.raises(InputError, match="plane"):
        plane_slice(vol, "oblique", 0)


def test_viewer_cache_is_canonical_and_maps_indices(tmp_path):
    # an input stored with flipped z and x axes (e.g. a feet-first, mirrored export)
    direction = np.diag([-1.0, 1.0, -1.0])
    image = make_ct(direction=direction)
    labels = image.with_array(fake_labels(image.array))
    meta = build_viewer_cache(image, labels, tmp_path)
    ct = np.load(tmp_path / "ct.npy", mmap_mode="r")
    lab = np.load(tmp_path / "labels.npy", mmap_mode="r")
    assert isinstance(ct, np.memmap) and ct.dtype == np.int16 and lab.dtype == np.uint8
    assert np.array_equal(np.asarray(ct), image.array[::-1, :, ::-1].astype(np.int16))
    assert np.array_equal(np.asarray(lab), labels.array[::-1, :, ::-1])
    # every input voxel maps to the viewer voxel holding the same value
    rng = np.random.default_rng(0)
    for idx in rng.integers(0, [20, 48, 48], size=(20, 3)):
        v = to_viewer_index(meta, idx)
        assert lab[tuple(v)] == labels.array[tuple(idx)]
        assert v == [19 - idx[0], idx[1], 47 - idx[2]]


def test_viewer_api(svc, done_study):
    c = svc.client("alice")
    info = c.get(f"/api/studies/{done_study}/viewer").json()
    assert info["planes"] == {"axial": 20, "coronal": 48, "sagittal": 48}
    assert np.allclose(info["pixel_mm"]["axial"], [0.8, 0.8]) and np.allclose(
        info["pixel_mm"]["coronal"], [2.5, 0.8]
    )
    assert info["windows"]["bone"] == {"level": 400.0, "width": 1800.0}
    assert info["windows"]["liver"] == {"level": 50.0, "width": 400.0}
    assert info["windows"]["abdomen"] == {"level": 40.0, "width": 350.0}
    assert info["lesion_count"] == 2 and info["liver_volume_ml"] > 0
    base = f"/api/studies/{done_study}"
    for lesion in info["lesions"]:
        vi = lesion["viewer_index"]
        over = _img(c.get(f"{base}/overlay", params={"plane": "axial", "index": vi["axial"]}).content)
        assert over.shape == (48, 48, 4)
        # the lesion's largest slice shows tumor (red) pixels
        assert ((over[..., 0] > 200) & (over[..., 3] == 255)).sum() > 0
    for plane, shape in (("axial", (48, 48)), ("coronal", (20, 48)), ("sagittal", (20, 48))):
        r = c.get(f"{base}/slice", params={"plane": plane, "index": 10, "level": 70, "width": 2})
        assert r.headers["content-type"] == "image/png"
        gray = _img(r.content)
        assert gray.shape == shape
        assert set(np.unique(gray)) <= {0, 127, 255}
    axial = _img(
        c.get(f"{base}/slice", params={"plane": "axial", "index": 10, "level": LIVER_HU, "width": 2}).content
    )
    ct = np.load(svc.config.data_dir / "studies" / done_study / "output" / "viewer" / "ct.npy")
    assert np.array_equal(axial == 127, ct[10] == int(LIVER_HU))
    assert c.get(f"{base}/slice", params={"plane": "axial", "index": 20}).status_code == 422
    assert c.get(f"{base}/slice", params={"plane": "nope", "index": 1}).status_code == 422
    assert c.get(f"{base}/slice", params={"plane": "axial", "index": 1, "width": 0}).status_code == 422


def test_study_page_has_the_viewer(svc, done_study):
    html = svc.client("alice").get(f"/studies/{done_study}").text
    for element in (
        "slice-slider",
        "overlay-opacity",
        "lesion-table",
        'data-window="bone"',
        "problem-form",
        "baseline-select",
        "/static/viewer.js",
    ):
        assert element in html


def test_volume_read_keeps_geometry(tmp_path):
    from liverseg.io import write_volume
    from liverseg.service.volumes import read_image_volume

    v = make_ct()
    write_volume(v, tmp_path / "a.nii.gz")
    back = read_image_volume(tmp_path / "a.nii.gz")
    assert isinstance(back, Volume) and back.same_grid(v)
