"""Prepare the real shared data (3D-IRCADb patients 1, 7, 17 and CHAOS CT case 3) and check known facts.

Skipped when ../shared/data is absent. The data is prepared once per module (~25 s on 2 cores).
The LiTS-117 MRC check runs when the unzipped liver-ct-segmentation-package wheel is in
/work/extra/lits117pkg (see docs: it is not part of the repository).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import shared_path

from liverseg.data import PreparedDataset, load_dataset, make_splits, prepare_dataset
from liverseg.utils import set_progress_enabled

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

LITS117 = Path("/work/extra/lits117pkg")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    ircadb = shared_path("ircadb")
    chaos = shared_path("chaos-ct-3")
    out = tmp_path_factory.mktemp("prepared")
    set_progress_enabled(False)
    prepare_dataset(ircadb, out, "ircadb")
    return prepare_dataset(chaos, out, "chaos")


def test_ids_and_manifest(prepared: PreparedDataset) -> None:
    assert prepared.case_ids == ["chaos_03", "ircadb_01", "ircadb_07", "ircadb_17"]
    assert prepared.source_format == "mixed"
    prepared.verify()


def test_ircadb_patient_1(prepared: PreparedDataset) -> None:
    c = prepared.case("ircadb_01")
    assert c.shape_zyx == (129, 512, 512)
    np.testing.assert_allclose(c.spacing_zyx_mm, (1.6, 0.57, 0.57), atol=1e-3)
    assert c.tumor_volume_ml > 0 and c.tumor_components >= 1
    assert c.mapping["structures"]["liverkyst"].startswith("liver (1)")
    assert all(f > 0.99 for f in c.mapping["fraction_inside_liver"].values())
    _, label = prepared.load_case("ircadb_01")
    assert label.array.max() == 2 and label.shape == c.shape_zyx


def test_ircadb_patient_7_has_liver_and_no_tumor(prepared: PreparedDataset) -> None:
    c = prepared.case("ircadb_07")
    assert c.liver_volume_ml > 500 and c.tumor_volume_ml == 0 and c.tumor_components == 0
    assert c.mapping["structures"]["tumor"].startswith("ignored: tumor outside the liver")
    assert c.mapping["fraction_inside_liver"]["tumor"] < 0.05


def test_ircadb_patient_17_has_two_tumors(prepared: PreparedDataset) -> None:
    c = prepared.case("ircadb_17")
    assert c.shape_zyx[0] == 119
    np.testing.assert_allclose(c.spacing_zyx_mm, (1.6, 0.74, 0.74), atol=0.005)
    assert c.tumor_components == 2
    assert {k for k, v in c.mapping["structures"].items() if v == "tumor (2)"} == {
        "livertumor1",
        "livertumor2",
    }


def test_chaos_case_3(prepared: PreparedDataset) -> None:
    c = prepared.case("chaos_03")
    assert c.shape_zyx[0] == 78
    assert c.tumor_volume_ml == 0
    _, label = prepared.load_case("chaos_03")
    assert int((label.array == 1).any(axis=(1, 2)).sum()) == 71


def test_real_splits_keep_patients_apart(prepared: PreparedDataset) -> None:
    s = make_splits(prepared.cases, folds=2, seed=0)
    for train, val in s.folds:
        assert not set(train) & set(val)
    tumor_cases = {"ircadb_01", "ircadb_17"}
    assert all(len(tumor_cases & set(val)) == 1 for _, val in s.folds)


def test_lits117_mrc_orientation(tmp_path: Path) -> None:
    if not (LITS117 / "liver_ct_segmentation_package" / "data" / "img_117.mrc").is_file():
        pytest.skip(f"LiTS-117 package not unpacked in {LITS117}")
    set_progress_enabled(False)
    ds = prepare_dataset(LITS117, tmp_path / "out", "mrc")
    image, label = load_dataset(tmp_path / "out").load_case("lits_117")
    c = ds.case("lits_117")
    assert c.shape_zyx == (128, 128, 128) and c.tumor_components > 0
    assert np.unique(label.array).tolist() == [0, 1, 2]
    a = image.array
    # superior (high z in LPS) slices reach the lung bases (-950..-500 HU); inferior ones do not
    lung = ((a > -950) & (a < -500)).mean(axis=(1, 2))
    assert lung[-16:].mean() > 5 * lung[:16].mean()
    # the spine is posterior (high y in LPS)
    bone = (a > 250).mean(axis=(0, 2))
    assert bone[-32:].mean() > 5 * bone[:32].mean()
    # the liver is on the patient's right = low x in LPS: the liver-free side of the crop is at high x
    liver_x = (label.array > 0).mean(axis=(0, 1))
    assert liver_x[:32].mean() > liver_x[-32:].mean()
