"""liverseg.augment."""
