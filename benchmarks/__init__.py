"""Benchmarks: scripts that print figures (performance is measured here, never asserted in a timed test).

Run one as ``PYTHONPATH=. .venv/bin/python benchmarks/<name>.py`` (or ``python -m benchmarks.<name>``).
"""
