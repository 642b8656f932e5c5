"""Engines run the cases of a cohort and yield their outcomes as they finish.

* ``local``: one worker in this process, case after case (:class:`LocalEngine`).
* ``ray``: a pool of Ray actors on a local or remote cluster
  (:class:`liverseg.cohort.ray_engine.RayEngine`, optional dependency ``liverseg[cluster]``).

An engine's :meth:`run` is a generator; closing it (normally, on an error or on Ctrl-C) stops
the workers. Cases in flight when it is closed are simply not finished: nothing of them is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from liverseg.cohort.worker import CaseOutcome, CaseTask, CaseWorker, WorkerSettings
from liverseg.errors import LiversegError
from liverseg.extras import require

log = logging.getLogger(__name__)

__all__ = ["ENGINES", "Engine", "LocalEngine", "make_engine"]

ENGINES = ("local", "ray")


class Engine(Protocol):
    name: str

    def run(self, tasks: Sequence[CaseTask], settings: WorkerSettings) -> Iterator[CaseOutcome]:
        """Segment ``tasks``; yield one outcome per task, in the order they finish."""
        ...

    def worker_stats(self) -> list[dict[str, Any]]:
        """Per worker: cases, model loads, CPU and wall seconds, peak RSS (after :meth:`run`)."""
        ...


class LocalEngine:
    """One worker in this process: the model is loaded once, then the cases run one after another."""

    name = "local"

    def __init__(self) -> None:
        self._stats: list[dict[str, Any]] = []

    def run(self, tasks: Sequence[CaseTask], settings: WorkerSettings) -> Iterator[CaseOutcome]:
        if not tasks:
            return
        worker = CaseWorker(settings)  # a model that cannot load is an error of the whole run
        try:
            for task in tasks:
                yield worker.segment(task)
        finally:
            self._stats = [worker.stats()]

    def worker_stats(self) -> list[dict[str, Any]]:
        return list(self._stats)


def make_engine(name: str, **ray_options: Any) -> Engine:
    """The engine called ``name`` (``local`` or ``ray``); ``ray_options`` go to the Ray engine."""
    if name == "local":
        given = {k: v for k, v in ray_options.items() if v is not None}
        if given:
            raise LiversegError(
                f"{', '.join('--' + k.replace('_', '-') for k in sorted(given))} need(s) --engine ray"
            )
        return LocalEngine()
    if name == "ray":
        # a lazy boundary: ray is the cluster extra's, imported only for --engine ray
        require("cluster", "--engine ray")
        from liverseg.cohort.ray_engine import RayEngine

        return RayEngine(**{k: v for k, v in ray_options.items() if v is not None})
    raise LiversegError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")
