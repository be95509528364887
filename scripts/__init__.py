"""Maintenance scripts, runnable as `python -m scripts.<name>` from the repository root."""
