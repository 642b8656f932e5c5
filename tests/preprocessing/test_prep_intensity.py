"""HU windows, clipping and normalisation (liverseg.preprocessing.intensity)."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import ConfigError, InputError
from liverseg.preprocessing import (
    WINDOWS,
    clip_hu,
    get_window,
    normalize_minmax,
    normalize_zscore,
    window,
    window_bounds,
)


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("liver", (-150.0, 250.0)),  # W400/L50
        ("abdomen", (-135.0, 215.0)),  # W350/L40
        ("seed_clip_100_400", (-100.0, 400.0)),
        ("seed_clip_200_250", (-200.0, 250.0)),
        ("seed_w150_l30", (-45.0, 105.0)),
    ],
)
def test_window_presets_have_the_documented_bounds(name: str, bounds: tuple[float, float]) -> None:
    assert window_bounds(*get_window(name)) == pytest.approx(bounds)


def test_liver_and_abdomen_presets_are_level_width() -> None:
    assert WINDOWS["liver"] == (50.0, 400.0)
    assert WINDOWS["abdomen"] == (40.0, 350.0)


def test_window_maps_the_range_linearly_to_unit_interval() -> None:
    hu = np.array([-1000.0, -150.0, -50.0, 50.0, 150.0, 250.0, 3000.0], dtype=np.float64)
    out = window(hu, 50, 400)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-6)


def test_window_keeps_shape_and_does_not_modify_the_input() -> None:
    hu = np.random.default_rng(0).normal(0, 300, size=(3, 5, 7)).astype(np.int16)
    before = hu.copy()
    out = window(hu, *WINDOWS["seed_clip_100_400"])
    assert out.shape == hu.shape
    np.testing.assert_array_equal(hu, before)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # -100 HU -> 0, 400 HU -> 1 for the [-100, 400] clip
    np.testing.assert_allclose(
        window(np.array([-100.0, 150.0, 400.0]), *WINDOWS["seed_clip_100_400"]), [0, 0.5, 1]
    )


def test_bad_window_and_unknown_name_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="positive width"):
        window(np.zeros(3), 40, 0)
    with pytest.raises(ConfigError, match="liver"):
        get_window("livr")


def test_clip_hu() -> None:
    out = clip_hu(np.array([-2000, -100, 0, 500]), -100, 400)
    np.testing.assert_array_equal(out, [-100, -100, 0, 400])
    assert out.dtype == np.float32
    with pytest.raises(ConfigError):
        clip_hu(np.zeros(2), 10, 10)


def test_zscore_whole_array_and_inside_mask() -> None:
    rng = np.random.default_rng(1)
    arr = rng.normal(40, 25, size=(4, 16, 16)).astype(np.float32)
    out = normalize_zscore(arr)
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1) < 1e-5
    mask = np.zeros(arr.shape, bool)
    mask[:, 4:12, 4:12] = True
    arr[~mask] = -1000.0  # background must not influence the statistics
    out = normalize_zscore(arr, mask)
    assert abs(float(out[mask].mean())) < 1e-5
    assert abs(float(out[mask].std()) - 1) < 1e-5
    assert out[~mask].max() < -10  # background transformed with the mask's statistics


def test_zscore_constant_and_empty_mask() -> None:
    out = normalize_zscore(np.full((2, 3, 3), 7.0))
    assert np.all(out == 0) and np.all(np.isfinite(out))
    with pytest.raises(InputError, match="empty"):
        normalize_zscore(np.ones((2, 2, 2)), np.zeros((2, 2, 2), bool))
    with pytest.raises(InputError, match="shape"):
        normalize_zscore(np.ones((2, 2, 2)), np.ones((2, 2), bool))


def test_minmax_variants() -> None:
    arr = np.array([[[-10.0, 0.0, 10.0, 30.0]]])
    np.testing.assert_allclose(normalize_minmax(arr), [[[0, 0.25, 0.5, 1.0]]])
    mask = np.array([[[False, True, True, False]]])
    np.testing.assert_allclose(normalize_minmax(arr, mask), [[[0, 0, 1, 1]]])  # clipped outside
    np.testing.assert_allclose(normalize_minmax(arr, mask, clip=False), [[[-1, 0, 1, 3]]])
    robust = normalize_minmax(np.arange(101.0).reshape(1, 1, -1), percentiles=(10, 90))
    assert robust[0, 0, 10] == pytest.approx(0) and robust[0, 0, 90] == pytest.approx(1)
    assert np.all(normalize_minmax(np.full((2, 2, 2), 3.0)) == 0)
    with pytest.raises(ConfigError):
        normalize_minmax(arr, percentiles=(90, 10))
