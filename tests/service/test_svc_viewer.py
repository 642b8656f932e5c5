"""Viewer: the RAS NIfTI viewer cache, exact index mappings both ways, lesion borders, the viewer
API (volumes, lesions with viewer coordinates, slice numbers) and the vendored NiiVue build."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from svc_fakes import dicom_zip_bytes, fake_labels, make_ct

from liverseg.errors import InputError
from liverseg.io import LabelMap, Volume
from liverseg.reporting import build_report
from liverseg.service.viewer import viewer_lesions
from liverseg.service.volumes import (
    build_viewer_cache,
    input_to_ras_mm,
    input_to_viewer_index,
    ras_to_input_labels,
)

VENDOR = Path(__file__).resolve().parents[2] / "src" / "liverseg" / "service" / "static" / "vendor"
RAW = {"Content-Type": "application/octet-stream"}


def _rot(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


DIRECTIONS = {
    "flipped": np.diag([-1.0, 1.0, -1.0]),  # e.g. a feet-first, mirrored export
    "permuted-oblique": _rot(8.0) @ np.array([[0.0, 0, 1], [1, 0, 0], [0, -1, 0]]),  # coronal stack, tilted
}


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_viewer_cache_is_ras_and_maps_both_ways_exactly(tmp_path, name):
    image = make_ct(direction=DIRECTIONS[name])
    labels = image.with_array(fake_labels(image.array))
    meta = build_viewer_cache(image, labels, tmp_path)
    ct_img, lab_img = nib.load(tmp_path / "ct.nii.gz"), nib.load(tmp_path / "labels.nii.gz")
    assert ct_img.get_data_dtype() == np.int16 and lab_img.get_data_dtype() == np.uint8
    assert int(lab_img.header["intent_code"]) == 1002 and np.allclose(ct_img.affine, meta["ras_affine"])
    ct = np.asarray(ct_img.dataobj)  # (i, j, k)
    lab = np.asarray(lab_img.dataobj)
    # RAS voxel order: the affine is near-diagonal and positive (i right, j anterior, k superior)
    axes = np.abs(ct_img.affine[:3, :3]).argmax(axis=0)
    assert axes.tolist() == [0, 1, 2] and np.all(np.diag(ct_img.affine[:3, :3]) > 0)
    # every input voxel maps to the viewer voxel holding the same values, at the same position
    rng = np.random.default_rng(0)
    for idx in rng.integers(0, image.shape, size=(40, 3)):
        ijk = input_to_viewer_index(meta, idx)
        assert np.allclose(ijk, np.rint(ijk), atol=1e-6)
        i, j, k = np.rint(ijk).astype(int)
        assert (
            ct[i, j, k] == round(float(image.array[tuple(idx)])) and lab[i, j, k] == labels.array[tuple(idx)]
        )
        ras = ct_img.affine @ np.array([i, j, k, 1.0])
        lps = image.index_to_physical(idx)
        assert np.allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
        assert np.allclose(input_to_ras_mm(meta, idx), ras[:3], atol=1e-4)
    # a painted label map (the viewer's drawing: the label file's bytes) maps back exactly
    painted = lab.transpose(2, 1, 0).copy()  # C order (k, j, i) = the file's byte order
    painted[painted == 2] = 1
    back = ras_to_input_labels(meta, painted.tobytes())
    assert back.same_grid(image)
    expected = labels.array.copy()
    expected[expected == 2] = 1
    assert np.array_equal(back.array, expected)
    assert isinstance(back, LabelMap)
    painted.reshape(-1)[0] = 7  # a value the viewer cannot paint: refused by the LabelMap type
    with pytest.raises(
        InputError,
        match=r"painted labels: expected a label map with values in \{0 \(background\).*got values \{.*7\}",
    ):
        ras_to_input_labels(meta, painted.tobytes())


def test_lesion_borders_outline_the_report_lesions(tmp_path):
    image = make_ct()
    labels = image.with_array(fake_labels(image.array))
    meta = build_viewer_cache(image, labels, tmp_path)
    report = build_report(
        image, labels, model={"name": "t", "version": "0"}, timings_s={}, input_info={}, warnings=[]
    )
    borders = np.load(tmp_path / "lesions.npz")
    lab = np.asarray(nib.load(tmp_path / "labels.nii.gz").dataobj).transpose(2, 1, 0).reshape(-1)  # flat RAS
    nz, ny, nx = meta["shape_zyx"]
    for lesion in report["lesions"]:
        idx = borders[str(lesion["id"])]
        assert idx.dtype == np.uint32 and len(idx) > 0 and np.all(lab[idx] == 2)
        k, rem = np.divmod(idx.astype(np.int64), ny * nx)
        j, i = np.divmod(rem, nx)
        inside = np.zeros((nz, ny, nx), bool)
        inside.reshape(-1)[idx] = True
        # a border voxel has a 6-neighbour outside the lesion (or lies on the array's edge)
        vol = lab.reshape(nz, ny, nx) == 2
        padded = np.pad(vol, 1)
        neighbours_in = sum(
            padded[k + 1 + dk, j + 1 + dj, i + 1 + di]
            for dk, dj, di in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
        )
        assert np.all(neighbours_in < 6)
        assert meta["lesion_voxels"][str(lesion["id"])] * meta["voxel_ml"] == pytest.approx(
            lesion["volume_ml"], abs=1e-4
        )
    views = viewer_lesions(report, meta)
    assert [v["outline"] for v in views] == [True, True]
    lab3 = lab.reshape(nz, ny, nx)
    for v in views:
        i, j, k = v["centre_vox"]
        assert lab3[k, j, i] == 2  # centred on the lesion
        assert v["axes_mm"]["long"] is not None and v["fov_mm"] >= 80.0
        # both axes lie on the lesion's largest axial slice, the slice the viewer centres on
        z_slice = (np.asarray(meta["ras_affine"]) @ [i, j, k, 1.0])[2]
        assert np.allclose(np.asarray(v["axes_mm"]["long"])[:, 2], z_slice, atol=1e-3)
    # possible lesions (not in the label map) come last, with no outline; missing keys: confirmed, n/a
    extra = {**report["lesions"][1], "id": 3, "possible": True, "confidence": 0.4}
    views = viewer_lesions({**report, "lesions": [*report["lesions"], extra]}, meta)
    assert [(v["id"], v["possible"], v["outline"]) for v in views] == [
        (1, False, True),
        (2, False, True),
        (3, True, False),
    ]
    assert views[0]["confidence"] is None


def _upload_zip(client, data: bytes, **headers: str):
    return client.post("/api/studies", content=data, headers={**RAW, **headers})


def test_viewer_api_volumes_and_slice_numbers(svc):
    alice, bob = svc.client("alice"), svc.client("bob")
    data = dicom_zip_bytes(volume=make_ct(), patient_id="P7", study_date="20240301")
    sid = _upload_zip(alice, data).json()["id"]
    svc.run_jobs()
    info = alice.get(f"/api/studies/{sid}/viewer").json()
    assert info["shape_ijk"] == [48, 48, 20] and info["identity"]["patient_id"] == "P7"
    assert info["windows"]["liver"] == {"level": 50.0, "width": 400.0} and "lung" in info["windows"]
    # DICOM written head first: image 1 is the most superior slice (highest k)
    assert info["numbering"]["basis"] == "dicom-instance-number"
    assert info["axial_numbers"][-1] == 1 and info["axial_numbers"][0] == 20
    assert info["axial_z_mm"][-1] > info["axial_z_mm"][0]
    report = alice.get(f"/api/studies/{sid}/report").json()
    for lesion, view in zip(report["lesions"], info["lesions"], strict=True):
        assert view["largest_slice_number"] == lesion["largest_slice_number"]
        assert info["axial_numbers"][view["centre_vox"][2]] == lesion["largest_slice_number"]
        assert info["axial_z_mm"][view["centre_vox"][2]] == pytest.approx(
            lesion["largest_slice_z_mm"], abs=0.06
        )
    # the volumes are the viewer cache's NIfTI files, for the owner only
    ct = alice.get(info["volumes"]["ct"])
    assert ct.status_code == 200 and ct.headers["content-type"] == "application/octet-stream"
    assert ct.headers["content-encoding"] == "gzip"  # sent compressed; the client inflates it
    img = nib.Nifti1Image.from_bytes(ct.content)
    assert img.shape == (48, 48, 20) and img.get_data_dtype() == np.int16
    plain = alice.get(info["volumes"]["labels"], headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert nib.Nifti1Image.from_bytes(plain.content).shape == (48, 48, 20)
    assert bob.get(info["volumes"]["ct"]).status_code == 404
    assert bob.get(f"/api/studies/{sid}/lesions/1/border").status_code == 404
    assert alice.get(f"/api/studies/{sid}/volumes/ct.npy").status_code == 404
    border = alice.get(f"/api/studies/{sid}/lesions/1/border")
    assert border.status_code == 200 and len(border.content) % 4 == 0 and len(border.content) > 0
    assert alice.get(f"/api/studies/{sid}/lesions/99/border").status_code == 422


def test_an_outdated_viewer_cache_is_rebuilt(svc, done_study):
    alice = svc.client("alice")
    folder = svc.config.data_dir / "studies" / done_study / "output" / "viewer"
    meta = json.loads((folder / "viewer.json").read_text())
    (folder / "ct.nii.gz").unlink()
    (folder / "viewer.json").write_text(json.dumps({**meta, "version": 1}))
    info = alice.get(f"/api/studies/{done_study}/viewer")
    assert info.status_code == 200 and (folder / "ct.nii.gz").exists()
    assert json.loads((folder / "viewer.json").read_text())["version"] == 3


def test_study_page_has_the_viewer(svc, done_study):
    html = svc.client("alice").get(f"/studies/{done_study}").text
    for element in ('id="gl"', "lesion-table", "overlay-style", "show-tumor", "correct-start",
                    "baseline-select", "shortcuts", "/static/study.js", 'type="module"', "delete-button"):  # fmt: skip
        assert element in html


def test_vendored_viewer_is_pinned_licensed_and_modest():
    info = json.loads((VENDOR / "vendor.json").read_text())
    bundle = (VENDOR / info["file"]).read_bytes()
    assert info["package"] == "@niivue/niivue" and info["license"] == "BSD-2-Clause"
    assert hashlib.sha256(bundle).hexdigest() == info["sha256"] and len(bundle) == info["bytes"]
    assert len(bundle) < 1_200_000  # one minified ES module (the zarr codecs are left out)
    assert b"export{" in bundle[-400:] and b"Niivue" in bundle[-400:]
    licenses = (VENDOR / "niivue.LICENSES.txt").read_text()
    for name, pkg in info["bundled_packages"].items():
        assert f"==== {name} {pkg['version']}" in licenses
    assert "Copyright (c) 2021, Niivue" in licenses
    pins = json.loads(
        (Path(__file__).resolve().parents[2] / "scripts" / "viewer_vendor" / "package.json").read_text()
    )
    assert pins["dependencies"]["@niivue/niivue"] == info["version"]


def test_volume_read_keeps_geometry(tmp_path):
    from liverseg.io import write_volume
    from liverseg.service.volumes import read_image_volume

    v = make_ct()
    write_volume(v, tmp_path / "a.nii.gz")
    back = read_image_volume(tmp_path / "a.nii.gz")
    assert isinstance(back, Volume) and back.same_grid(v)
