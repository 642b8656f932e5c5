"""liverseg.metrics."""
