"""Segmenting a cohort: many CTs, resumable, on this machine or a Ray cluster.

* :mod:`~liverseg.cohort.cases`: a folder of cases or a manifest CSV -> :class:`Case` list.
* :mod:`~liverseg.cohort.worker`: one case on one worker (:func:`liverseg.inference.run_segment`).
* :mod:`~liverseg.cohort.engines`: ``local`` (in this process) and ``ray`` (actor pool).
* :mod:`~liverseg.cohort.ledger`: which cases are finished, from which input, by which model.
* :mod:`~liverseg.cohort.table`: ``cohort.csv`` / ``cohort.parquet``, one row per case.
* :mod:`~liverseg.cohort.run`: the driver, :func:`run_cohort`.

Deployment on a cluster: docs/cohort.md. Ray is optional (``pip install 'liverseg[cluster]'``)
and imported only by the Ray engine.
"""

from liverseg.cohort.cases import Case, discover_cases, is_cohort_input, read_manifest
from liverseg.cohort.engines import ENGINES, LocalEngine, make_engine
from liverseg.cohort.run import CohortConfig, CohortSummary, run_cohort
from liverseg.cohort.table import COLUMNS
from liverseg.cohort.worker import CaseWorker, WorkerSettings

__all__ = [
    "COLUMNS",
    "ENGINES",
    "Case",
    "CaseWorker",
    "CohortConfig",
    "CohortSummary",
    "LocalEngine",
    "WorkerSettings",
    "discover_cases",
    "is_cohort_input",
    "make_engine",
    "read_manifest",
    "run_cohort",
]
