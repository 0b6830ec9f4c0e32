"""TimescaleDB: the extension, hypertables, compression, and retention and compression policies.

The same layout as ``postgres`` (``model`` ← ``sql`` ← ``plan`` ← ``provisioner``), on the
connection, :class:`~payscope_operator.backends.postgres.client.Session` and name checks
of ``postgres``, the only other system package it may import.
"""

from payscope_operator.backends.timescale import model, plan, provisioner, sql

__all__ = ["model", "plan", "provisioner", "sql"]
