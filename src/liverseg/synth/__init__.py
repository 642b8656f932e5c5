"""Synthetic CT phantoms with liver and tumor labels (for tests, smoke training and the fallback demo).

* :func:`make_phantom` -> ``(image Volume, label Volume, info dict)``, deterministic per seed.
* :func:`write_phantom_dataset`: many phantoms as a prepared dataset (``liverseg synth``).

Phantom volumes carry ``metadata["synthetic"] = True``; they are never passed off as real data.
"""

from liverseg.synth.dataset import write_phantom_dataset
from liverseg.synth.phantom import DEFAULT_SHAPE, DEFAULT_SPACING, GENERATOR, make_phantom

__all__ = ["DEFAULT_SHAPE", "DEFAULT_SPACING", "GENERATOR", "make_phantom", "write_phantom_dataset"]
