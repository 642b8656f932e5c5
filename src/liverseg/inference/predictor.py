"""The cascade predictor: stage 1 finds the liver at low resolution, stage 2 segments liver and
tumor inside the liver box at full in-plane resolution (Christ et al. 2017).

Everything here works on the *canonical* grid (see :func:`liverseg.io.to_canonical`); the caller
maps the result back onto the input grid exactly. Slices are processed in z-chunks so a
1,000-slice CT runs in bounded memory: only the current chunk's 2.5D slabs exist at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cc3d
import numpy as np

from liverseg.inference.backends import Backend
from liverseg.io import Volume
from liverseg.preprocessing import crop, label_bbox, resample_to_spacing
from liverseg.training.checkpoint import make_slab

log = logging.getLogger(__name__)

__all__ = ["CanonicalResult", "Cascade", "StageRunner"]

ProgressFn = Callable[[str, float], None]


@dataclass
class StageRunner:
    """One trained stage: its network backend and the StageSpec that says how to feed it."""

    backend: Backend
    spec: Any  # liverseg.training.checkpoint.StageSpec
    batch_size: int = 8
    chunk_slices: int = 32

    def predict_array(
        self, array_hu: np.ndarray, progress: Callable[[float], None] | None = None
    ) -> np.ndarray:
        """Class probabilities ``(K, z, y, x)`` float32 for every axial slice of ``array_hu`` ``(z, y, x)``.

        The 2.5D input of slice ``z`` is built by the training code's ``make_slab`` from slices
        ``z-k .. z+k`` (edges replicated). Chunks carry ``k`` extra slices of real context on
        each side whose outputs are discarded, so chunking never changes the result.
        """

        k = int(self.spec.context_slices)
        nz = array_hu.shape[0]
        out: np.ndarray | None = None
        for z0 in range(0, nz, self.chunk_slices):
            z1 = min(nz, z0 + self.chunk_slices)
            a0, a1 = max(0, z0 - k), min(nz, z1 + k)
            slab = make_slab(array_hu[a0:a1], self.spec)[z0 - a0 : z1 - a0]
            for b0 in range(0, slab.shape[0], self.batch_size):
                probs = self.backend.probabilities(slab[b0 : b0 + self.batch_size])
                if out is None:
                    out = np.empty((probs.shape[1], *array_hu.shape), dtype=np.float32)
                out[:, z0 + b0 : z0 + b0 + probs.shape[0]] = probs.transpose(1, 0, 2, 3)
            if progress is not None:
                progress(z1 / nz)
        assert out is not None
        return out

    def predict_volume(
        self, volume: Volume, *, scale: float = 1.0, progress: Callable[[float], None] | None = None
    ) -> np.ndarray:
        """Probabilities ``(K, z, y, x)`` on ``volume``'s own grid.

        The volume is resampled to the stage spacing (times ``scale``, for test-time
        augmentation), predicted, and the probabilities are mapped back with the exact inverse of
        that resampling (linear interpolation of probabilities, never of labels).
        """

        z, y, x = self.spec.spacing_zyx
        target = (z, float(y) * scale, float(x) * scale)  # TTA rescales in-plane only
        resampled, info = resample_to_spacing(volume, target, order=1)
        probs = self.predict_array(resampled.array, progress)
        return info.invert(probs, order=1).astype(np.float32, copy=False)


@dataclass
class CanonicalResult:
    """Cascade output on the canonical grid."""

    labels: np.ndarray  # uint8 (z, y, x), before post-processing; 0 outside ``box``
    probabilities: np.ndarray | None  # float32 (3, z, y, x) when requested
    tumor_prob: np.ndarray | None  # float32 tumor probability inside ``box`` (None for 2-class models)
    liver_found: bool
    box: tuple[slice, slice, slice] | None  # where labels can be non-zero (None: nothing found)
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Cascade:
    """Stage 1 (liver, low resolution) + stage 2 (liver and tumor in the liver box), or one
    ``single`` stage applied to whole slices (the naive baseline)."""

    liver: StageRunner | None = None
    tumor: StageRunner | None = None
    single: StageRunner | None = None
    min_liver_ml: float = 50.0

    def segment(
        self,
        canon: Volume,
        *,
        tta: bool = False,
        keep_probabilities: bool = False,
        progress: ProgressFn | None = None,
    ) -> CanonicalResult:
        """Segment a canonical-orientation HU volume (float32)."""
        timings: dict[str, float] = {}
        report = progress or (lambda stage, frac: None)
        if self.single is not None:
            t0 = time.perf_counter()
            probs = self.single.predict_volume(canon, progress=lambda f: report("single", f))
            timings["single_stage"] = time.perf_counter() - t0
            return self._finish(probs, None, canon, keep_probabilities, timings)
        assert self.liver is not None and self.tumor is not None
        t0 = time.perf_counter()
        box = self.locate_liver(canon, progress=lambda f: report("stage1", f))
        timings["stage1_liver"] = time.perf_counter() - t0
        if box is None:
            empty = np.zeros(canon.shape, dtype=np.uint8)
            probs = None
            if keep_probabilities:
                probs = np.zeros((3, *canon.shape), dtype=np.float32)
                probs[0] = 1.0
            return CanonicalResult(empty, probs, None, False, None, timings)
        t0 = time.perf_counter()

        cropped = crop(canon, box)
        scales = (1.0, 0.9, 1.1) if tta else (1.0,)
        acc: np.ndarray | None = None
        for i, scale in enumerate(scales):
            p = self.tumor.predict_volume(
                cropped,
                scale=scale,
                progress=lambda f, i=i: report("stage2", (i + f) / len(scales)),
            )
            acc = p if acc is None else acc + p
        assert acc is not None
        box_probs = acc / len(scales)
        timings["stage2_liver_tumor"] = time.perf_counter() - t0
        return self._finish(box_probs, box, canon, keep_probabilities, timings)

    def locate_liver(
        self, canon: Volume, progress: Callable[[float], None] | None = None
    ) -> tuple[slice, ...] | None:
        """Stage 1: the liver's bounding box on the canonical grid (with the stage-2 margin), or None."""

        assert self.liver is not None and self.tumor is not None
        low, _ = resample_to_spacing(canon, self.liver.spec.spacing_zyx, order=1)
        probs = self.liver.predict_array(low.array, progress)
        mask = probs[1:].sum(axis=0) > 0.5
        if not mask.any():
            return None
        mask = cc3d.largest_k(mask.astype(np.uint8), k=1, connectivity=26) > 0
        liver_ml = float(mask.sum()) * low.voxel_volume_ml
        if liver_ml < self.min_liver_ml:
            log.info("stage 1 found only %.1f ml of liver-like tissue: treated as no liver", liver_ml)
            return None
        # Map the low-resolution box corners (voxel edges) to canonical voxel indices via physical space.
        low_box = label_bbox(mask, low.spacing, 0.0)
        lo = np.array([s.start for s in low_box], dtype=float) - 0.5
        hi = np.array([s.stop for s in low_box], dtype=float) - 0.5
        corners = np.array(np.meshgrid(*zip(lo, hi, strict=True), indexing="ij")).reshape(3, -1).T
        idx = canon.physical_to_index(low.index_to_physical(corners))
        margin_vox = float(self.tumor.spec.crop_margin_mm) / np.asarray(canon.spacing)
        start = np.floor(idx.min(axis=0) - margin_vox).astype(int)
        stop = np.ceil(idx.max(axis=0) + margin_vox).astype(int) + 1
        start = np.clip(start, 0, canon.shape)
        stop = np.clip(stop, 0, canon.shape)
        if np.any(stop - start < 2):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))

    @staticmethod
    def _finish(
        probs: np.ndarray,
        box: tuple[slice, ...] | None,
        canon: Volume,
        keep_probabilities: bool,
        timings: dict[str, float],
    ) -> CanonicalResult:
        """Argmax inside the box, paste into a full canonical label map."""
        n_cls = probs.shape[0]
        labels_box = probs.argmax(axis=0).astype(np.uint8)
        if n_cls == 2:  # a liver-only model: class 1 is liver
            labels_box = np.where(labels_box == 1, 1, 0).astype(np.uint8)
        full_box = box if box is not None else tuple(slice(0, s) for s in canon.shape)
        labels = np.zeros(canon.shape, dtype=np.uint8)
        labels[full_box] = labels_box
        tumor_prob = probs[2] if n_cls >= 3 else None
        full_probs = None
        if keep_probabilities:
            full_probs = np.zeros((3, *canon.shape), dtype=np.float32)
            full_probs[0] = 1.0
            full_probs[(slice(None), *full_box)][:n_cls] = probs
            if n_cls == 2:
                full_probs[(2, *full_box)] = 0.0
        return CanonicalResult(labels, full_probs, tumor_prob, bool((labels > 0).any()), full_box, timings)
