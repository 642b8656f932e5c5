"""Fixtures for the I/O tests: tiny synthetic DICOM CT series written with pydicom."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from _helpers_dicom import ct_slice

SeriesFactory = Callable[..., tuple[Path, np.ndarray, list[str]]]


@pytest.fixture
def make_series(tmp_path: Path) -> SeriesFactory:
    """Factory writing a synthetic CT series; returns (folder, expected HU (z,y,x), file names).

    ``z_positions`` are the slice positions along the normal (mm); files are written in a shuffled
    order with names ``name_fmt.format(i)`` where ``i`` is the slice's rank in a shuffled list,
    so file-name order never equals position order. Expected HU are in ascending-position order.
    """

    def factory(
        folder: str = "series",
        *,
        z_positions: Sequence[float] = (0.0, 2.5, 5.0, 7.5, 10.0),
        shape: tuple[int, int] = (6, 7),
        orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
        origin_xy: tuple[float, float] = (-20.0, 30.0),
        slope: float = 1.0,
        intercept: float = -1024.0,
        name_fmt: str = "image_{}",
        seed: int = 0,
        series_uid: str | None = None,
        modality: str = "CT",
    ) -> tuple[Path, np.ndarray, list[str]]:
        rng = np.random.default_rng(seed)
        out = tmp_path / folder
        out.mkdir(parents=True, exist_ok=True)
        row = np.asarray(orientation[:3], float)
        col = np.asarray(orientation[3:], float)
        normal = np.cross(row, col)
        base = row * origin_xy[0] + col * origin_xy[1]
        series_uid = series_uid or generate_uid()
        study_uid, for_uid = generate_uid(), generate_uid()
        stored = rng.integers(0, 2000, size=(len(z_positions), *shape)).astype(np.uint16)
        names = [""] * len(z_positions)
        ranks = rng.permutation(len(z_positions))
        for k, z in enumerate(z_positions):
            ds = ct_slice(
                stored[k],
                position=base + normal * z,
                orientation=orientation,
                series_uid=series_uid,
                study_uid=study_uid,
                for_uid=for_uid,
                instance=k + 1,
                slope=slope,
                intercept=intercept,
                modality=modality,
            )
            names[k] = name_fmt.format(int(ranks[k]))
            ds.save_as(out / names[k], enforce_file_format=True)
        order = np.argsort(np.asarray(z_positions), kind="stable")
        hu = stored.astype(np.float64) * slope + intercept
        return out, hu[order].astype(np.float32), [names[i] for i in order]

    return factory
