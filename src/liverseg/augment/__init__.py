"""Synthetic liver lesions for data augmentation (numpy/scipy only, no torch).

* :func:`insert_lesions` -> :class:`LesionInsertion`: lesions inserted into a real CT's liver,
  label updated to 2, one :class:`LesionRecord` per lesion (:mod:`liverseg.augment.lesions`).
* :class:`LesionParams`: the random ranges, a frozen pydantic model (``LesionParams.from_dict``).
* :class:`SyntheticLesionTransform`, :func:`from_config`, :func:`make_transform`,
  :func:`has_real_tumor`: the training-time transform for 2.5D slabs and 3D volumes.
* :mod:`liverseg.augment.realism`: size, contrast, edge and texture statistics of lesions, used by
  ``liverseg lesion-realism`` to compare synthetic with real tumors.
"""

from liverseg.augment.lesions import LesionInsertion, LesionRecord, SkippedLesion, insert_lesions
from liverseg.augment.params import LesionParams
from liverseg.augment.transforms import SyntheticLesionTransform, from_config, has_real_tumor, make_transform

__all__ = [
    "LesionInsertion",
    "LesionParams",
    "LesionRecord",
    "SkippedLesion",
    "SyntheticLesionTransform",
    "from_config",
    "has_real_tumor",
    "insert_lesions",
    "make_transform",
]
