"""Lesion candidates' features and the calibrated lesion model (liverseg.inference.lesion_confidence)."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import ConfigError
from liverseg.inference.lesion_confidence import FEATURES, LesionModel, candidate_features, fit_lesion_model


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 100 HU liver block holding a 40 HU sphere (r 5 mm), a thin 200 HU tube and an edge blob."""
    shape = (40, 64, 64)
    idx = np.indices(shape).astype(float)
    labels = np.zeros(shape, np.uint8)
    labels[2:38, 4:60, 4:60] = 1
    hu = np.where(labels > 0, 100.0, -100.0)
    sphere = (idx[0] - 20) ** 2 + (idx[1] - 20) ** 2 + (idx[2] - 20) ** 2 <= 25
    tube = ((idx[1] - 45) ** 2 + (idx[2] - 45) ** 2 <= 1.0) & (idx[0] >= 5) & (idx[0] <= 34)
    edge = (idx[0] >= 18) & (idx[0] <= 21) & (idx[1] >= 4) & (idx[1] <= 7) & (idx[2] >= 30) & (idx[2] <= 33)
    labels[sphere | tube | edge] = 2
    hu[sphere] = 40.0
    hu[tube] = 200.0
    prob = np.where(labels == 2, 0.9, 0.05)
    prob[tube] = 0.6
    return labels, prob, hu


def test_features_describe_shape_contrast_and_position() -> None:
    labels, prob, hu = _scene()
    comps, cands = candidate_features(labels, prob, hu, (1.0, 1.0, 1.0))
    assert len(cands) == 3 and comps.max() == 3
    sphere = next(c for c in cands if c.index == int(comps[20, 20, 20]))
    tube = next(c for c in cands if c.index == int(comps[20, 45, 45]))
    edge = next(c for c in cands if c.index == int(comps[19, 5, 31]))
    assert sphere.features["log_volume"] == pytest.approx(np.log10(515), abs=0.1)  # 4/3 pi 5^3 on a grid
    assert sphere.features["contrast_hu"] == pytest.approx(-60.0, abs=1.0)
    assert sphere.features["elongation"] < 1.3 and tube.features["elongation"] > 5.0
    assert tube.features["contrast_hu"] == pytest.approx(100.0, abs=1.0)
    assert sphere.features["edge_fraction"] == 0.0 and edge.features["edge_fraction"] > 0.2
    assert sphere.features["mean_prob"] == pytest.approx(0.9) and tube.features["p90_prob"] == pytest.approx(
        0.6
    )
    assert sphere.features["extent_z_mm"] == pytest.approx(11.0)  # slices 15..25 hold the r = 5 sphere
    assert set(sphere.features) == set(FEATURES)


def test_no_tumor_no_candidates() -> None:
    labels = np.ones((4, 8, 8), np.uint8)
    comps, cands = candidate_features(labels, np.zeros(labels.shape), np.zeros(labels.shape), (1, 1, 1))
    assert cands == [] and not comps.any()


def test_fit_recovers_a_known_logistic_model_and_is_calibrated() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    x = rng.normal(0, 1, (n, len(FEATURES)))
    true_w = np.array([2.0, -1.0, 0.5, 0, 0, 0, 0, 0])
    p = 1 / (1 + np.exp(-(x @ true_w - 0.5)))
    y = (rng.random(n) < p).astype(float)
    model = fit_lesion_model(x, y, l2=1e-6)
    # features are standardised: weights scale by the (≈1) standard deviations
    assert np.allclose(np.array(model.weights) / np.array(model.scale), true_w, atol=0.08)
    from liverseg.inference.lesion_confidence import LesionCandidate

    cands = [LesionCandidate(i, dict(zip(FEATURES, row, strict=True))) for i, row in enumerate(x[:4000])]
    conf = model.confidence(cands)
    for lo in (0.1, 0.3, 0.5, 0.7):  # calibration: observed rate ~ predicted probability per bin
        sel = (conf >= lo) & (conf < lo + 0.2)
        assert y[:4000][sel].mean() == pytest.approx(conf[sel].mean(), abs=0.06)
    back = LesionModel.from_dict(model.to_dict())
    assert np.allclose(back.confidence(cands), conf, atol=1e-5)


def test_fit_and_load_errors() -> None:
    with pytest.raises(ConfigError, match="both real and false"):
        fit_lesion_model(np.zeros((3, len(FEATURES))), np.ones(3))
    with pytest.raises(ConfigError, match="malformed"):
        LesionModel.from_dict({"mean": [0.0]})
    with pytest.raises(ConfigError, match="do not match"):
        LesionModel((0.0,), (1.0,), (1.0,), 0.0, features=("size",))
    with pytest.raises(ConfigError, match="list_threshold"):
        m = fit_lesion_model(
            np.eye(len(FEATURES))[[0, 1, 2, 3]].repeat(5, 0), np.array([0, 1, 0, 1] * 5, float)
        )
        LesionModel(m.mean, m.scale, m.weights, m.bias, confirm_threshold=0.2, list_threshold=0.5)
