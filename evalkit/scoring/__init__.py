"""Scoring: turn engine responses into per-sample values, and values into metrics."""
