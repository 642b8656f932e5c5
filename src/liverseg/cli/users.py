"""``liverseg users add|list|disable|enable|reset``: manage accounts of the web application.

There is no default account and no default password: create the first admin with
``liverseg users add NAME --role admin``. Passwords come from a prompt (asked twice) or, with
``--password-stdin``, from the first line of standard input.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from liverseg.service_defaults import DEFAULT_DATA_DIR


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "users",
        help="manage web application accounts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help=f"data folder (default ./{DEFAULT_DATA_DIR})",
        )
        sp.add_argument(
            "--db", default=None, metavar="URL", help="database URL (default: SQLite in the data dir)"
        )

    add = sub.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", choices=("clinician", "admin"), default="clinician")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    common(add)
    add.set_defaults(func=cmd_add)
    ls = sub.add_parser("list", help="list accounts")
    common(ls)
    ls.set_defaults(func=cmd_list)
    for name, func, text in (
        ("disable", cmd_disable, "disable an account and end its sessions"),
        ("enable", cmd_enable, "re-enable a disabled account"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("name")
        common(sp)
        sp.set_defaults(func=func)
    reset = sub.add_parser("reset", help="set a new password (ends the user's sessions and lockout)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    common(reset)
    reset.set_defaults(func=cmd_reset)


def _db(args: argparse.Namespace) -> Any:
    from liverseg.service.config import ServiceConfig
    from liverseg.service.db import Database
    from liverseg.utils import set_umask

    set_umask(0o077)  # the data dir and database hold patient data (0700 / 0600)
    args.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Database(ServiceConfig(data_dir=args.data_dir, db_url=args.db).database_url)


def _password(args: argparse.Namespace) -> str:
    from liverseg.errors import InputError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise InputError("the two passwords differ")
    if not password:
        raise InputError("expected a password, got an empty one")
    return password


def cmd_add(args: argparse.Namespace) -> int:
    from liverseg.service.auth import add_user

    password = _password(args)
    with _db(args).session() as s:
        add_user(s, args.name, password, args.role)
    print(f"added {args.role} {args.name}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from liverseg.extras import require

    require("service", "liverseg users")
    from sqlalchemy import select

    from liverseg.service.db import User

    with _db(args).session() as s:
        users = s.scalars(select(User).order_by(User.name)).all()
        print(f"{'name':<24} {'role':<10} {'status':<9} created (UTC)")
        for u in users:
            print(
                f"{u.name:<24} {u.role:<10} {'disabled' if u.disabled else 'active':<9} {u.created_at:%Y-%m-%d %H:%M}"
            )
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    from liverseg.service.auth import set_disabled

    with _db(args).session() as s:
        set_disabled(s, args.name, True)
    print(f"disabled {args.name}")
    return 0


def cmd_enable(args: argparse.Namespace) -> int:
    from liverseg.service.auth import set_disabled

    with _db(args).session() as s:
        set_disabled(s, args.name, False)
    print(f"enabled {args.name}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from liverseg.service.auth import reset_password

    password = _password(args)
    with _db(args).session() as s:
        reset_password(s, args.name, password)
    print(f"password of {args.name} reset")
    return 0
