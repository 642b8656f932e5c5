"""liverseg.service."""
