"""Impossible spacings: a CT field of view no scanner makes, and resampled grids too large for memory."""

from __future__ import annotations

import numpy as np
import pytest

from liverseg.errors import InputError
from liverseg.io import Volume
from liverseg.preprocessing import (
    check_field_of_view,
    resample_array,
    resample_to_shape,
    resample_to_spacing,
)


def test_impossible_spacing_is_refused_naming_the_field_of_view():
    vol = Volume(np.zeros((6, 16, 16), np.float32), (50.0, 50.0, 50.0), metadata={"source": "ct.nii.gz"})
    with pytest.raises(InputError, match=r"too large to resample") as err:
        resample_to_spacing(vol, (1.0, 1.0, 1.0), order=1)
    msg = str(err.value)
    assert msg.startswith("ct.nii.gz: ") and "300 x 800 x 800 mm" in msg and "(300, 800, 800)" in msg


def test_resample_to_shape_and_raw_arrays_are_bounded_too():
    vol = Volume(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(InputError, match="too large to resample"):
        resample_to_shape(vol, (1024, 1024, 1024), order=0)
    with pytest.raises(InputError, match="too large to resample"):
        resample_array(np.zeros((4, 4, 4), np.float32), (0.001,) * 3, (0.0,) * 3, (2000, 2000, 2000), order=1)


@pytest.mark.parametrize(
    "shape, spacing, ok",
    [
        ((100, 512, 512), (2.5, 0.78, 0.78), True),  # abdominal CT, 40 cm field of view
        ((1200, 512, 512), (2.0, 1.36, 1.36), True),  # whole body, 70 cm, 2.4 m
        ((78, 177, 248), (5.0, 5.0, 5.0), False),  # a wrong spacing: 0.9 x 1.2 m in-plane
        ((2000, 64, 64), (2.0, 1.0, 1.0), False),  # 4 m of slices
    ],
)
def test_field_of_view_must_be_one_a_ct_scanner_makes(shape, spacing, ok):
    vol = Volume(np.broadcast_to(np.zeros(1, np.int16), shape), spacing, metadata={"source": "ct.nii"})
    if ok:
        check_field_of_view(vol)
    else:
        with pytest.raises(InputError, match=r"^ct\.nii: expected a CT field of view"):
            check_field_of_view(vol)
