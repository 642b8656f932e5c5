"""liverseg: liver and liver-tumor segmentation in abdominal CT.

Labels everywhere in the package: 0 background, 1 liver, 2 tumor.
"""

from __future__ import annotations

__version__ = "0.1.0"

LABELS: dict[int, str] = {0: "background", 1: "liver", 2: "tumor"}

__all__ = ["LABELS", "__version__"]
