"""liverseg.reporting."""
