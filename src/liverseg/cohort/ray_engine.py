"""The Ray engine: a pool of long-lived :class:`~liverseg.cohort.worker.CaseWorker` actors.

Each actor loads the model once and then segments case after case; the driver keeps one case
in flight per actor and yields the outcomes as they arrive. Resources per actor: ``num_cpus``,
``num_gpus`` (fractions allowed: two workers can share one GPU) and ``memory`` (Ray schedules
no more actors on a node than its memory holds; on CPU workers the bound is also enforced in
the process, see :func:`liverseg.cohort.worker.limit_memory`).

Lost workers: an actor whose process dies (killed, out of memory, a crash, a lost node) is
restarted by Ray (``max_restarts=-1``, on another node if its own is gone) and the case it held
is tried once more (``max_task_retries=1``); a case that kills its worker twice is marked failed
and the run goes on. A worker that cannot start (its model does not load) stops the run with the
reason; so does a cluster where no worker can be placed within ``start_timeout_s``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from liverseg.cohort.worker import CaseOutcome, CaseTask, CaseWorker, WorkerSettings, one_line
from liverseg.errors import LiversegError
from liverseg.extras import require

require("cluster", "--engine ray (liverseg.cohort.ray_engine)")  # before importing ray

import ray  # noqa: E402
from ray.exceptions import GetTimeoutError, RayActorError, RayError  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["RayEngine"]

TASK_RETRIES = 1  # a case whose worker dies is tried this many more times
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # results are a few MB per case in flight
MAX_WORKER_FAILURES = 3  # consecutive deaths after which a worker is retired


class RayEngine:
    """Run a cohort on a Ray cluster.

    Args:
        address: ``auto`` (the cluster this machine belongs to, as ``ray start`` set it up),
            ``HOST:PORT`` of a head node, or None: start a local Ray on this machine. When Ray is
            already initialised in this process, that is used.
        num_workers: actors to start; None: as many as the cluster's CPUs (GPUs, memory) hold.
        cpus_per_worker: CPUs per actor (also the inference threads of a CPU worker).
        gpus_per_worker: GPUs per actor, fractions allowed (0: CPU workers).
        memory_per_worker: GB of memory per actor (scheduling, and a cap on CPU workers).
        start_timeout_s: how long to wait for the first worker to be placed and load its model.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_workers: int | None = None,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        memory_per_worker: float = 4.0,
        start_timeout_s: float = 600.0,
    ) -> None:
        if num_workers is not None and num_workers < 1:
            raise LiversegError(f"--num-workers must be >= 1, got {num_workers}")
        if cpus_per_worker <= 0 or gpus_per_worker < 0 or memory_per_worker <= 0:
            raise LiversegError(
                "--cpus-per-worker and --memory-per-worker must be > 0 and --gpus-per-worker >= 0, got "
                f"{cpus_per_worker}, {memory_per_worker} and {gpus_per_worker}"
            )
        self.address = address
        self.num_workers = num_workers
        self.cpus = float(cpus_per_worker)
        self.gpus = float(gpus_per_worker)
        self.memory_bytes = int(memory_per_worker * 1e9)
        self.start_timeout_s = start_timeout_s
        self._stats: list[dict[str, Any]] = []

    def worker_stats(self) -> list[dict[str, Any]]:
        return list(self._stats)

    def run(self, tasks: Sequence[CaseTask], settings: WorkerSettings) -> Iterator[CaseOutcome]:
        if not tasks:
            return
        self._check_device(settings)
        started_here = self._connect()
        actors: list[Any] = []
        try:
            count = self._worker_count(len(tasks))
            worker_cls = ray.remote(CaseWorker)
            options: dict[str, Any] = {
                "num_cpus": self.cpus,
                "num_gpus": self.gpus,
                "memory": self.memory_bytes,
                "max_restarts": -1,
                "max_task_retries": TASK_RETRIES,
            }
            cap = self.memory_bytes if self.gpus == 0 else None  # see docs/cohort.md: GPU workers
            actors = [
                worker_cls.options(**options).remote(
                    settings, cpu_threads=max(1, int(self.cpus)), memory_limit_bytes=cap
                )
                for _ in range(count)
            ]
            log.info(
                "%d Ray worker(s), each %g CPU, %g GPU, %.1f GB; cluster: %s",
                count,
                self.cpus,
                self.gpus,
                self.memory_bytes / 1e9,
                _resources_text(ray.cluster_resources()),
            )
            yield from self._schedule(actors, tasks)
            self._stats = self._collect_stats(actors)
        finally:
            for actor in actors:
                with contextlib.suppress(RayError):  # already gone
                    ray.kill(actor, no_restart=True)
            if started_here:
                ray.shutdown()

    # -- set-up ---------------------------------------------------------------------------------

    def _check_device(self, settings: WorkerSettings) -> None:
        device = settings.options.device
        if self.gpus > 0 and device == "cpu":
            raise LiversegError("--gpus-per-worker > 0 with --device cpu: drop one of them")
        if self.gpus == 0 and device == "cuda":
            raise LiversegError(
                "--device cuda on Ray needs --gpus-per-worker > 0 (Ray hides GPUs from actors without one)"
            )

    def _connect(self) -> bool:
        """Connect to (or start) Ray; True when this call started it (so it stops it too)."""
        if ray.is_initialized():
            log.debug("using the Ray instance this process is already connected to")
            return False
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise LiversegError(f"cannot connect to {where}: {_first_line(exc)}") from exc
        return True

    def _worker_count(self, n_tasks: int) -> int:
        if self.num_workers is not None:
            return min(self.num_workers, n_tasks)
        res = ray.cluster_resources()
        fits = [int(res.get("CPU", 0) // self.cpus), int(res.get("memory", 0) // self.memory_bytes)]
        if self.gpus > 0:
            fits.append(int(res.get("GPU", 0) // self.gpus))
        if min(fits) < 1:
            raise LiversegError(
                f"no worker of {self.cpus:g} CPU, {self.gpus:g} GPU and {self.memory_bytes / 1e9:.1f} GB fits "
                f"on this Ray cluster ({_resources_text(res)}); pass --num-workers to wait for an "
                "autoscaler, or ask for less per worker"
            )
        return min(min(fits), n_tasks)

    # -- the scheduling loop --------------------------------------------------------------------

    def _schedule(self, actors: list[Any], tasks: Sequence[CaseTask]) -> Iterator[CaseOutcome]:
        pending = collections.deque(tasks)
        starting = {actor.ready.remote(): actor for actor in actors}
        idle: list[Any] = []
        in_flight: dict[Any, tuple[CaseTask, Any]] = {}
        failures: dict[Any, int] = collections.defaultdict(int)
        start_errors: list[str] = []
        deadline = time.monotonic() + self.start_timeout_s
        ever_ready = False
        while pending or in_flight:
            while idle and pending:
                actor = idle.pop()
                task = pending.popleft()
                in_flight[actor.segment.remote(task)] = (task, actor)
            if not in_flight and not idle:
                if not starting:
                    raise LiversegError(
                        "no cohort worker is left to run the remaining cases: "
                        + ("; ".join(dict.fromkeys(start_errors)) or "every worker died repeatedly")
                    )
                if not ever_ready and time.monotonic() > deadline:
                    raise LiversegError(
                        f"no Ray worker started within {self.start_timeout_s:.0f} s (each needs {self.cpus:g} "
                        f"CPU, {self.gpus:g} GPU, {self.memory_bytes / 1e9:.1f} GB; cluster: "
                        f"{_resources_text(ray.cluster_resources())})"
                    )
            done, _ = ray.wait([*in_flight, *starting], num_returns=1, timeout=1.0)
            for ref in done:
                if ref in starting:
                    actor = starting.pop(ref)
                    try:
                        info = ray.get(ref)
                    except RayError as exc:
                        start_errors.append(_root_cause(exc))
                        log.error("a Ray worker could not start: %s", start_errors[-1])
                        continue
                    ever_ready = True
                    log.debug(
                        "worker %s ready (%s on %s)", info["worker"], info["model"]["name"], info["device"]
                    )
                    idle.append(actor)
                    continue
                task, actor = in_flight.pop(ref)
                try:
                    outcome = ray.get(ref)
                    failures[actor] = 0
                except RayActorError as exc:
                    failures[actor] += 1
                    outcome = _failed(
                        task,
                        f"the worker died while segmenting this case (tried {1 + TASK_RETRIES} times; "
                        f"killed for memory, crashed, or its node was lost): {_first_line(exc)}",
                    )
                except RayError as exc:
                    outcome = _failed(task, _root_cause(exc))
                if failures[actor] >= MAX_WORKER_FAILURES:
                    log.error("retiring a Ray worker that died %d times in a row", failures[actor])
                    with contextlib.suppress(RayError):
                        ray.kill(actor, no_restart=True)
                else:
                    idle.append(actor)
                yield outcome

    def _collect_stats(self, actors: list[Any]) -> list[dict[str, Any]]:
        refs = [a.stats.remote() for a in actors]
        stats = []
        for ref in refs:
            try:
                stats.append(ray.get(ref, timeout=60))
            except (RayError, GetTimeoutError) as exc:
                log.debug("no statistics from a worker: %s", exc)
        return stats


def _failed(task: CaseTask, error: str) -> CaseOutcome:
    return CaseOutcome(task.case.name, "failed", 0.0, "", error=one_line(error))


def _first_line(exc: BaseException) -> str:
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return re.sub(r"\x1b\[[0-9;]*m", "", first)


def _root_cause(exc: BaseException) -> str:
    """The last ``Type: message`` line of a Ray error's text (the worker's own exception)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln) for ln in str(exc).splitlines()]
    causes = [ln.strip() for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*", ln)]
    return causes[-1] if causes else _first_line(exc)


def _resources_text(res: dict[str, float]) -> str:
    parts = [
        f"{res.get('CPU', 0):g} CPU",
        f"{res.get('GPU', 0):g} GPU",
        f"{res.get('memory', 0) / 1e9:.1f} GB",
    ]
    return ", ".join(parts)
