"""A worker process: ``python -m liverseg.service.worker --data-dir DIR [--db URL]``.

``liverseg serve --workers N`` starts N of these and restarts any that dies. SIGTERM/SIGINT
stop the worker after its current job's next poll; a SIGKILLed worker's job is resumed by
another worker once its lease expires.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from liverseg.service.config import ServiceConfig
from liverseg.service.db import Database
from liverseg.service.jobs import Worker
from liverseg.utils import set_umask

__all__ = ["main", "worker_command"]

log = logging.getLogger(__name__)
DB_URL_ENV = "LIVERSEG_WORKER_DB_URL"  # internal parent->worker hand-over, set by start_worker only


def worker_command(config: ServiceConfig, worker_id: str | None = None, poll_s: float = 1.0) -> list[str]:
    """The command line that starts one worker process for ``config``."""
    cmd = [
        sys.executable,
        "-m",
        "liverseg.service.worker",
        "--data-dir",
        str(config.data_dir),
        "--lease-s",
        str(config.lease_s),
        "--max-attempts",
        str(config.max_attempts),
        "--poll-s",
        str(poll_s),
    ]
    if config.segmenter:
        cmd += ["--segmenter", config.segmenter]
    if worker_id:
        cmd += ["--worker-id", worker_id]
    return cmd


def start_worker(
    config: ServiceConfig, worker_id: str | None = None, poll_s: float = 1.0
) -> subprocess.Popen[bytes]:
    """Start one worker process (stdin closed, output inherited)."""
    # The database URL may hold a password: hand it over in the child's environment, never on its
    # command line (visible to every local user in `ps`).
    env = {**os.environ, DB_URL_ENV: config.database_url}
    cmd = [*worker_command(config, worker_id, poll_s), "--parent-pid", str(os.getpid())]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverseg.service.worker", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument(
        "--db",
        default=None,
        help=f"SQLAlchemy URL (default: ${DB_URL_ENV} as set by `liverseg serve`, else SQLite in the data dir)",
    )
    parser.add_argument("--lease-s", type=float, default=60.0)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--poll-s", type=float, default=1.0)
    parser.add_argument("--segmenter", default=None, help="module:function replacing the real pipeline")
    parser.add_argument("--worker-id", default=None)
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="stop when this process (liverseg serve) is gone"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s: %(message)s")

    set_umask(0o077)  # results are patient data: files 0600, folders 0700
    config = ServiceConfig(
        data_dir=args.data_dir,
        db_url=args.db or os.environ.get(DB_URL_ENV),
        lease_s=args.lease_s,
        max_attempts=args.max_attempts,
        segmenter=args.segmenter,
    )
    database = Database(config.database_url)
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.parent_pid is not None:
        # A worker started by `liverseg serve` must not outlive it (e.g. when serve is SIGKILLed
        # and cannot terminate its workers): once re-parented, it finishes its job and stops.
        def _watch_parent() -> None:
            while not stop.wait(1.0):
                if os.getppid() != args.parent_pid:
                    log.warning("parent process %s is gone: stopping", args.parent_pid)
                    stop.set()

        threading.Thread(target=_watch_parent, name="parent-watch", daemon=True).start()
    Worker(database, config, args.worker_id).run_forever(stop, poll_s=args.poll_s)
    database.dispose()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
