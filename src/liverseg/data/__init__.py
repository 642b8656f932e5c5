"""liverseg.data."""
