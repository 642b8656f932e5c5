"""Preprocessing of CT volumes (numpy/scipy/SimpleITK only, no torch).

* :mod:`~liverseg.preprocessing.intensity`: HU windows (named presets), clipping, z-score and
  min-max normalisation.
* :mod:`~liverseg.preprocessing.spatial`: resampling to a spacing or shape, with the exact inverse.
* :mod:`~liverseg.preprocessing.crop`: body / label bounding boxes, crop with exact geometry and
  its inverse, empty-slice removal.
* :mod:`~liverseg.preprocessing.checks`: "is this CT in HU?", size limits and a plausible field of
  view for inputs.
"""

from liverseg.preprocessing.checks import (
    DEFAULT_MAX_VOXELS,
    check_ct_intensities,
    check_field_of_view,
    check_volume_size,
)
from liverseg.preprocessing.crop import (
    Box,
    body_bbox,
    box_from_json,
    box_to_json,
    crop,
    crop_to_box,
    grow_box,
    label_bbox,
    nonempty_slices,
    normalize_box,
    uncrop,
)
from liverseg.preprocessing.intensity import (
    WINDOWS,
    clip_hu,
    get_window,
    normalize_minmax,
    normalize_zscore,
    window,
    window_bounds,
)
from liverseg.preprocessing.spatial import (
    ResampleInfo,
    resample_array,
    resample_to_shape,
    resample_to_spacing,
)

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "WINDOWS",
    "Box",
    "ResampleInfo",
    "body_bbox",
    "box_from_json",
    "box_to_json",
    "check_ct_intensities",
    "check_field_of_view",
    "check_volume_size",
    "clip_hu",
    "crop",
    "crop_to_box",
    "get_window",
    "grow_box",
    "label_bbox",
    "nonempty_slices",
    "normalize_box",
    "normalize_minmax",
    "normalize_zscore",
    "resample_array",
    "resample_to_shape",
    "resample_to_spacing",
    "uncrop",
    "window",
    "window_bounds",
]
