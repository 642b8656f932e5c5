"""Reading and writing CT volumes and label maps (no torch here)."""

from liverseg.io.volume import Reorientation, Volume, to_canonical

__all__ = ["Reorientation", "Volume", "to_canonical"]
