"""Synthetic lesion phenotypes: cysts (labelled liver), lipiodol, calcifications."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.augment.lesions import insert_lesions
from liverseg.augment.params import LesionParams
from liverseg.errors import ConfigError


def _params(**kw) -> LesionParams:
    return LesionParams(count=(1, 1), diameter_mm=(14.0, 16.0), avoid_vessels=False, **kw)


def test_a_cyst_is_water_and_stays_liver(case_factory) -> None:
    image, label = case_factory()
    res = insert_lesions(image, label, (2.5, 0.8, 0.8), _params(cyst_probability=1.0), rng=0)
    assert len(res.lesions) == 1 and res.lesions[0].kind == "cyst"
    assert not (res.label == 2).any()  # a cyst is not a tumor
    assert res.mask is not None and res.mask[res.lesions[0].center_voxel]  # but its interior is reported
    assert res.mask.sum() * 2.5 * 0.8 * 0.8 == pytest.approx(res.lesions[0].volume_mm3)
    z, y, x = res.lesions[0].center_voxel
    core = res.image[z, y - 2 : y + 3, x - 2 : x + 3]
    assert np.median(core) == pytest.approx(10.0, abs=15.0)  # water density (0-20 HU), liver is 100
    assert (np.abs(res.image - image) > 40).sum() > 100


def test_lipiodol_is_dense_and_labelled_tumor(case_factory) -> None:
    image, label = case_factory()
    res = insert_lesions(image, label, (2.5, 0.8, 0.8), _params(lipiodol_probability=1.0), rng=1)
    assert res.lesions[0].kind == "lipiodol"
    tumor = res.label == 2
    assert tumor.sum() > 100 and np.median(res.image[tumor]) > 250


def test_calcified_tumors_hold_dense_foci(case_factory) -> None:
    image, label = case_factory()
    res = insert_lesions(image, label, (2.5, 0.8, 0.8), _params(calcification_probability=1.0), rng=2)
    rec = res.lesions[0]
    assert rec.calcified and rec.kind in ("hypodense", "hyperdense")
    tumor = res.label == 2
    assert (res.image[tumor] > 180).mean() > 0.02


def test_phenotypes_off_keep_earlier_results(case_factory) -> None:
    image, label = case_factory()
    a = insert_lesions(image, label, (2.5, 0.8, 0.8), _params(), rng=5)
    b = insert_lesions(image, label, (2.5, 0.8, 0.8), _params(cyst_probability=0.0), rng=5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)


def test_phenotype_probabilities_are_checked() -> None:
    with pytest.raises(ConfigError, match="cyst_probability \\+ lipiodol_probability"):
        LesionParams(cyst_probability=0.7, lipiodol_probability=0.5)
    with pytest.raises(ConfigError, match="calcification_fraction"):
        LesionParams(calcification_fraction=(0.1, 1.5))


def test_shipped_phenotype_parameter_files_load() -> None:
    from pathlib import Path

    from liverseg.augment.synthesize import load_params_file

    files = sorted((Path(__file__).resolve().parents[2] / "configs" / "lesion_phenotypes").glob("*.yaml"))
    assert {f.stem for f in files} >= {"cyst", "lipiodol", "calcified", "hcc_arterial"}
    params = {f.stem: load_params_file(f) for f in files}
    assert params["cyst"].cyst_probability > 0 and params["lipiodol"].lipiodol_probability > 0
    assert params["calcified"].calcification_probability > 0
    assert all(LesionParams.from_dict(p.to_dict()) == p for p in params.values())
