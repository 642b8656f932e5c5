"""liverseg.preprocessing."""
