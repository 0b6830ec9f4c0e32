"""The reference fixture's writer of the audit-log table: one hash-chained row per query and admin read.

Why it exists: the operator looks up its own requests' trace ids among the rows
PayScope appends to its audit log (contract section 12.3). The fixture has no
database of its own; given a DSN (``FixtureConfig.audit_dsn``) it appends rows to
the contract's table exactly as section 12.2 says a writer must: appends
serialised by an advisory lock, ``id`` from the table's sequence, each row
chained to the newest one with ``auditlog.row_hash``.

What it must not do: create or alter the table (the test does, with
``auditlog.ddl``), log a payload, or hold a connection between appends.
"""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.payscope_api import auditlog


class AuditWriter:
    """Appends rows to ``table`` of the database at ``dsn``."""

    def __init__(self, dsn: str, table: str) -> None:
        self._dsn = dsn
        self._table = table

    async def append(self, *, bank_id: str, actor: str, operation: str, payload: dict[str, auditlog.JsonValue]) -> int:
        """Chain one row after the newest; return its id."""
        table = sql.Identifier(self._table)
        async with await psycopg.AsyncConnection.connect(self._dsn, connect_timeout=5) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._table,))
            newest_row = sql.SQL("SELECT hash FROM {} ORDER BY id DESC LIMIT 1").format(table)
            newest = await (await conn.execute(newest_row)).fetchone()
            prev_hash = str(newest[0]).strip() if newest is not None else auditlog.GENESIS_HASH
            next_id = await (await conn.execute("SELECT nextval(%s::regclass)", (f"{self._table}_id_seq",))).fetchone()
            assert next_id is not None
            row_id, ts = int(next_id[0]), dt.datetime.now(dt.UTC)
            digest = auditlog.row_hash(
                prev_hash, row_id=row_id, ts=ts, bank_id=bank_id, actor=actor, operation=operation, payload=payload
            )
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (id, ts, bank_id, actor, operation, payload, prev_hash, hash)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(table),
                (row_id, ts, bank_id, actor, operation, Jsonb(payload), prev_hash, digest),
            )
        return row_id
