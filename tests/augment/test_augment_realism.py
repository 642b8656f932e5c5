"""Lesion realism statistics on analytic lesions, and synthetic lesions in a real liver."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from liverseg.augment import LesionParams, insert_lesions
from liverseg.augment.realism import comparison_table, lesion_statistics, summarize

SPACING = (1.0, 0.7, 0.7)


def _sphere_lesion(blur_mm: float, *, contrast: float = -40.0, radius_mm: float = 10.0, noise: float = 4.0):
    shape = (50, 80, 80)
    idx = np.indices(shape, dtype=np.float32)
    mm = [(idx[a] - (n - 1) / 2) * SPACING[a] for a, n in enumerate(shape)]
    r = np.sqrt(sum(m**2 for m in mm))
    lesion = r <= radius_mm
    liver = r <= 24.0
    hu = np.where(liver, 100.0, -80.0) + np.where(lesion, contrast, 0.0)
    if blur_mm > 0:
        hu = ndimage.gaussian_filter(hu, [blur_mm / s for s in SPACING])
        hu = np.where(liver, hu, -80.0)
    hu = hu + noise * np.random.default_rng(0).standard_normal(shape)
    label = liver.astype(np.uint8)
    label[lesion] = 2
    return hu.astype(np.float32), label


def test_statistics_of_a_sphere_match_the_analytic_values():
    sharp, label = _sphere_lesion(0.0)
    (s,) = lesion_statistics(sharp, label, SPACING, case="sphere")
    assert s.equivalent_diameter_mm == pytest.approx(20.0, abs=0.5)
    assert s.longest_axial_diameter_mm == pytest.approx(20.0, abs=1.5)
    assert s.contrast_hu == pytest.approx(-40.0, abs=2.0)
    assert s.edge_width_mm < 1.0
    assert s.internal_std_hu == pytest.approx(4.0, abs=0.6)
    # a Gaussian-blurred edge (sigma 1.5 mm) has a 10-90 % width of 2.563 sigma = 3.84 mm
    blurred, label = _sphere_lesion(1.5)
    (b,) = lesion_statistics(blurred, label, SPACING)
    assert b.edge_width_mm == pytest.approx(2.563 * 1.5, abs=0.6)
    assert b.edge_gradient_per_mm < s.edge_gradient_per_mm
    # too faint for an edge width: NaN, and summaries skip it
    faint, label = _sphere_lesion(0.0, contrast=-5.0)
    (f,) = lesion_statistics(faint, label, SPACING)
    assert math.isnan(f.edge_width_mm)
    assert summarize([f.edge_width_mm, 2.0, 4.0])["median"] == 3.0
    table = comparison_table([s, b], [f])
    assert "| equivalent diameter (mm) | 20.0" in table and "n/a" in table


def test_only_requested_lesions_are_measured():
    hu, label = _sphere_lesion(0.0)
    assert lesion_statistics(hu, label, SPACING, lesions=np.zeros(label.shape, bool)) == []
    speck = np.zeros(label.shape, bool)
    speck[5, 5, 5] = True
    assert lesion_statistics(hu, label, SPACING, lesions=speck) == []  # below min_volume_mm3


@pytest.mark.shared_data
def test_synthetic_lesions_in_a_real_liver(shared_data: Path):
    folder = shared_data / "ircadb" / "3Dircadb1.17"
    if not folder.exists():
        pytest.skip(f"shared data not present: {folder}")
    from liverseg.data.ircadb import load_ircadb_patient
    from liverseg.io import to_canonical

    case = load_ircadb_patient(folder)
    image, _ = to_canonical(case.image)
    label, _ = to_canonical(case.label)
    img, lab, sp = image.array, label.array, image.spacing
    real = lesion_statistics(img, lab, sp, case="ircadb_17")
    assert len(real) == 2 and all(r.contrast_hu < -20 and r.equivalent_diameter_mm > 40 for r in real)
    liver_median = float(np.median(img[lab == 1]))
    plain = LesionParams(
        diameter_mm=(15.0, 25.0),
        texture_hu=(0.0, 0.0),
        rim_probability=0.0,
        necrosis_probability=0.0,
        edge_width_mm=(0.3, 0.3),
    )
    res = insert_lesions(img, lab, sp, plain, rng=0, count=4)
    assert len(res.lesions) == 4
    assert not ((res.image != img) & (lab == 0)).any()
    assert np.array_equal(res.label[lab == 2], lab[lab == 2])  # real tumors untouched
    for rec in res.lesions:
        assert rec.background_hu == pytest.approx(liver_median, abs=15.0)
    new = (res.label == 2) & (lab != 2)
    synthetic = lesion_statistics(res.image, res.label, sp, lesions=new, source="synthetic")
    assert len(synthetic) == 4
    by_size = sorted(synthetic, key=lambda x: x.equivalent_diameter_mm)
    recs = sorted(res.lesions, key=lambda r: r.diameter_mm)
    for measured, rec in zip(by_size, recs, strict=True):
        assert measured.equivalent_diameter_mm == pytest.approx(rec.diameter_mm, rel=0.02)
        assert measured.contrast_hu == pytest.approx(rec.contrast_hu, abs=6.0)

    # noise matched to the scan: the in-plane high-pass residual is as strong inside the lesions as
    # in the homogeneous parenchyma of the original scan
    def residual_sigma(volume: np.ndarray, mask: np.ndarray) -> float:
        r = volume - ndimage.uniform_filter(volume.astype(np.float32), (1, 7, 7))
        v = r[mask]
        return 1.4826 * float(np.median(np.abs(v - np.median(v))))

    inner = ndimage.binary_erosion(new, structure=np.ones((1, 9, 9), bool))
    parenchyma = ndimage.binary_erosion(lab == 1, structure=np.ones((1, 9, 9), bool))
    parenchyma &= np.abs(ndimage.gaussian_filter(img, (0, 1.5, 1.5)) - liver_median) < 25
    assert residual_sigma(res.image, inner) == pytest.approx(residual_sigma(img, parenchyma), rel=0.15)
