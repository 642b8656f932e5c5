"""Alembic environment of the service database.

liverseg runs the migrations on a connection it opened itself (``config.attributes["connection"]``,
see :mod:`liverseg.service.migrate`); a developer may also point Alembic at a URL
(``config.set_main_option("sqlalchemy.url", ...)``) to autogenerate a new revision against
:data:`liverseg.service.db.Base.metadata`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from liverseg.service.db import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
