"""liverseg.training."""
