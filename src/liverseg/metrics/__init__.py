"""Evaluation metrics for liver and liver-tumor segmentation (numpy/scipy/cc3d only, no torch).

Every voxel metric is a pure function ``f(pred, ref, spacing_mm=None) -> float`` of two binary
masks of one shape; ``spacing_mm`` is the voxel size in mm in array order (``(z, y, x)``, as
:attr:`liverseg.io.Volume.spacing`). :func:`evaluate_case` evaluates a whole label map (liver =
label >= 1, tumor = label == 2, plus lesion detection); :func:`summarize_cases` and
:class:`GlobalDice` aggregate over a dataset; ``liverseg evaluate`` runs it on folders.

Empty-mask policy
-----------------
(README-ready text; the same rules hold in every function and are tested.)

Empty masks are normal in liver-tumor segmentation: many scans have no tumor. liverseg scores
them as follows.

| case | Dice, Jaccard | VOE | RVD | precision | recall | ASSD, MSSD, HD95 |
|---|---|---|---|---|---|---|
| both empty | 1 | 0 | 0 | 1 | 1 | 0 mm |
| reference empty, prediction not | 0 | 1 | +inf | 0 | NaN | inf |
| prediction empty, reference not | 0 | 1 | -1 | NaN | 0 | inf |

* "Both empty" is a perfect answer and gets the perfect value of every metric.
* Otherwise the formula applies. A ratio 0/0 is **NaN** (undefined: precision of an empty
  prediction, recall against an empty reference); a positive number over 0 is **+inf** (RVD
  against an empty reference).
* A surface distance to an empty mask is **+inf** (unbounded), never a made-up finite penalty.
* Specificity and accuracy are always defined (except specificity when the reference fills every
  voxel).
* Lesion detection uses the same rules on lesion counts; its per-size recalls are NaN when a
  case has no reference lesion of that size.
* Aggregation (``summarize_cases``, ``liverseg evaluate``): mean, std (ddof 1), median, min, max
  over the **finite** values only; each statistic reports ``n`` (cases used) and ``n_excluded``
  (cases with NaN/inf left out), so "tumor ASSD 4.1 +- 2.0 mm (3 excluded)" reads honestly.
  The global Dice (``2 sum|P∩R| / sum(|P|+|R|)``) and the lesion detection rates are computed
  from summed counts and need no exclusion. In JSON output inf/NaN are written as ``null``.
"""

from liverseg.metrics.diameters import AxialDiameters, axial_diameters, longest_axial_diameter_mm
from liverseg.metrics.evaluate import CLASSES, evaluate_case, flatten_case, summarize_cases
from liverseg.metrics.lesions import MEASURABLE_MM, connected_lesions, lesion_detection
from liverseg.metrics.overlap import (
    ConfusionCounts,
    GlobalDice,
    accuracy,
    confusion_counts,
    dice,
    jaccard,
    precision,
    recall,
    rvd,
    sensitivity,
    specificity,
    voe,
)
from liverseg.metrics.surface import (
    assd,
    hausdorff,
    hd95,
    mssd,
    surface_distances,
    surface_metrics,
    surface_voxels,
)

__all__ = [
    "CLASSES",
    "MEASURABLE_MM",
    "AxialDiameters",
    "ConfusionCounts",
    "GlobalDice",
    "accuracy",
    "assd",
    "axial_diameters",
    "confusion_counts",
    "connected_lesions",
    "dice",
    "evaluate_case",
    "flatten_case",
    "hausdorff",
    "hd95",
    "jaccard",
    "lesion_detection",
    "longest_axial_diameter_mm",
    "mssd",
    "precision",
    "recall",
    "rvd",
    "sensitivity",
    "specificity",
    "summarize_cases",
    "surface_distances",
    "surface_metrics",
    "surface_voxels",
    "voe",
]
