"""Hard negatives that are not anatomy: CT test objects a liver model must not call liver.

A water-filled cylindrical quality-assurance phantom (0 HU, homogeneous, in a plastic shell) is
scanned on every CT scanner and looks, to a network that has only seen abdomens, like a large
homogeneous organ: liver-cascade 0.1.0 segmented one as a 205 ml liver. Training samples drawn
from :func:`water_phantom_slab` (label all background) teach the liver stage otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["water_phantom_slab"]

AIR_HU = -1000.0


def water_phantom_slab(
    n_slices: int, size: int, spacing_yx_mm: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A slab through a water phantom: HU ``(n_slices, size, size)`` float32 and an all-zero label.

    The phantom: a cylinder along z of random diameter (150-330 mm) and position, water of
    -5..+15 HU with Gaussian noise (sigma 5-25 HU, lightly correlated), in a 3-8 mm acrylic shell
    (~120 HU), on a couch (a curved 10 mm plate at ~200 HU) in air.
    """
    sy, sx = spacing_yx_mm
    yy, xx = np.meshgrid(np.arange(size) * sy, np.arange(size) * sx, indexing="ij")
    extent = np.array([size * sy, size * sx])
    radius = rng.uniform(75.0, 165.0)
    cy, cx = extent / 2 + rng.uniform(-0.15, 0.15, size=2) * extent
    r = np.hypot(yy - cy, xx - cx)
    shell = rng.uniform(3.0, 8.0)
    img = np.full((size, size), AIR_HU, np.float32)
    img[r <= radius + shell] = rng.uniform(100.0, 140.0)
    img[r <= radius] = rng.uniform(-5.0, 15.0)
    couch_y = cy + radius + shell + rng.uniform(2.0, 30.0)
    couch = (yy >= couch_y) & (yy <= couch_y + 10.0) & (np.abs(xx - cx) <= rng.uniform(150.0, 250.0))
    img[couch] = rng.uniform(150.0, 250.0)
    sigma = rng.uniform(5.0, 25.0)
    out = np.empty((n_slices, size, size), np.float32)
    for k in range(n_slices):
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 0.7)
        out[k] = img + (sigma / max(float(noise.std()), 1e-6)) * noise * (img > AIR_HU + 1)
    return out, np.zeros((size, size), np.uint8)
