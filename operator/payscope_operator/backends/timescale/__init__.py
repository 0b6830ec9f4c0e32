"""TimescaleDB: the extension, hypertables, compression, and retention and compression policies."""

from payscope_operator.backends.timescale import plan, sql

__all__ = ["plan", "sql"]
