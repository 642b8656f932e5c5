"""Dataset preparation (no torch): source layouts -> prepared datasets, splits, statistics.

* :func:`load_dataset` -> :class:`PreparedDataset` (``cases``, ``fingerprint``, ``splits``,
  ``load_case(id)``, ``fold(k)``): what training and evaluation use.
* :func:`prepare_dataset` (``liverseg data prepare``), :func:`split_dataset` /
  :func:`make_splits` (``liverseg data split``), :func:`stats_table` (``liverseg data stats``).
"""

from liverseg.data.cases import LayoutOptions, LoadedCase, SourceCase
from liverseg.data.dataset import CaseInfo, PreparedDataset, Splits, compute_fingerprint, load_dataset
from liverseg.data.layouts import LAYOUTS, discover_cases
from liverseg.data.prepare import prepare_dataset
from liverseg.data.splits import make_splits, split_dataset
from liverseg.data.stats import case_statistics, stats_table

__all__ = [
    "LAYOUTS",
    "CaseInfo",
    "LayoutOptions",
    "LoadedCase",
    "PreparedDataset",
    "SourceCase",
    "Splits",
    "case_statistics",
    "compute_fingerprint",
    "discover_cases",
    "load_dataset",
    "make_splits",
    "prepare_dataset",
    "split_dataset",
    "stats_table",
]
