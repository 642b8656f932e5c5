"""Alembic migrations of the service database (shipped inside the package; see
:mod:`liverseg.service.migrate` and ``liverseg db upgrade``)."""
