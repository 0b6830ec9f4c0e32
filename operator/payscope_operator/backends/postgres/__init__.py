"""Postgres: row-level security, the tenant policy and tenant indexes, and the audit's catalog evidence."""

from payscope_operator.backends.postgres import client, evidence, plan, sql

__all__ = ["client", "evidence", "plan", "sql"]
