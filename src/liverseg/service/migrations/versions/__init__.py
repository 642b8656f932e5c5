"""Alembic revisions, oldest first: ``0001`` is the schema of liverseg 0.1.0."""
