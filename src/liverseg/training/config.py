"""Typed training configuration: frozen dataclasses loaded from YAML, ``--set`` overrides.

A config file has the sections below (every key optional, defaults shown by the dataclasses)::

    name: unet_single
    data:     {dir, cache_dir, fold, train_ids, val_ids}
    model:    {name, kwargs}
    stage:    {stage, classes, context_slices, spacing_zyx, window, crop_margin_mm}
    sampling: {mode, size, liver_fraction, tumor_fraction, positive_patch_fraction, margin_jitter_mm}
    augment:  {...; synthetic_lesions: {p, params}}
    loss:     {name, ...}
    optim:    {name, lr, ...}
    schedule: {name, warmup_epochs, ...}
    train:    {batch_size, epochs, steps_per_epoch, budget_minutes, patience, seed, device, amp, ...}

Unknown keys and wrong types raise :class:`~liverseg.errors.ConfigError` naming the dotted field
(loading, ``--set`` overrides and cascades: :mod:`liverseg.training.config_io`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from liverseg.errors import ConfigError
from liverseg.training.slabs import StageSpec, default_classes
from liverseg.training.typed import to_dict

__all__ = [
    "AugmentConfig",
    "CascadeConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "SamplingConfig",
    "ScheduleConfig",
    "StageConfig",
    "SyntheticLesionsConfig",
    "TrainConfig",
    "TrainLoopConfig",
]


def _check(cond: bool, field_name: str, message: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{field_name}: {message}, got {value!r}")


def _fraction(name: str, value: float) -> None:
    _check(0.0 <= value <= 1.0, name, "expected a probability in [0, 1]", value)


@dataclass(frozen=True)
class DataConfig:
    """Where the cases come from. ``fold`` indexes ``dataset.json`` splits; explicit ids override it."""

    dir: str | None = None  # prepared dataset folder (may be absent when training from the cache)
    cache_dir: str = "cache/train"
    fold: int | None = 0
    train_ids: tuple[str, ...] | None = None
    val_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.fold is not None:
            _check(self.fold >= 0, "data.fold", "expected a fold index >= 0", self.fold)


@dataclass(frozen=True)
class ModelConfig:
    """Network name (``liverseg.models.MODELS``), its keyword arguments, and optionally a
    checkpoint whose weights initialise the network (fine-tuning, e.g. on exported corrections)."""

    name: str = "unet"
    kwargs: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None


@dataclass(frozen=True)
class StageConfig:
    """The stage's input definition; becomes the checkpoint's :class:`StageSpec`."""

    stage: Literal["liver", "tumor", "single"] = "single"
    classes: tuple[str, ...] | None = None  # default from the stage
    context_slices: int = 1
    spacing_zyx: tuple[float | None, float, float] = (None, 1.5, 1.5)
    window: tuple[float, float] | str = (50.0, 400.0)  # (level, width) HU or a name of preprocessing.WINDOWS
    crop_margin_mm: float = 10.0

    def __post_init__(self) -> None:
        _check(self.context_slices >= 0, "stage.context_slices", "expected k >= 0", self.context_slices)
        z, y, x = self.spacing_zyx
        _check(
            (z is None or z > 0) and y > 0 and x > 0,
            "stage.spacing_zyx",
            "expected positive mm",
            self.spacing_zyx,
        )
        _check(self.window_hu[1] > 0, "stage.window", "expected (level, width) with width > 0", self.window)
        _check(self.crop_margin_mm >= 0, "stage.crop_margin_mm", "expected >= 0 mm", self.crop_margin_mm)
        if self.classes is not None:
            want = default_classes(self.stage)
            _check(
                tuple(self.classes) == want,
                "stage.classes",
                f"stage {self.stage!r} needs {list(want)}",
                list(self.classes),
            )

    @property
    def window_hu(self) -> tuple[float, float]:
        """``(level, width)`` in HU (a named window resolved through ``liverseg.preprocessing.WINDOWS``)."""
        if isinstance(self.window, str):
            from liverseg.preprocessing import get_window

            try:
                return get_window(self.window)
            except ConfigError as exc:
                raise ConfigError(f"stage.window: {exc}") from exc
        return self.window

    def spec(self) -> StageSpec:
        """The :class:`StageSpec` this section defines."""
        return StageSpec(
            stage=self.stage,
            classes=self.classes or default_classes(self.stage),
            context_slices=self.context_slices,
            spacing_zyx=self.spacing_zyx,
            window=self.window_hu,
            crop_margin_mm=self.crop_margin_mm,
        )


@dataclass(frozen=True)
class SamplingConfig:
    """How training samples are drawn (see :mod:`liverseg.training.sampling`).

    ``mode``: ``slice`` (whole slices, random crop/pad to ``size``), ``patch`` (``size`` patches,
    a fraction centred on foreground) or ``liver_box`` (the liver box with a jittered margin).
    ``negative_fraction``: share of samples that are a synthetic water phantom with an all-background
    label (a hard negative for the liver stage, :mod:`liverseg.synth.negatives`), drawn first.
    """

    mode: Literal["slice", "patch", "liver_box"] = "slice"
    size: int = 256
    liver_fraction: float = 0.5
    tumor_fraction: float = 0.25
    positive_patch_fraction: float = 0.7
    margin_jitter_mm: float = 10.0
    negative_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check(self.size >= 8, "sampling.size", "expected >= 8 pixels", self.size)
        _fraction("sampling.negative_fraction", self.negative_fraction)
        _fraction("sampling.liver_fraction", self.liver_fraction)
        _fraction("sampling.tumor_fraction", self.tumor_fraction)
        _fraction("sampling.positive_patch_fraction", self.positive_patch_fraction)
        _check(
            self.liver_fraction + self.tumor_fraction <= 1.0,
            "sampling.tumor_fraction",
            "liver_fraction + tumor_fraction must be <= 1",
            self.liver_fraction + self.tumor_fraction,
        )
        _check(
            self.margin_jitter_mm >= 0, "sampling.margin_jitter_mm", "expected >= 0", self.margin_jitter_mm
        )


@dataclass(frozen=True)
class SyntheticLesionsConfig:
    """Hook for ``liverseg.augment.lesions``: probability and parameters passed through."""

    p: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _fraction("augment.synthetic_lesions.p", self.p)


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation; each ``p_*`` is the probability of that transform per sample."""

    enabled: bool = True
    on_device: bool = False  # spatial/intensity steps on the training device (liverseg.training.gpu_augment)
    p_affine: float = 0.5
    rotate_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    p_elastic: float = 0.1
    elastic_spacing: tuple[float, float] = (24.0, 24.0)
    elastic_magnitude: tuple[float, float] = (1.0, 2.0)
    flip_left_right: bool = False  # anatomy is lateralised: off by default
    flip_anterior_posterior: bool = False
    p_flip: float = 0.5
    p_brightness: float = 0.15
    brightness: float = 0.1  # additive shift on the [0, 1] windowed image
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)  # multiplicative factor
    p_gamma: float = 0.15
    gamma: tuple[float, float] = (0.7, 1.5)
    p_noise: float = 0.15
    noise_std: float = 0.03
    p_blur: float = 0.1
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_lowres: float = 0.1
    lowres_zoom: tuple[float, float] = (0.5, 1.0)
    # scanner / phase / export variation in HU, in the data workers (liverseg.augment.scanner)
    p_phase: float = 0.0
    phase_gain: tuple[float, float] = (0.6, 1.3)  # enhancement gain about 40 HU
    phase_offset_hu: tuple[float, float] = (-25.0, 25.0)
    p_thick: float = 0.0
    thick_sigma: tuple[float, float] = (0.4, 1.2)  # Gaussian across the slab's slices
    p_sharpen: float = 0.0
    sharpen_amount: tuple[float, float] = (0.3, 1.0)
    p_export: float = 0.0  # full-quality cases only: round-trip through the slice-export recipe
    export_window_hu: tuple[float, float] = (-40.0, 160.0)
    export_quality: tuple[int, int] = (75, 95)
    synthetic_lesions: SyntheticLesionsConfig = field(default_factory=SyntheticLesionsConfig)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.startswith("p_"):
                _fraction(f"augment.{f.name}", getattr(self, f.name))
        for name in ("phase_gain", "phase_offset_hu", "thick_sigma", "sharpen_amount", "export_window_hu"):
            lo, hi = getattr(self, name)
            _check(lo <= hi, f"augment.{name}", "expected (low, high) with low <= high", getattr(self, name))
        lo, hi = self.export_quality
        _check(
            1 <= lo <= hi <= 95,
            "augment.export_quality",
            "expected JPEG qualities 1 <= low <= high <= 95",
            self.export_quality,
        )
        _check(self.phase_gain[0] > 0, "augment.phase_gain", "expected gains > 0", self.phase_gain)
        _check(self.thick_sigma[0] >= 0, "augment.thick_sigma", "expected sigmas >= 0", self.thick_sigma)


@dataclass(frozen=True)
class LossConfig:
    """Loss: ``ce``, ``dice``, ``dice_ce``, ``wbce`` (seed's 0.1/0.9 weighting), ``focal``, ``tversky``."""

    name: Literal["ce", "dice", "dice_ce", "wbce", "focal", "tversky"] = "dice_ce"
    class_weights: tuple[float, ...] | None = None
    include_background: bool = False
    bce_weights: tuple[float, float] = (0.1, 0.9)  # (negative, positive) voxel weights
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.3  # weight of false positives
    tversky_beta: float = 0.7  # weight of false negatives


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings; ``grad_clip`` is a max gradient norm (None: no clipping)."""

    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.99
    nesterov: bool = True
    grad_clip: float | None = 12.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, "optim.lr", "expected a learning rate > 0", self.lr)


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule (per step for cosine/poly, per validation for plateau) + linear warm-up."""

    name: Literal["cosine", "poly", "plateau", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    min_lr: float = 1e-6
    poly_power: float = 0.9
    plateau_factor: float = 0.5
    plateau_patience: int = 5


@dataclass(frozen=True)
class TrainLoopConfig:
    """Loop settings. ``budget_minutes`` stops training by wall clock; ``patience`` by validations."""

    batch_size: int = 16
    epochs: int = 50
    steps_per_epoch: int = 250
    budget_minutes: float | None = None
    patience: int | None = 20
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = True
    num_workers: int = 2
    val_every: int = 1
    val_batch_size: int = 16
    monitor: Literal["auto", "dice_liver", "dice_tumor", "dice_mean"] = "auto"

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "steps_per_epoch", "val_every", "val_batch_size"):
            _check(getattr(self, name) >= 1, f"train.{name}", "expected an integer >= 1", getattr(self, name))
        _check(self.num_workers >= 0, "train.num_workers", "expected >= 0", self.num_workers)
        if self.budget_minutes is not None:
            _check(
                self.budget_minutes > 0, "train.budget_minutes", "expected minutes > 0", self.budget_minutes
            )


@dataclass(frozen=True)
class TrainConfig:
    """A complete, resolved training configuration (one stage)."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)

    def __post_init__(self) -> None:
        if self.sampling.mode == "liver_box" and self.stage.stage != "tumor":
            raise ConfigError(
                f"sampling.mode: 'liver_box' is for stage 'tumor', got stage {self.stage.stage!r}"
            )

    @property
    def spec(self) -> StageSpec:
        return self.stage.spec()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML-safe) of every resolved value."""
        return to_dict(self)


@dataclass(frozen=True)
class CascadeConfig:
    """Two stage configs trained in sequence into ``RUN_DIR/stage1`` and ``RUN_DIR/stage2``."""

    stage1: TrainConfig
    stage2: TrainConfig
