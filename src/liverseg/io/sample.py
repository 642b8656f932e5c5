"""The bundled demo case (CHAOS CT case 3 derivative, CC BY-SA 4.0; see sample/ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

from liverseg.errors import InputError
from liverseg.io.readers import read_volume
from liverseg.io.volume import Volume

__all__ = ["SAMPLE_IMAGE", "SAMPLE_LABEL", "load_sample"]

_SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
#: int16 HU CT, 78 slices, ~2 mm x 1.4 mm x 1.4 mm
SAMPLE_IMAGE = _SAMPLE_DIR / "chaos_ct3_image.nii.gz"
#: uint8 label map on the same grid, 1 = liver (no tumor in this case)
SAMPLE_LABEL = _SAMPLE_DIR / "chaos_ct3_label.nii.gz"


def load_sample() -> tuple[Volume, Volume]:
    """Return the bundled ``(image, label)``: image float32 HU ``(z, y, x)``, label uint8 0/1."""
    for path in (SAMPLE_IMAGE, SAMPLE_LABEL):
        if not path.is_file():
            raise InputError("the bundled sample is missing from this installation", path)
    return read_volume(SAMPLE_IMAGE), read_volume(SAMPLE_LABEL, kind="label")
