"""Inference: the cascade predictor, post-processing and the ``segment`` entry points."""

from liverseg.inference.api import SegmentOptions, SegmentResult, run_segment, segment_volume

__all__ = ["SegmentOptions", "SegmentResult", "run_segment", "segment_volume"]
