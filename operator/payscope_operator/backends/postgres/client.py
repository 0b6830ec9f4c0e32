"""Shared plumbing of the Postgres-family provisioners: one caller-owned connection, timeouts, a log.

Why this module exists: the relational (RLS) and timeseries (TimescaleDB) provisioners
run one after the other on ONE ``psycopg.AsyncConnection`` (autocommit) that the
caller opens, because the TimescaleDB test server serves one connection at a time.
This module gives them the same discipline: every statement runs under a server-side
``statement_timeout`` and ``lock_timeout`` (so a locked table cannot hang a pass) and
a client-side deadline (so a frozen server cannot either); every statement is recorded
in a :class:`StatementLog` (so callers and benchmarks can count change statements);
driver errors become the operator's exception tree, with messages that never carry
a DSN, password or row values.

What it must not do: decide what to change (planning lives in the provisioners),
open connections on its own except through :func:`connect`, or build SQL from
unvalidated names: :func:`identifier` re-checks every name against the CRD pattern.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import TupleRow, class_row

from payscope_operator import errors
from payscope_operator.api import conditions, fields
from payscope_operator.backends import connections

StatementKind = Literal["read", "change", "session"]
RowT = TypeVar("RowT")
Statement = sql.SQL | sql.Composed
"""A statement built with psycopg.sql: never a str with spec values pasted in."""


class SqlReason(StrEnum):
    """Reasons of Postgres-family objects that ``conditions.Reason`` does not hold (yet)."""

    TENANT_COLUMN_NOT_FOUND = "TenantColumnNotFound"
    TENANT_COLUMN_TYPE_UNSUPPORTED = "TenantColumnTypeUnsupported"
    ROW_SECURITY_CONFLICTS_WITH_COMPRESSION = "RowSecurityConflictsWithCompression"
    TIME_COLUMN_NOT_FOUND = "TimeColumnNotFound"
    TIME_COLUMN_TYPE_UNSUPPORTED = "TimeColumnTypeUnsupported"
    TIME_COLUMN_IMMUTABLE = "TimeColumnImmutable"
    HYPERTABLE_CONSTRAINT_INCOMPATIBLE = "HypertableConstraintIncompatible"
    COMPRESSION_SPEC_CONFLICT = "CompressionSpecConflict"


@dataclass(frozen=True)
class TableRef:
    """A table by schema and name, both validated SQL identifiers."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``long_statement`` bounds index builds and hypertable data migration."""

    statement: float = 30.0
    lock: float = 5.0
    long_statement: float = 600.0
    client_margin: float = 5.0  # the client gives up this long after the server should have

    def server_setting(self, seconds: float) -> str:
        return f"{max(1, round(seconds * 1000))}ms"


@dataclass
class StatementLog:
    """Every statement a provisioner sent, in order, as ``(kind, text)``.

    ``change`` entries are DDL or TimescaleDB API calls; an unchanged pass has none.
    """

    entries: list[tuple[StatementKind, str]] = field(default_factory=list)

    def record(self, kind: StatementKind, text: str) -> None:
        self.entries.append((kind, text))

    def of_kind(self, kind: StatementKind) -> list[str]:
        return [text for entry_kind, text in self.entries if entry_kind == kind]

    @property
    def changes(self) -> list[str]:
        return self.of_kind("change")

    @property
    def change_count(self) -> int:
        return len(self.changes)

    def clear(self) -> None:
        self.entries.clear()


def identifier(value: str, *, what: str) -> sql.Identifier:
    """``sql.Identifier`` of a name re-checked against the CRD's SQL identifier pattern."""
    if not re.fullmatch(fields.SQL_IDENTIFIER_PATTERN, value):
        raise errors.SpecInvalid(f"{what} {value!r} is not a lower-case SQL identifier")
    return sql.Identifier(value)


def qualified(schema: str, name: str) -> sql.Identifier:
    """``schema.name``, both parts validated and quoted."""
    identifier(schema, what="schema")
    identifier(name, what="name")
    return sql.Identifier(schema, name)


def regclass(schema: str, name: str) -> sql.Composed:
    """A ``'"schema"."name"'::regclass`` literal for TimescaleDB's API functions."""
    return sql.SQL("{}::regclass").format(sql.Literal(qualified(schema, name).as_string()))


_UNIT_WORDS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def interval(duration: str) -> sql.Composed:
    """An ``interval`` literal of a spec duration (``7d`` → ``'7 days'::interval``)."""
    fields.parse_duration(duration)  # validates the pattern
    return sql.SQL("{}::interval").format(sql.Literal(f"{int(duration[:-1])} {_UNIT_WORDS[duration[-1]]}"))


def render(statement: Statement) -> str:
    """The text of a statement on one line, as logged and shown in benchmarks."""
    return " ".join(statement.as_string().split())


async def connect(dsn: str, *, connect_timeout: float = 10.0) -> psycopg.AsyncConnection[TupleRow]:
    """Open the autocommit connection the provisioners share (see ``connections.open_postgres``)."""
    return await connections.open_postgres(dsn, connect_timeout=connect_timeout)


def translate(exc: BaseException, *, doing: str) -> errors.PayScopeError:
    """The operator error for a driver error raised while ``doing`` something."""
    if isinstance(exc, TimeoutError):
        return errors.DependencyUnavailable(
            f"Postgres did not answer in time while {doing}", reason=conditions.Reason.DEPENDENCY_TIMEOUT
        )
    if isinstance(exc, pg_errors.LockNotAvailable):
        return errors.DependencyUnavailable(
            f"lock_timeout expired while {doing}: the table is locked by another session",
            reason=conditions.Reason.DEPENDENCY_TIMEOUT,
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        return errors.DependencyUnavailable(
            f"statement_timeout expired while {doing}", reason=conditions.Reason.DEPENDENCY_TIMEOUT
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return errors.PermissionDenied(f"permission denied while {doing}: {_primary(exc)}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return errors.DependencyUnavailable(
            f"lost the Postgres connection while {doing} ({type(exc).__name__})",
            reason=conditions.Reason.DEPENDENCY_UNAVAILABLE,
        )
    if isinstance(exc, psycopg.Error):
        return errors.TransientError(
            f"Postgres refused {doing}: {_primary(exc)} (SQLSTATE {exc.sqlstate or 'unknown'})",
            reason=conditions.Reason.PROVISIONING_FAILED,
        )
    return errors.PayScopeError(f"unexpected failure while {doing}: {type(exc).__name__}")


def _primary(exc: psycopg.Error) -> str:
    # The primary message names objects, never row values (those live in ``detail``).
    return (exc.diag.message_primary or type(exc).__name__)[:300]


class Session:
    """A caller-owned autocommit connection used with timeouts and a statement log.

    It sets ``statement_timeout`` and ``lock_timeout`` on the connection (session level,
    once) and leaves them set: later users of the connection (the audit probes) get the
    same protection. After a DependencyUnavailable the caller should discard the
    connection: a client-side deadline may have cut a statement off mid-protocol.
    """

    def __init__(
        self, conn: psycopg.AsyncConnection[TupleRow], timeouts: Timeouts, log: StatementLog | None = None
    ) -> None:
        self.conn = conn
        self.timeouts = timeouts
        self.log = log if log is not None else StatementLog()
        self._configured = False

    def _deadline(self, seconds: float) -> float:
        return seconds + self.timeouts.lock + self.timeouts.client_margin

    async def _configure(self) -> None:
        """Session defaults for reads and non-transactional DDL (once per Session)."""
        if self._configured:
            return
        statement = sql.SQL("SELECT set_config('statement_timeout', {}, false), set_config('lock_timeout', {}, false)")
        await self._send(
            "session",
            statement.format(
                sql.Literal(self.timeouts.server_setting(self.timeouts.statement)),
                sql.Literal(self.timeouts.server_setting(self.timeouts.lock)),
            ),
            doing="setting timeouts",
        )
        self._configured = True

    async def _send(self, kind: StatementKind, statement: Statement, *, doing: str) -> list[TupleRow]:
        self.log.record(kind, render(statement))
        try:
            async with asyncio.timeout(self._deadline(self.timeouts.statement)):
                cursor = await self.conn.execute(statement)
                return await cursor.fetchall() if cursor.description else []
        except (TimeoutError, psycopg.Error) as exc:
            raise translate(exc, doing=doing) from exc

    async def read(
        self, query: Statement, params: Mapping[str, object], row_type: type[RowT], *, doing: str
    ) -> list[RowT]:
        """One catalog query with bound parameters; each row built as ``row_type(**columns)``."""
        await self._configure()
        self.log.record("read", render(query))
        try:
            async with asyncio.timeout(self._deadline(self.timeouts.statement)):
                async with self.conn.cursor(row_factory=class_row(row_type)) as cursor:
                    await cursor.execute(query, params)
                    return await cursor.fetchall()
        except (TimeoutError, psycopg.Error) as exc:
            raise translate(exc, doing=doing) from exc

    async def change(self, statements: Sequence[Statement], *, doing: str, long: bool = False) -> None:
        """Run change statements atomically in one transaction (SET LOCAL timeouts inside)."""
        await self._configure()
        seconds = self.timeouts.long_statement if long else self.timeouts.statement
        set_local = sql.SQL("SET LOCAL statement_timeout = {}").format(
            sql.Literal(self.timeouts.server_setting(seconds))
        )
        try:
            async with asyncio.timeout(self._deadline(seconds) * len(statements)):
                async with self.conn.transaction():
                    await self.conn.execute(set_local)
                    for statement in statements:
                        self.log.record("change", render(statement))
                        await self.conn.execute(statement)
        except (TimeoutError, psycopg.Error) as exc:
            raise translate(exc, doing=doing) from exc

    async def change_outside_transaction(self, statement: Statement, *, doing: str) -> None:
        """Run one statement that refuses a transaction block (``... CONCURRENTLY``), with the long timeout."""
        await self._configure()
        long_setting = sql.SQL("SELECT set_config('statement_timeout', {}, false)")
        await self._send(
            "session",
            long_setting.format(sql.Literal(self.timeouts.server_setting(self.timeouts.long_statement))),
            doing=doing,
        )
        try:
            self.log.record("change", render(statement))
            try:
                async with asyncio.timeout(self._deadline(self.timeouts.long_statement)):
                    await self.conn.execute(statement)
            except (TimeoutError, psycopg.Error) as exc:
                raise translate(exc, doing=doing) from exc
        finally:
            await self._restore_statement_timeout(long_setting)

    async def _restore_statement_timeout(self, setting: sql.SQL) -> None:
        if self.conn.closed or self.conn.broken:
            return
        try:
            await self._send(
                "session",
                setting.format(sql.Literal(self.timeouts.server_setting(self.timeouts.statement))),
                doing="restoring statement_timeout",
            )
        except errors.PayScopeError:
            self._configured = False  # the next call sets the defaults again; the first error wins
