"""Study identity (``schema_version`` 2): patient ID, accession number, study date, series
description and the de-identified flag on ``studies`` (nullable columns).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("studies", sa.Column("patient_id", sa.String(length=128), nullable=True))
    op.add_column("studies", sa.Column("accession_number", sa.String(length=128), nullable=True))
    op.add_column("studies", sa.Column("study_date", sa.Date(), nullable=True))
    op.add_column("studies", sa.Column("series_description", sa.String(length=200), nullable=True))
    op.add_column("studies", sa.Column("deidentified", sa.Boolean(), nullable=True))
    op.create_index("ix_studies_patient_id", "studies", ["patient_id"])
    schema_version = sa.table("schema_version", sa.column("version", sa.Integer), sa.column("applied_at"))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(schema_version, [{"version": 2, "applied_at": now}])


def downgrade() -> None:
    raise RuntimeError("liverseg migrations are not reversible: restore the backup taken before upgrading")
