"""Postgres: row-level security, the tenant policy and tenant indexes, and the audit's catalog evidence.

``model`` (types) ← ``sql`` (statement text, row mapping) ← ``plan`` (pure) ←
``provisioner`` (observe, apply, teardown); ``client`` opens connections and runs
statements with timeouts; ``evidence`` holds the audit's read-only queries, ``isolation``
its cross-tenant probe.
"""

from payscope_operator.backends.postgres import client, evidence, isolation, model, plan, provisioner, sql

__all__ = ["client", "evidence", "isolation", "model", "plan", "provisioner", "sql"]
