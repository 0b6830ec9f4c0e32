"""The audit log's newest rows, as the operator looks for the trace ids of its own requests in them.

Why this module exists: that PayScope records queries and operations shows best
on the operator's own requests: it notes the newest row before sending a chat
query and an admin read, then looks for their trace ids among the rows appended
since (contract section 12.3). Each statement is bounded: the newest id by the
ordering column (an index scan), then at most :data:`MAX_ROWS` rows after it.

Failures are ``errors.DependencyUnavailable`` naming the table, never the DSN.

What it must not do: write to the audit log, read more than :data:`MAX_ROWS` rows,
or return a payload beyond its ``trace_id`` (payloads may carry tenant data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from payscope_operator import errors

Conn = psycopg.AsyncConnection[Any]
MAX_ROWS = 200
"""The most rows one look reads: the operator's two rows are among the newest of a busy log."""


@dataclass(frozen=True)
class Row:
    """One audit-log row, reduced to what the look needs."""

    id: int
    operation: str
    trace_id: str | None


def _table(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def _unreadable(schema: str, table: str, exc: psycopg.Error) -> errors.DependencyUnavailable:
    return errors.DependencyUnavailable(f"the audit log {schema}.{table} could not be read ({type(exc).__name__})")


async def newest_id(conn: Conn, schema: str, table: str, order_column: str) -> int | None:
    """The ordering column's value on the newest row (None: the log is empty)."""
    query = sql.SQL("SELECT {order} FROM {table} ORDER BY {order} DESC LIMIT 1").format(
        order=sql.Identifier(order_column), table=_table(schema, table)
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(query)
            found = await cur.fetchone()
    except psycopg.Error as exc:
        raise _unreadable(schema, table, exc) from None
    return int(found[0]) if found is not None else None


async def rows_after(conn: Conn, schema: str, table: str, order_column: str, after: int | None) -> tuple[Row, ...]:
    """Up to :data:`MAX_ROWS` rows after ``after`` (None: from the start), newest first."""
    order = sql.Identifier(order_column)
    query = sql.SQL(
        "SELECT {order}, operation, payload->>'trace_id' FROM {table} WHERE {order} > %s ORDER BY {order} DESC LIMIT %s"
    ).format(order=order, table=_table(schema, table))
    try:
        async with conn.cursor() as cur:
            await cur.execute(query, (after if after is not None else -1, MAX_ROWS))
            found = await cur.fetchall()
    except psycopg.Error as exc:
        raise _unreadable(schema, table, exc) from None
    return tuple(Row(int(i), str(op), str(trace) if trace is not None else None) for i, op, trace in found)
