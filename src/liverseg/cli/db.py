"""``liverseg db upgrade|current``: the schema of the web application's database.

The service refuses a database made by an older liverseg until it is upgraded. Stop the service
and its workers, back the database up (SQLite: copy ``<data-dir>/liverseg.db`` while nothing runs;
PostgreSQL: ``pg_dump``), then run ``liverseg db upgrade`` with the ``--data-dir``/``--db`` the
service uses. The upgrade is one transaction: it applies completely or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from liverseg.service_defaults import DEFAULT_DATA_DIR


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "db",
        help="upgrade or show the schema of the web application's database",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("upgrade", cmd_upgrade, "migrate the database to this liverseg's schema (back it up first)"),
        ("current", cmd_current, "print the database's schema revision and this liverseg's"),
    ):
        sp = sub.add_parser(name, help=text, description=text)
        sp.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help=f"data folder (default ./{DEFAULT_DATA_DIR})",
        )
        sp.add_argument(
            "--db",
            "--url",
            dest="db",
            default=None,
            metavar="URL",
            help="database URL (default: SQLite in the data dir)",
        )
        sp.set_defaults(func=func)


def _open(args: argparse.Namespace) -> Any:
    from liverseg.errors import ConfigError
    from liverseg.service.config import ServiceConfig
    from liverseg.service.db import Database

    config = ServiceConfig(data_dir=args.data_dir, db_url=args.db)
    if args.db is None and not (args.data_dir / "liverseg.db").is_file():
        raise ConfigError(f"no database in {args.data_dir} (expected liverseg.db); check --data-dir or --db")
    return Database(config.database_url, create=False)


def cmd_current(args: argparse.Namespace) -> int:
    from liverseg.service.db import redact_url
    from liverseg.service.migrate import schema_state

    database = _open(args)
    try:
        state = schema_state(database.engine)
    finally:
        database.dispose()
    print(f"{redact_url(database.url)}: {state.kind}, {state.describe()}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from liverseg.service.db import redact_url
    from liverseg.service.migrate import upgrade

    database = _open(args)
    try:
        before, after = upgrade(database.engine, redact_url(database.url))
    finally:
        database.dispose()
    if before.kind == "current":
        print(f"{redact_url(database.url)}: already at revision {after.revision}, nothing to do")
    else:
        print(f"{redact_url(database.url)}: upgraded from {before.revision or 'empty'} to {after.revision}")
    return 0
