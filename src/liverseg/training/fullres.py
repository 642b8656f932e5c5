"""Prediction of a held-out case at full resolution on its original grid (for ``compare``).

The case goes through exactly the stage's input path (canonical orientation, liver-box crop for
the tumor stage, resampling to the stage spacing, :func:`make_slab`), the class probabilities
are mapped back with the exact inverse of the resampling, argmax'ed, pasted into the box and
re-oriented onto the input grid. A tumor-stage model is given the *reference* liver box (an
oracle stage 1), which the comparison table states.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from liverseg.errors import ConfigError
from liverseg.io import Volume, to_canonical
from liverseg.preprocessing import crop, label_bbox, resample_to_spacing
from liverseg.training.checkpoint import LoadedModel
from liverseg.training.evaluation import predict_probabilities

__all__ = ["predict_case"]


def predict_case(
    loaded: LoadedModel,
    image: Volume,
    *,
    reference: Volume | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Label map ``(z, y, x)`` uint8 on ``image``'s grid and timing ``{"slices", "seconds", "ms_per_slice"}``.

    Raises:
        ConfigError / InputError from preprocessing; a tumor-stage model needs ``reference``.
    """

    spec = loaded.spec
    device = torch.device(device)
    canon, reo = to_canonical(image)
    labels = np.zeros(canon.shape, dtype=np.uint8)
    box = tuple(slice(0, n) for n in canon.shape)
    if spec.stage == "tumor":
        if reference is None:
            raise ConfigError(
                "a tumor-stage model is evaluated inside the reference liver box: pass reference"
            )
        ref_canon, _ = to_canonical(reference)
        liver = np.asarray(ref_canon.array) >= 1
        if not liver.any():
            return reo.to_original_array(labels), {"slices": 0, "seconds": 0.0, "ms_per_slice": float("nan")}
        box = label_bbox(liver, canon.spacing, spec.crop_margin_mm)
        canon = crop(canon, box)
    resampled, info = resample_to_spacing(canon, spec.spacing_zyx, order=1)
    t0 = time.perf_counter()
    probs = predict_probabilities(
        loaded.model,
        np.asarray(resampled.array, dtype=np.float32),
        spec,
        device=device,
        batch_size=batch_size,
    )
    seconds = time.perf_counter() - t0
    probs = info.invert(probs, order=1)
    pred = probs.argmax(axis=0).astype(np.uint8)
    if spec.out_channels == 2:
        pred = (pred == 1).astype(np.uint8)
    labels[box] = pred
    n = resampled.shape[0]
    return reo.to_original_array(labels), {
        "slices": n,
        "seconds": seconds,
        "ms_per_slice": 1000.0 * seconds / n,
    }
