"""liverseg.synth."""
