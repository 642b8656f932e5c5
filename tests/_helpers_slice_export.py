"""Write small slice exports (the LiTS-style windowed JPEG/PNG pictures) for the tests.

A synthetic abdomen per volume: a body ellipse (40 HU) in air, a liver ellipsoid on the picture's
left (= patient's right, display orientation) at 100 HU, larger cranially (high slice index), and
an optional 30 HU tumor inside it. Pictures are RGB JPEGs whose G channel holds the -40..160 HU
window (the LiTS export's recipe), labels PNG 0/1/2 (or 0/127/255).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

WINDOW = (-40.0, 160.0)


def synthetic_volume(
    n_slices: int = 24, size: int = 96, *, body_px: float = 40.0, tumor: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(hu float32, label uint8)`` of shape ``(n_slices, size, size)``; slice 0 is the feet end."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    hu = np.full((n_slices, size, size), -1000.0, np.float32)
    lab = np.zeros((n_slices, size, size), np.uint8)
    cy, cx = size / 2, size / 2
    for k in range(n_slices):
        body = ((yy - cy) / (0.75 * body_px)) ** 2 + ((xx - cx) / body_px) ** 2 <= 1
        hu[k][body] = 40.0
        t = k / max(n_slices - 1, 1)
        if 0.25 <= t <= 0.95:  # liver: grows towards the head end, then stops
            r = 0.35 * body_px * (0.4 + t)
            liver = ((yy - cy) / (0.8 * r)) ** 2 + ((xx - (cx - 0.35 * body_px)) / r) ** 2 <= 1
            hu[k][liver] = 100.0
            lab[k][liver] = 1
            if tumor and 0.5 <= t <= 0.7:
                les = (yy - cy) ** 2 + (xx - (cx - 0.35 * body_px)) ** 2 <= (0.15 * body_px) ** 2
                hu[k][les & liver] = 30.0
                lab[k][les & liver] = 2
    hu += rng.normal(0, 5, hu.shape).astype(np.float32) * (hu > -900)
    return hu, lab


def to_grey(hu: np.ndarray, window: Sequence[float] = WINDOW) -> np.ndarray:
    lo, hi = window
    return np.rint(np.clip((hu - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def write_export(
    root: Path,
    volume: str,
    hu: np.ndarray,
    lab: np.ndarray,
    *,
    step: int = 2,
    first: int = 0,
    rgb: bool = True,
    seed_encoding: bool = False,
    skip: Sequence[int] = (),
    quality: int = 90,
) -> list[int]:
    """Write the slices of one volume as ``<volume>_slice_<k>.jpg`` + ``_mask.png``; returns the k."""
    img_dir, mask_dir = root / "train_images", root / "train_masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    ks = []
    for i in range(hu.shape[0]):
        if i in skip:
            continue
        k = first + i * step
        g = to_grey(hu[i])
        pic = np.stack([to_grey(hu[i], (-45, 105)), g, g // 2], -1) if rgb else g
        Image.fromarray(pic).save(img_dir / f"{volume}_slice_{k}.jpg", quality=quality)
        m = lab[i] * 127 + (lab[i] == 2) if seed_encoding else lab[i]
        Image.fromarray(m.astype(np.uint8)).save(mask_dir / f"{volume}_slice_{k}_mask.png")
        ks.append(k)
    return ks
