"""``liverseg synth-lesions`` and ``liverseg lesion-realism`` end to end on small volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liverseg.cli.main import main
from liverseg.io import Volume, read_volume, write_volume

SPACING = (2.5, 0.8, 0.8)
# an oblique-free but flipped/permuted direction and an arbitrary origin: outputs must keep them
DIRECTION = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
ORIGIN = (120.5, -33.0, 512.25)


@pytest.fixture
def ct_files(tmp_path, case_factory):
    image, label = case_factory()
    ct = write_volume(
        Volume(np.rint(image).astype(np.int16), SPACING, ORIGIN, DIRECTION), tmp_path / "case7.nii.gz"
    )
    lab = write_volume(Volume(label, SPACING, ORIGIN, DIRECTION), tmp_path / "case7_label.nii.gz")
    return ct, lab


def test_synth_lesions_writes_outputs_on_the_input_grid(ct_files, tmp_path, capsys):
    ct, lab = ct_files
    out = tmp_path / "out"
    assert main(["-q", "synth-lesions", str(ct), str(lab), str(out), "--n", "3", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    image_in, label_in = read_volume(ct), read_volume(lab, kind="label")
    image_out = read_volume(out / "case7_synth.nii.gz")
    label_out = read_volume(out / "case7_synth_label.nii.gz", kind="label")
    assert image_out.same_grid(image_in) and label_out.same_grid(image_in)
    assert np.allclose(image_out.direction, DIRECTION) and np.allclose(image_out.origin, ORIGIN)
    new = (label_out.array == 2) & (label_in.array != 2)
    assert new.any() and not (new & (label_in.array == 0)).any()
    assert not ((image_out.array != image_in.array) & (label_in.array == 0)).any()
    record = json.loads((out / "case7_lesions.json").read_text())
    assert len(record["lesions"]) + len(record["skipped"]) == 3
    assert record["seed"] == 5 and record["params"]["diameter_mm"] == [3.0, 60.0]
    for lesion in record["lesions"]:
        assert label_out.array[tuple(lesion["center_voxel"])] == 2
    assert len(printed.strip().splitlines()) == 1 + len(record["lesions"]) + len(record["skipped"])
    png = (out / "case7_gallery.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    # same seed, same files
    again = tmp_path / "again"
    assert main(["-q", "synth-lesions", str(ct), str(lab), str(again), "--n", "3", "--seed", "5"]) == 0
    assert np.array_equal(read_volume(again / "case7_synth.nii.gz").array, image_out.array)


def test_synth_lesions_params_file_and_errors(ct_files, tmp_path, capsys):
    ct, lab = ct_files
    params = tmp_path / "p.yaml"
    params.write_text("count: [1, 1]\ndiameter_mm: [10, 10]\nhyperdense_probability: 1.0\n")
    assert main(["-q", "synth-lesions", str(ct), str(lab), str(tmp_path / "o"), "--params", str(params)]) == 0
    record = json.loads((tmp_path / "o" / "case7_lesions.json").read_text())
    assert [x["kind"] for x in record["lesions"]] == ["hyperdense"]
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    bad.write_text('{"size": [1, 2]}')
    assert main(["synth-lesions", str(ct), str(lab), str(tmp_path / "o2"), "--params", str(bad)]) == 1
    assert "unknown synthetic-lesion parameter(s) ['size']" in capsys.readouterr().err
    other = write_volume(Volume(np.zeros((5, 6, 7), np.uint8), SPACING), tmp_path / "other.nii.gz")
    assert main(["synth-lesions", str(ct), str(other), str(tmp_path / "o3")]) == 1
    assert "grid" in capsys.readouterr().err
    empty = write_volume(
        Volume(np.zeros((24, 96, 96), np.uint8), SPACING, ORIGIN, DIRECTION), tmp_path / "e.nii.gz"
    )
    assert main(["synth-lesions", str(ct), str(empty), str(tmp_path / "o4")]) == 1
    assert "no liver voxels" in capsys.readouterr().err
    assert not (tmp_path / "o4").exists() or not any((tmp_path / "o4").iterdir())


def test_lesion_realism_on_a_phantom_dataset(tmp_path, capsys):
    from liverseg.synth import dataset

    prepared = tmp_path / "prepared"
    dataset.write_phantom_dataset(
        prepared, cases=2, seed=1, shape=(32, 96, 96), spacing=(4.0, 2.5, 2.5), tumor_free_every=0
    )
    md, js, png = tmp_path / "r.md", tmp_path / "r.json", tmp_path / "r.png"
    code = main(
        [
            "-q",
            "lesion-realism",
            str(prepared),
            "--seeds",
            "1",
            "--n",
            "3",
            "--markdown",
            str(md),
            "--json",
            str(js),
            "--gallery",
            str(png),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "| contrast to liver (HU) |" in table and "synthetic (n=" in table
    summary = json.loads(js.read_text())
    sources = {x["source"] for x in summary["lesions"]}
    assert sources == {"real", "synthetic"}
    assert summary["statistics"]["contrast_hu"]["synthetic"]["n"] >= 2
    assert summary["inserted"] == sum(1 for x in summary["lesions"] if x["source"] == "synthetic")
    assert md.read_text().count("|") > 20 and png.read_bytes().startswith(b"\x89PNG")
    assert main(["lesion-realism", str(prepared), "--case", "nope"]) == 1
    assert "unknown case id" in capsys.readouterr().err
