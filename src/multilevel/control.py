"""Settings records for fitting and sampling (placeholder, filled below)."""
