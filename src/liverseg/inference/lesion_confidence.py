"""Lesion-level decision: a calibrated confidence per lesion candidate (numpy/scipy only).

A voxel classifier's tumor map holds true lesions and false candidates (vessels cut obliquely,
fissures, partial-volume rims at the liver edge, noise). One global threshold on the mean tumor
probability (liver-cascade 0.1.0) cannot tell them apart well. Following Chlebus et al. (2018),
each candidate (26-connected tumor component) is described by a few object features and a
logistic model turns them into a calibrated probability that the candidate is a real lesion:

==================  ====================================================================
feature             meaning
==================  ====================================================================
``log_volume``      log10 of the volume in mm^3
``mean_prob``       mean stage-2 tumor probability over the candidate
``p90_prob``        90th percentile of that probability
``contrast_hu``     median HU inside minus median HU of the liver parenchyma in a 10 mm
                    shell around it (clipped to +-200)
``std_hu``          HU standard deviation inside (clipped to 200)
``elongation``      sqrt of the largest / smallest principal-axis variance (mm), capped
                    at 20: vessels are long and thin
``edge_fraction``   share of the candidate's surface voxels that touch non-liver
                    (boundary artefacts hug the liver's edge)
``extent_z_mm``     cranio-caudal extent in mm
==================  ====================================================================

The model is fitted on candidates from held-out predictions (cross-validation, so the features
look like those of unseen cases) with L2-regularised logistic regression
(:func:`fit_lesion_model`) and stored in ``model.json`` (``postprocess.lesion_model``). A
calibrated probability makes the decision rule principled: a candidate is **confirmed** when its
confidence is at least ``confirm_threshold`` (0.5: a real lesion is then at least as likely as
not, the Bayes decision when a false lesion and a missed one are judged equally harmful) and is a
**possible** lesion (listed, flagged, kept out of the burden and RECIST numbers) otherwise, down to
``list_threshold``; below that it is dropped as noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cc3d
import numpy as np
from scipy import ndimage, optimize

from liverseg.errors import ConfigError
from liverseg.io.labels import encode_confidence

__all__ = [
    "FEATURES",
    "LesionCandidate",
    "LesionDecision",
    "LesionModel",
    "candidate_features",
    "decide_lesions",
    "fit_lesion_model",
]

FEATURES: tuple[str, ...] = (
    "log_volume",
    "mean_prob",
    "p90_prob",
    "contrast_hu",
    "std_hu",
    "elongation",
    "edge_fraction",
    "extent_z_mm",
)
_SHELL_MM = 10.0
LIVER, TUMOR = 1, 2


@dataclass(frozen=True)
class LesionCandidate:
    """One tumor component: its index in the component map and its feature vector."""

    index: int
    features: dict[str, float]

    def vector(self) -> np.ndarray:
        return np.array([self.features[f] for f in FEATURES], dtype=np.float64)


def _elongation(coords_mm: np.ndarray) -> float:
    if coords_mm.shape[0] < 3:
        return 1.0
    ev = np.linalg.eigvalsh(np.cov(coords_mm.T))
    return float(min(20.0, np.sqrt(max(ev[-1], 1e-6) / max(ev[0], 1e-2))))


def candidate_features(
    labels: np.ndarray,
    tumor_prob: np.ndarray,
    image_hu: np.ndarray,
    spacing_zyx: Sequence[float],
) -> tuple[np.ndarray, list[LesionCandidate]]:
    """Features of every tumor component of ``labels``.

    Args:
        labels: uint8 ``(z, y, x)`` 0/1/2 (after the liver post-processing).
        tumor_prob: float ``(z, y, x)`` stage-2 tumor probability on the same grid.
        image_hu: the CT in HU on the same grid.
        spacing_zyx: voxel size in mm.

    Returns:
        ``(components, candidates)``: int32 component map (0 outside tumors, 1..n) and one
        :class:`LesionCandidate` per component, in component order.
    """
    sp = np.asarray(spacing_zyx, dtype=float)
    comps = cc3d.connected_components((labels == TUMOR).astype(np.uint8), connectivity=26).astype(np.int32)
    n = int(comps.max())
    if n == 0:
        return comps, []
    liver = labels >= LIVER
    parenchyma = labels == LIVER
    stats = cc3d.statistics(comps)
    pad = np.ceil(_SHELL_MM / sp).astype(int)
    voxel_mm3 = float(np.prod(sp))
    out: list[LesionCandidate] = []
    for idx in range(1, n + 1):
        bb = stats["bounding_boxes"][idx]
        box = tuple(
            slice(max(0, s.start - p), min(dim, s.stop + p))
            for s, p, dim in zip(bb, pad, labels.shape, strict=True)
        )
        mask = comps[box] == idx
        prob = tumor_prob[box][mask]
        hu = image_hu[box][mask].astype(np.float64)
        dist = ndimage.distance_transform_edt(~mask, sampling=sp)
        shell = (dist > 0) & (dist <= _SHELL_MM) & parenchyma[box]
        ref_hu = float(np.median(image_hu[box][shell])) if shell.sum() >= 10 else float(np.median(hu))
        surface = mask & ~ndimage.binary_erosion(mask)
        near_outside = ndimage.binary_dilation(~liver[box], structure=np.ones((3, 3, 3), bool))
        edge = float(near_outside[surface].mean()) if surface.any() else 0.0
        coords = np.argwhere(mask) * sp
        zs = np.flatnonzero(mask.any(axis=(1, 2)))
        feats = {
            "log_volume": float(np.log10(max(mask.sum() * voxel_mm3, 1e-3))),
            "mean_prob": float(prob.mean()),
            "p90_prob": float(np.percentile(prob, 90)),
            "contrast_hu": float(np.clip(np.median(hu) - ref_hu, -200.0, 200.0)),
            "std_hu": float(min(200.0, hu.std())),
            "elongation": _elongation(coords),
            "edge_fraction": edge,
            "extent_z_mm": float((zs[-1] - zs[0] + 1) * sp[0]),
        }
        out.append(LesionCandidate(idx, feats))
    return comps, out


@dataclass(frozen=True)
class LesionModel:
    """A fitted logistic lesion model (standardised features, weights, bias) and its thresholds."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    confirm_threshold: float = 0.5
    list_threshold: float = 0.1
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        k = len(self.features)
        if tuple(self.features) != FEATURES:
            raise ConfigError(
                f"lesion_model: features {list(self.features)} do not match this liverseg's {list(FEATURES)}"
            )
        if not (len(self.mean) == len(self.scale) == len(self.weights) == k):
            raise ConfigError(f"lesion_model: expected {k} means, scales and weights")
        if not 0.0 <= self.list_threshold <= self.confirm_threshold <= 1.0:
            raise ConfigError(
                "lesion_model: expected 0 <= list_threshold <= confirm_threshold <= 1, got "
                f"{self.list_threshold} and {self.confirm_threshold}"
            )

    def confidence(self, candidates: Sequence[LesionCandidate]) -> np.ndarray:
        """Calibrated probability (0-1) that each candidate is a real lesion."""
        if not candidates:
            return np.zeros(0)
        x = (np.stack([c.vector() for c in candidates]) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.weights) + self.bias)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": [round(v, 6) for v in self.mean],
            "scale": [round(v, 6) for v in self.scale],
            "weights": [round(v, 6) for v in self.weights],
            "bias": round(self.bias, 6),
            "confirm_threshold": self.confirm_threshold,
            "list_threshold": self.list_threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LesionModel:
        """Read ``model.json``'s ``postprocess.lesion_model``.

        Raises:
            ConfigError: missing keys or values of the wrong kind (named).
        """
        try:
            return cls(
                mean=tuple(float(v) for v in data["mean"]),
                scale=tuple(float(v) for v in data["scale"]),
                weights=tuple(float(v) for v in data["weights"]),
                bias=float(data["bias"]),
                confirm_threshold=float(data.get("confirm_threshold", 0.5)),
                list_threshold=float(data.get("list_threshold", 0.1)),
                features=tuple(data.get("features", FEATURES)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"model.json postprocess.lesion_model is malformed ({exc!r})") from exc


def fit_lesion_model(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1.0,
    confirm_threshold: float = 0.5,
    list_threshold: float = 0.1,
) -> LesionModel:
    """L2-regularised logistic regression on standardised features (scipy L-BFGS).

    Written here rather than taken from scikit-learn: one small convex fit does not justify a
    100 MB dependency, and the few lines below are checked against the analytic optimum in the
    tests.

    Args:
        x: ``(n, len(FEATURES))`` candidate features; y: ``(n,)`` 1 = real lesion, 0 = false.
        l2: penalty on the weights (not the bias), in units of the mean log-loss.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or y.shape != (x.shape[0],):
        raise ConfigError(f"expected x (n, {len(FEATURES)}) and y (n,), got {x.shape} and {y.shape}")
    if len(np.unique(y)) < 2:
        raise ConfigError("fitting a lesion model needs both real and false candidates")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    n = len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        t = z @ w + b
        # log(1 + e^t) - y t, stable
        nll = np.logaddexp(0.0, t) - y * t
        p = 1.0 / (1.0 + np.exp(-t))
        grad_t = (p - y) / n
        g = np.concatenate([z.T @ grad_t + l2 * w / n, [grad_t.sum()]])
        return float(nll.mean() + 0.5 * l2 * (w @ w) / n), g

    res = optimize.minimize(loss, np.zeros(z.shape[1] + 1), jac=True, method="L-BFGS-B")
    w, b = res.x[:-1], float(res.x[-1])
    return LesionModel(
        tuple(mean.tolist()),
        tuple(scale.tolist()),
        tuple(w.tolist()),
        b,
        confirm_threshold=confirm_threshold,
        list_threshold=list_threshold,
    )


# ------------------------------------------------------------------------- applying the model
@dataclass(frozen=True)
class LesionDecision:
    """The lesion model applied to one label map.

    Attributes:
        labels: the labels with only confirmed lesions as tumor (possible and dropped candidates
            are liver).
        confidence_map: uint8 map on the same grid, :func:`liverseg.io.labels.encode_confidence` of the candidate's
            confidence on every voxel of a *listed* candidate (confirmed or possible), 0 elsewhere.
        n_confirmed, n_possible, n_dropped: candidate counts.
    """

    labels: np.ndarray
    confidence_map: np.ndarray
    n_confirmed: int
    n_possible: int
    n_dropped: int


def decide_lesions(
    labels: np.ndarray,
    tumor_prob: np.ndarray,
    image_hu: np.ndarray,
    spacing_zyx: Sequence[float],
    model: LesionModel,
) -> LesionDecision:
    """Score every tumor component with ``model`` and split them into confirmed / possible / dropped
    (see the module docstring)."""
    comps, cands = candidate_features(labels, tumor_prob, image_hu, spacing_zyx)
    out = labels.copy()
    conf_map = np.zeros(labels.shape, np.uint8)
    counts = [0, 0, 0]
    if cands:
        conf = model.confidence(cands)
        lut = np.zeros(int(comps.max()) + 1, np.uint8)
        demote = np.zeros(lut.size, bool)
        for cand, p in zip(cands, conf, strict=True):
            if p >= model.list_threshold:
                lut[cand.index] = encode_confidence(p)
            demote[cand.index] = p < model.confirm_threshold
            counts[0 if p >= model.confirm_threshold else (1 if p >= model.list_threshold else 2)] += 1
        conf_map = lut[comps]
        out[demote[comps]] = LIVER
    return LesionDecision(out, conf_map, *counts)
