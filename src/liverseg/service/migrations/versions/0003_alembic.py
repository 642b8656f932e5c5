"""Alembic takes over from ``schema_version`` (row 3). The table stays, so that a liverseg
release from before Alembic (which refuses a ``schema_version`` newer than its own) refuses a
database this or any later release has migrated, instead of using it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema_version = sa.table("schema_version", sa.column("version", sa.Integer), sa.column("applied_at"))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(schema_version, [{"version": 3, "applied_at": now}])


def downgrade() -> None:
    raise RuntimeError("liverseg migrations are not reversible: restore the backup taken before upgrading")
