"""Inference: the cascade predictor, post-processing and the ``segment`` entry points."""

from liverseg.inference.api import (
    LoadedModel,
    SegmentOptions,
    SegmentResult,
    prepare_model,
    run_segment,
    segment_volume,
)

__all__ = ["LoadedModel", "SegmentOptions", "SegmentResult", "prepare_model", "run_segment", "segment_volume"]
