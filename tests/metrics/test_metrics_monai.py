"""Cross-check Dice, HD95, Hausdorff and ASSD against MONAI's implementations on random blobs.

MONAI (>= 1.3) extracts surfaces the same way (``binary_erosion(mask) ^ mask`` after cropping to
the union box with a 1-voxel margin) and measures exact Euclidean distances with the same
spacing, so the values agree up to MONAI's float32 arithmetic (observed differences < 2e-5 mm,
from ``torch.quantile`` in float32). The tolerance, 1e-3 mm absolute and 1e-5 relative, is that
rounding with a wide margin; any real difference in definition (pooled vs per-direction
percentile, 6- vs 26-neighbour surfaces, spacing order) changes the values by tenths of a mm
or more on these blobs.
"""

from __future__ import annotations

import monai.metrics as monai_metrics
import numpy as np
import pytest
import torch
from scipy import ndimage

from liverseg.metrics import assd, dice, hd95, mssd

SPACING = (2.5, 0.8, 1.1)


def _blob(rng: np.random.Generator, shape: tuple[int, int, int], thr: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.normal(size=shape), 2.0) > thr


def _t(mask: np.ndarray):
    return torch.from_numpy(mask[None, None].astype(np.float32))


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_monai_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    shape = (20, 36, 30)
    pred, ref = _blob(rng, shape, 0.05), _blob(rng, shape, 0.1)
    assert pred.any() and ref.any() and (pred != ref).any()
    P, R = _t(pred), _t(ref)
    m_dice = float(monai_metrics.compute_dice(P, R, include_background=True))
    m_hd95 = float(
        monai_metrics.compute_hausdorff_distance(
            P, R, include_background=True, percentile=95, spacing=SPACING
        )
    )
    m_hd = float(monai_metrics.compute_hausdorff_distance(P, R, include_background=True, spacing=SPACING))
    m_assd = float(
        monai_metrics.compute_average_surface_distance(
            P, R, include_background=True, symmetric=True, spacing=SPACING
        )
    )
    assert dice(pred, ref) == pytest.approx(m_dice, rel=1e-5, abs=1e-6)
    assert hd95(pred, ref, SPACING) == pytest.approx(m_hd95, rel=1e-5, abs=1e-3)
    assert mssd(pred, ref, SPACING) == pytest.approx(m_hd, rel=1e-5, abs=1e-3)
    assert assd(pred, ref, SPACING) == pytest.approx(m_assd, rel=1e-5, abs=1e-3)
