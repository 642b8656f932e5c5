"""``liverseg serve``: the web application plus N durable-queue worker processes.

Behind a TLS-terminating reverse proxy, pass ``--forwarded-allow-ips PROXY_IP`` (only then are
``X-Forwarded-For``/``X-Forwarded-Proto`` believed, and only from that address: the proxy's
``X-Forwarded-Proto: https`` marks session cookies ``Secure``, or force it with
``--secure-cookies``) and ``--allowed-hosts`` with the name clients use.

The process and its workers create files 0600 and folders 0700 (umask 077): the data dir holds
patient images.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from liverseg.service_defaults import DEFAULT_ALLOWED_HOSTS, DEFAULT_DATA_DIR

log = logging.getLogger(__name__)
PURGE_EVERY_S = 3600.0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the web application and its segmentation workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=f"data folder (default ./{DEFAULT_DATA_DIR})"
    )
    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="SQLAlchemy database URL (default: SQLite file in the data dir; "
        "PostgreSQL: postgresql+psycopg://user:password@host/db)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="segmentation worker processes (default 1; 0: none)"
    )
    p.add_argument("--lease-s", type=float, default=60.0, help="job lease in seconds (resume after a crash)")
    p.add_argument("--secure-cookies", action="store_true", help="always mark cookies Secure (HTTPS only)")
    p.add_argument(
        "--forwarded-allow-ips",
        default="",
        metavar="IPS",
        help="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For/Proto "
        "headers are trusted (default: none, the peer address is the client)",
    )
    p.add_argument(
        "--allowed-hosts",
        default=",".join(DEFAULT_ALLOWED_HOSTS),
        metavar="HOSTS",
        help="comma-separated Host header values accepted, e.g. liver.example.org or *.example.org "
        f"(default: {','.join(DEFAULT_ALLOWED_HOSTS)} plus --host when it is a specific address)",
    )
    p.add_argument("--max-upload-mb", type=int, default=2048, help="largest upload in MiB (default 2048)")
    p.add_argument(
        "--deidentify",
        action="store_true",
        help="store pseudonyms instead of patient IDs and accession numbers (pages, reports, database)",
    )
    p.add_argument(
        "--retention-days",
        type=float,
        default=None,
        metavar="DAYS",
        help="delete studies older than DAYS (files and rows, audited; checked hourly); default: keep",
    )
    p.add_argument(
        "--pacs-url",
        metavar="URL",
        help="DICOMweb PACS to import studies from (credentials: LIVERSEG_PACS_USERNAME/PASSWORD or "
        "--pacs-config; also LIVERSEG_PACS_URL)",
    )
    p.add_argument("--pacs-config", type=Path, metavar="FILE", help="PACS config file (see docs/dicom.md)")
    # for integration tests and custom deployments: replaces the real pipeline in the workers
    p.add_argument("--segmenter", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from liverseg.extras import require

    require("service", "liverseg serve")
    import uvicorn

    from liverseg.errors import ConfigError
    from liverseg.service.app import create_app
    from liverseg.service.config import ServiceConfig, UploadLimits
    from liverseg.service.lifecycle import purge_expired
    from liverseg.service.worker import start_worker
    from liverseg.utils import set_umask

    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    if args.retention_days is not None and not args.retention_days > 0:
        raise ConfigError(f"--retention-days must be > 0, got {args.retention_days}")
    set_umask(0o077)  # patient data: files 0600, folders 0700 (inherited by the workers)
    pacs = None
    if args.pacs_url or args.pacs_config or os.environ.get("LIVERSEG_PACS_URL"):
        from liverseg.pacs.config import load_pacs_config

        pacs = load_pacs_config(url=args.pacs_url, config_file=args.pacs_config)
        log.info("PACS import from %s", pacs.describe())
    config = ServiceConfig(
        pacs=pacs,
        data_dir=args.data_dir,
        db_url=args.db,
        secure_cookies=args.secure_cookies,
        lease_s=args.lease_s,
        segmenter=args.segmenter,
        limits=UploadLimits(max_upload_bytes=args.max_upload_mb * 1024**2),
        deidentify=args.deidentify,
        retention_days=args.retention_days,
        allowed_hosts=allowed_hosts(args.allowed_hosts, args.host),
        forwarded_allow_ips=_split(args.forwarded_allow_ips),
    )
    args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    app = create_app(config)
    stop = threading.Event()
    procs = [start_worker(config) for _ in range(args.workers)]

    def supervise() -> None:  # restart a worker that died (its job resumes after the lease)
        next_purge = 0.0
        while not stop.wait(2.0):
            for i, proc in enumerate(procs):
                if proc.poll() is not None and not stop.is_set():
                    log.warning("worker pid %s exited with %s; restarting", proc.pid, proc.returncode)
                    procs[i] = start_worker(config)
            if config.retention_days is not None and time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_EVERY_S
                try:
                    purge_expired(app.state.database, app.state.storage, config.retention_days)
                except Exception:  # a failed purge is retried at the next round
                    log.exception("retention purge failed")

    threading.Thread(target=supervise, name="worker-supervisor", daemon=True).start()
    log.info(
        "liverseg serving on http://%s:%d with %d worker(s); data in %s",
        args.host,
        args.port,
        args.workers,
        config.data_dir,
    )

    def _terminated(signum: int, _frame: object) -> None:
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again: without a handler
        # the process would die there and leave its workers running (the finally below).
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminated)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            proxy_headers=False,  # the app trusts X-Forwarded-* only from config.forwarded_allow_ips
            log_level="debug" if args.debug else "info",
            access_log=False,
        )
    finally:
        stop.set()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except Exception:
                proc.kill()
    return 0


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def allowed_hosts(value: str, listen_host: str) -> tuple[str, ...]:
    """The ``--allowed-hosts`` list plus the listen address when it is a specific one."""
    hosts = list(_split(value))
    if listen_host not in ("0.0.0.0", "::", "") and listen_host not in hosts:
        hosts.append(listen_host)
    return tuple(hosts)


def main(argv: list[str] | None = None) -> int:
    """``python -m liverseg.cli.serve [options]``: the same as ``liverseg serve`` (used by tests)."""
    import sys

    parser = argparse.ArgumentParser(prog="liverseg")
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    args.debug = args.quiet = False
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
