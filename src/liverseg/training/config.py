"""Typed training configuration: frozen pydantic models loaded from YAML, ``--set`` overrides.

A config file has the sections below (every key optional, defaults shown by the models)::

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

Every section is a frozen pydantic model (:class:`liverseg.frozen.FrozenModel`): unknown keys and
wrong types raise :class:`~liverseg.errors.ConfigError` naming the dotted field, what was expected
and what was received (loading, ``--set`` overrides and cascades: :mod:`liverseg.training.config_io`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from liverseg.errors import ConfigError
from liverseg.frozen import Bool, FieldError, Float, FrozenModel, Int, Str, check
from liverseg.preprocessing import get_window
from liverseg.training.slabs import StageSpec, default_classes

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


def _fraction(name: str, value: float) -> None:
    check(0.0 <= value <= 1.0, name, "expected a probability in [0, 1]", value)


class DataConfig(FrozenModel):
    """Where the cases come from. ``fold`` indexes ``dataset.json`` splits; explicit ids override it."""

    dir: Str | None = None  # prepared dataset folder (may be absent when training from the cache)
    cache_dir: Str = "cache/train"
    fold: Int | None = 0
    train_ids: tuple[Str, ...] | None = None
    val_ids: tuple[Str, ...] | None = None

    @model_validator(mode="after")
    def _validate(self) -> DataConfig:
        if self.fold is not None:
            check(self.fold >= 0, "fold", "expected a fold index >= 0", self.fold)
        return self


class ModelConfig(FrozenModel):
    """Network name (``liverseg.models.MODELS``), its keyword arguments, and optionally a
    checkpoint whose weights initialise the network (fine-tuning, e.g. on exported corrections)."""

    name: Str = "unet"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    init_from: Str | None = None


class StageConfig(FrozenModel):
    """The stage's input definition; becomes the checkpoint's :class:`StageSpec`."""

    stage: Literal["liver", "tumor", "single"] = "single"
    classes: tuple[Str, ...] | None = None  # default from the stage
    context_slices: Int = 1
    spacing_zyx: tuple[Float | None, Float, Float] = (None, 1.5, 1.5)
    window: tuple[Float, Float] | Str = (50.0, 400.0)  # (level, width) HU or a name of preprocessing.WINDOWS
    crop_margin_mm: Float = 10.0

    @model_validator(mode="after")
    def _validate(self) -> StageConfig:
        check(self.context_slices >= 0, "context_slices", "expected k >= 0", self.context_slices)
        z, y, x = self.spacing_zyx
        check(
            (z is None or z > 0) and y > 0 and x > 0,
            "spacing_zyx",
            "expected positive mm",
            self.spacing_zyx,
        )
        check(self.window_hu[1] > 0, "window", "expected (level, width) with width > 0", self.window)
        check(self.crop_margin_mm >= 0, "crop_margin_mm", "expected >= 0 mm", self.crop_margin_mm)
        if self.classes is not None:
            want = default_classes(self.stage)
            check(
                tuple(self.classes) == want,
                "classes",
                f"stage {self.stage!r} needs {list(want)}",
                list(self.classes),
            )
        return self

    @property
    def window_hu(self) -> tuple[float, float]:
        """``(level, width)`` in HU (a named window resolved through ``liverseg.preprocessing.WINDOWS``)."""
        if isinstance(self.window, str):
            try:
                return get_window(self.window)
            except ConfigError as exc:
                raise FieldError("window", str(exc)) from exc
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


class SamplingConfig(FrozenModel):
    """How training samples are drawn (see :mod:`liverseg.training.sampling`).

    ``mode``: ``slice`` (whole slices, random crop/pad to ``size``), ``patch`` (``size`` patches,
    a fraction centred on foreground) or ``liver_box`` (the liver box with a jittered margin).
    ``negative_fraction``: share of samples that are a synthetic water phantom with an all-background
    label (a hard negative for the liver stage, :mod:`liverseg.synth.negatives`), drawn first.
    """

    mode: Literal["slice", "patch", "liver_box"] = "slice"
    size: Int = 256
    liver_fraction: Float = 0.5
    tumor_fraction: Float = 0.25
    positive_patch_fraction: Float = 0.7
    margin_jitter_mm: Float = 10.0
    negative_fraction: Float = 0.0

    @model_validator(mode="after")
    def _validate(self) -> SamplingConfig:
        check(self.size >= 8, "size", "expected >= 8 pixels", self.size)
        _fraction("negative_fraction", self.negative_fraction)
        _fraction("liver_fraction", self.liver_fraction)
        _fraction("tumor_fraction", self.tumor_fraction)
        _fraction("positive_patch_fraction", self.positive_patch_fraction)
        check(
            self.liver_fraction + self.tumor_fraction <= 1.0,
            "tumor_fraction",
            "liver_fraction + tumor_fraction must be <= 1",
            self.liver_fraction + self.tumor_fraction,
        )
        check(self.margin_jitter_mm >= 0, "margin_jitter_mm", "expected >= 0", self.margin_jitter_mm)
        return self


class SyntheticLesionsConfig(FrozenModel):
    """Hook for ``liverseg.augment.lesions``: probability and parameters passed through."""

    p: Float = 0.0
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _validate(self) -> SyntheticLesionsConfig:
        _fraction("p", self.p)
        return self


class AugmentConfig(FrozenModel):
    """On-the-fly augmentation; each ``p_*`` is the probability of that transform per sample."""

    enabled: Bool = True
    on_device: Bool = (
        False  # spatial/intensity steps on the training device (liverseg.training.augment_apply)
    )
    p_affine: Float = 0.5
    rotate_deg: Float = 15.0
    scale_range: tuple[Float, Float] = (0.85, 1.15)
    p_elastic: Float = 0.1
    elastic_spacing: tuple[Float, Float] = (24.0, 24.0)
    elastic_magnitude: tuple[Float, Float] = (1.0, 2.0)
    flip_left_right: Bool = False  # anatomy is lateralised: off by default
    flip_anterior_posterior: Bool = False
    p_flip: Float = 0.5
    p_brightness: Float = 0.15
    brightness: Float = 0.1  # additive shift on the [0, 1] windowed image
    p_contrast: Float = 0.15
    contrast: tuple[Float, Float] = (0.75, 1.25)  # multiplicative factor
    p_gamma: Float = 0.15
    gamma: tuple[Float, Float] = (0.7, 1.5)
    p_noise: Float = 0.15
    noise_std: Float = 0.03
    p_blur: Float = 0.1
    blur_sigma: tuple[Float, Float] = (0.5, 1.0)
    p_lowres: Float = 0.1
    lowres_zoom: tuple[Float, Float] = (0.5, 1.0)
    # scanner / phase / export variation in HU, in the data workers (liverseg.augment.scanner)
    p_phase: Float = 0.0
    phase_gain: tuple[Float, Float] = (0.6, 1.3)  # enhancement gain about 40 HU
    phase_offset_hu: tuple[Float, Float] = (-25.0, 25.0)
    p_thick: Float = 0.0
    thick_sigma: tuple[Float, Float] = (0.4, 1.2)  # Gaussian across the slab's slices
    p_sharpen: Float = 0.0
    sharpen_amount: tuple[Float, Float] = (0.3, 1.0)
    p_export: Float = 0.0  # full-quality cases only: round-trip through the slice-export recipe
    export_window_hu: tuple[Float, Float] = (-40.0, 160.0)
    export_quality: tuple[Int, Int] = (75, 95)
    synthetic_lesions: SyntheticLesionsConfig = Field(default_factory=SyntheticLesionsConfig)

    @model_validator(mode="after")
    def _validate(self) -> AugmentConfig:
        for name in type(self).model_fields:
            if name.startswith("p_"):
                _fraction(name, getattr(self, name))
        for name in ("phase_gain", "phase_offset_hu", "thick_sigma", "sharpen_amount", "export_window_hu"):
            lo, hi = getattr(self, name)
            check(lo <= hi, name, "expected (low, high) with low <= high", getattr(self, name))
        lo, hi = self.export_quality
        check(
            1 <= lo <= hi <= 95,
            "export_quality",
            "expected JPEG qualities 1 <= low <= high <= 95",
            self.export_quality,
        )
        check(self.phase_gain[0] > 0, "phase_gain", "expected gains > 0", self.phase_gain)
        check(self.thick_sigma[0] >= 0, "thick_sigma", "expected sigmas >= 0", self.thick_sigma)
        return self


class LossConfig(FrozenModel):
    """Loss: ``ce``, ``dice``, ``dice_ce``, ``wbce`` (seed's 0.1/0.9 weighting), ``focal``, ``tversky``."""

    name: Literal["ce", "dice", "dice_ce", "wbce", "focal", "tversky"] = "dice_ce"
    class_weights: tuple[Float, ...] | None = None
    include_background: Bool = False
    bce_weights: tuple[Float, Float] = (0.1, 0.9)  # (negative, positive) voxel weights
    focal_gamma: Float = 2.0
    tversky_alpha: Float = 0.3  # weight of false positives
    tversky_beta: Float = 0.7  # weight of false negatives


class OptimConfig(FrozenModel):
    """Optimiser settings; ``grad_clip`` is a max gradient norm (None: no clipping)."""

    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: Float = 1e-3
    weight_decay: Float = 1e-4
    momentum: Float = 0.99
    nesterov: Bool = True
    grad_clip: Float | None = 12.0

    @model_validator(mode="after")
    def _validate(self) -> OptimConfig:
        check(self.lr > 0, "lr", "expected a learning rate > 0", self.lr)
        return self


class ScheduleConfig(FrozenModel):
    """Learning-rate schedule (per step for cosine/poly, per validation for plateau) + linear warm-up."""

    name: Literal["cosine", "poly", "plateau", "constant"] = "cosine"
    warmup_epochs: Float = 0.0
    min_lr: Float = 1e-6
    poly_power: Float = 0.9
    plateau_factor: Float = 0.5
    plateau_patience: Int = 5


class TrainLoopConfig(FrozenModel):
    """Loop settings. ``budget_minutes`` stops training by wall clock; ``patience`` by validations."""

    batch_size: Int = 16
    epochs: Int = 50
    steps_per_epoch: Int = 250
    budget_minutes: Float | None = None
    patience: Int | None = 20
    seed: Int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: Bool = True
    num_workers: Int = 2
    val_every: Int = 1
    val_batch_size: Int = 16
    monitor: Literal["auto", "dice_liver", "dice_tumor", "dice_mean"] = "auto"

    @model_validator(mode="after")
    def _validate(self) -> TrainLoopConfig:
        for name in ("batch_size", "epochs", "steps_per_epoch", "val_every", "val_batch_size"):
            check(getattr(self, name) >= 1, name, "expected an integer >= 1", getattr(self, name))
        check(self.num_workers >= 0, "num_workers", "expected >= 0", self.num_workers)
        if self.budget_minutes is not None:
            check(self.budget_minutes > 0, "budget_minutes", "expected minutes > 0", self.budget_minutes)
        return self


class TrainConfig(FrozenModel):
    """A complete, resolved training configuration (one stage)."""

    name: Str = "run"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    stage: StageConfig = Field(default_factory=StageConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainLoopConfig = Field(default_factory=TrainLoopConfig)

    @model_validator(mode="after")
    def _validate(self) -> TrainConfig:
        if self.sampling.mode == "liver_box" and self.stage.stage != "tumor":
            raise FieldError(
                "sampling.mode", f"'liver_box' is for stage 'tumor', got stage {self.stage.stage!r}"
            )
        return self

    @property
    def spec(self) -> StageSpec:
        return self.stage.spec()


class CascadeConfig(FrozenModel):
    """Two stage configs trained in sequence into ``RUN_DIR/stage1`` and ``RUN_DIR/stage2``."""

    stage1: TrainConfig
    stage2: TrainConfig
