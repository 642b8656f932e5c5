"""liverseg.models."""
