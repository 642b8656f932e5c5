"""Water-phantom hard negatives (liverseg.synth.negatives) and their use by the training sampler."""

from __future__ import annotations

import numpy as np

from liverseg.synth.negatives import AIR_HU, water_phantom_slab


def test_water_phantom_slab() -> None:
    rng = np.random.default_rng(0)
    slab, label = water_phantom_slab(5, 128, (2.5, 2.5), rng)
    assert slab.shape == (5, 128, 128) and slab.dtype == np.float32
    assert label.shape == (128, 128) and not label.any()
    centre = slab[:, 60:68, 60:68]
    assert abs(float(np.median(centre))) < 25  # water
    assert (slab == AIR_HU).mean() > 0.1  # air around it
    assert not np.array_equal(slab[0], slab[1])  # fresh noise per slice
    again, _ = water_phantom_slab(5, 128, (2.5, 2.5), np.random.default_rng(0))
    assert np.array_equal(slab, again)  # deterministic per generator
