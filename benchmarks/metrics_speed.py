"""Speed of the evaluation metrics on a CT-sized volume (prints a table; not a test).

Target (issue): surface metrics on a 512x512x200 volume in under 2 s on the project's 2-core
machine. The volume holds a liver-sized ellipsoid (reference) and a shifted, slightly resized one
(prediction) at 0.7 x 0.7 x 2.0 mm, plus two tumors, so the union bounding box is realistic
(~110 x 300 x 340 voxels). Run: ``.venv/bin/python benchmarks/metrics_speed.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from liverseg.metrics import dice, evaluate_case, lesion_detection, surface_metrics

SPACING = (2.0, 0.7, 0.7)


def make_case(shape: tuple[int, int, int] = (200, 512, 512)) -> tuple[np.ndarray, np.ndarray]:
    """Reference and predicted label maps (0/1/2) of ``shape``."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    sz, sy, sx = SPACING

    def ellipsoid(c: tuple[float, float, float], r: tuple[float, float, float]) -> np.ndarray:
        return ((z - c[0]) * sz / r[0]) ** 2 + ((y - c[1]) * sy / r[1]) ** 2 + (
            (x - c[2]) * sx / r[2]
        ) ** 2 < 1

    ref = ellipsoid((100, 250, 230), (110, 100, 120)).astype(np.uint8)
    pred = ellipsoid((102, 255, 228), (108, 102, 118)).astype(np.uint8)
    ref[ellipsoid((110, 240, 200), (15, 20, 18))] = 2
    ref[ellipsoid((80, 300, 260), (4, 4, 4))] = 2
    pred[ellipsoid((111, 242, 202), (14, 19, 18))] = 2
    return pred, ref


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (the best is shown)")
    parser.add_argument("--no-edt", action="store_true", help="skip the slow dense-EDT reference row")
    args = parser.parse_args()
    pred, ref = make_case()
    liver_p, liver_r = pred >= 1, ref >= 1
    rows: list[tuple[str, Callable[[], object]]] = [
        ("dice (liver)", lambda: dice(liver_p, liver_r)),
        ("surface_metrics kdtree (liver)", lambda: surface_metrics(liver_p, liver_r, SPACING)),
        ("lesion_detection (tumor)", lambda: lesion_detection(pred == 2, ref == 2, SPACING)),
        ("evaluate_case (all)", lambda: evaluate_case(pred, ref, SPACING)),
    ]
    if not args.no_edt:
        rows.insert(
            2,
            ("surface_metrics edt (liver)", lambda: surface_metrics(liver_p, liver_r, SPACING, method="edt")),
        )
    print(f"volume {pred.shape} (z, y, x), spacing {SPACING} mm, best of {args.repeat}")
    print(f"{'what':<34}{'seconds':>10}")
    print("-" * 44)
    for name, fn in rows:
        print(f"{name:<34}{timed(fn, args.repeat):>10.3f}")


if __name__ == "__main__":
    main()
