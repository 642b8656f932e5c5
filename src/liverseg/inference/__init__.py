"""liverseg.inference."""
