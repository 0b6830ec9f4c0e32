"""How the operator talks to Postgres: connections, timeouts, a statement log, errors.

Why this module exists: the row-level-security (``postgres``) and TimescaleDB
(``timescale``) provisioners run one after the other on ONE ``psycopg.AsyncConnection``
(autocommit) that the caller opens, because the TimescaleDB test server serves one
connection at a time. This module opens that connection (:func:`open_postgres`, with a
bounded wait) and gives both provisioners the same discipline through :class:`Session`:
every statement runs under a server-side ``statement_timeout`` and ``lock_timeout`` (so a
locked table cannot hang a pass) and a client-side deadline (so a frozen server cannot
either); every statement is recorded in a :class:`StatementLog` (so callers and
benchmarks can count change statements); driver errors become the operator's exception
tree, with messages that never carry a DSN, password or row values.

Locks: ``lock_timeout`` is ``spec.postgres.lockTimeout`` (default 1s, at most 5s). A DDL
statement waiting for its lock queues every later reader and writer of the table behind
it, so that bound is the longest stall the operator can cause. A change that gives up
raises ``errors.LockTimeout`` naming the sessions that held a conflicting lock when it
gave up (:data:`locks.BLOCKERS`: what ``pg_blocking_pids`` reports for a waiting statement,
read from ``pg_locks`` and ``pg_stat_activity`` on the same connection right after the
wait, since the waiting connection cannot ask while it waits).

What it must not do: decide what to change (the planners do), build SQL from spec values
(``sql`` does, re-checking every name), or name a DSN, user or password in a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import psycopg
from psycopg import conninfo, sql
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow, class_row

from payscope_operator import errors
from payscope_operator.api import conditions
from payscope_operator.backends.postgres import locks

CONNECT_TIMEOUT = 5
"""Seconds a connection may take to open, by default."""

StatementKind = Literal["read", "change", "session"]
RowT = TypeVar("RowT")
DesiredT = TypeVar("DesiredT")
Statement = sql.SQL | sql.Composed
"""A statement built with psycopg.sql: never a str with spec values pasted in."""


def host(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for messages (no user, no password)."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparseable DSN"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


async def open_postgres(
    dsn: str,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    statement_timeout_ms: int = 15000,
    extra: Mapping[str, str] | None = None,
) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection with a statement timeout; the caller closes it.

    ``extra`` libpq parameters win over the DSN's (the caller passes the ``hostaddr`` its
    egress check resolved, and settings that keep libpq off the operator's own credentials).

    The overall wait is bounded too: a server that queues connections (PGlite serves
    one at a time) must not hold a pass beyond ``connect_timeout``. A failure becomes
    ``errors.DependencyUnavailable`` (or ``PermissionDenied`` for refused credentials)
    naming the host, never the DSN, user or password.
    """
    where = host(dsn)
    try:
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                conninfo.make_conninfo(dsn, **dict(extra or {})),
                autocommit=True,
                connect_timeout=max(1, int(connect_timeout)),
                options=f"-c statement_timeout={statement_timeout_ms}",
                application_name="payscope-operator",
            ),
            timeout=connect_timeout + 1,
        )
    except TimeoutError:
        raise errors.DependencyUnavailable(
            f"Postgres at {where} did not accept a connection within {connect_timeout:g}s", reason="DependencyTimeout"
        ) from None
    except psycopg.Error as exc:
        text = str(exc).lower()
        if "password authentication failed" in text or "no pg_hba.conf entry" in text:
            raise errors.PermissionDenied(f"Postgres at {where} refused the credentials") from None
        if "no password supplied" in text:
            raise errors.PermissionDenied(
                f"Postgres at {where} asks for a password and the connection string gives none"
            ) from None
        raise errors.DependencyUnavailable(f"Postgres at {where} is unreachable ({type(exc).__name__})") from None


async def connect(dsn: str, *, connect_timeout: float = 10.0) -> psycopg.AsyncConnection[TupleRow]:
    """Open the autocommit connection the provisioners share (see :func:`open_postgres`)."""
    return await open_postgres(dsn, connect_timeout=connect_timeout)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``lock`` is ``spec.postgres.lockTimeout``; ``long_statement`` bounds index builds and data migration."""

    statement: float = 30.0
    lock: float = 1.0
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


Locking = locks.Locking  # what the provisioners name when they run a change under lock_timeout


def render(statement: Statement) -> str:
    """The text of a statement on one line, as logged and shown in benchmarks."""
    return " ".join(statement.as_string().split())


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

    async def change(
        self, statements: Sequence[Statement], *, doing: str, locking: Locking, long: bool = False
    ) -> None:
        """Run change statements atomically in one transaction (SET LOCAL timeouts inside).

        ``locking`` is the table lock they wait for: when ``lock_timeout`` expires the
        transaction is rolled back and ``errors.LockTimeout`` names who held it.
        """
        await self._configure()
        seconds = self.timeouts.long_statement if long else self.timeouts.statement
        set_local = sql.SQL(
            "SELECT set_config('statement_timeout', {}, true), set_config('lock_timeout', {}, true)"
        ).format(
            sql.Literal(self.timeouts.server_setting(seconds)),
            sql.Literal(self.timeouts.server_setting(self.timeouts.lock)),
        )
        try:
            async with asyncio.timeout(self._deadline(seconds) * len(statements)):
                async with self.conn.transaction():
                    await self.conn.execute(set_local)
                    for statement in statements:
                        self.log.record("change", render(statement))
                        await self.conn.execute(statement)
        except pg_errors.LockNotAvailable:
            raise await self._lock_timeout(locking, doing) from None
        except (TimeoutError, psycopg.Error) as exc:
            raise translate(exc, doing=doing) from exc

    async def change_outside_transaction(self, statement: Statement, *, doing: str, locking: Locking) -> None:
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
            except pg_errors.LockNotAvailable:
                raise await self._lock_timeout(locking, doing) from None
            except (TimeoutError, psycopg.Error) as exc:
                raise translate(exc, doing=doing) from exc
        finally:
            await self._restore_statement_timeout(long_setting)

    async def _lock_timeout(self, locking: Locking, doing: str) -> errors.LockTimeout:
        """The LockTimeout of a change that gave up on ``locking``, naming the sessions that still hold it."""
        found: list[locks.BlockerRow] = []
        try:
            params = {
                "schema": locking.schema,
                "table": locking.table,
                "conflicts": list(locking.conflicts),
                "snapshots": locking.snapshots,
                "limit": locks.MAX_BLOCKERS,
            }
            found = await self.read(
                locks.BLOCKERS, params, locks.BlockerRow, doing="reading the sessions holding the lock"
            )
        except errors.PayScopeError:
            pass  # the timeout is the finding; who held the lock is a courtesy
        blockers = tuple(row.describe() for row in found)
        held = "; ".join(blockers) if blockers else "no session holds a conflicting lock any more"
        wait = self.timeouts.server_setting(self.timeouts.lock)
        return errors.LockTimeout(
            f"gave up after lock_timeout {wait} waiting for a lock on {locking.schema}.{locking.table} while {doing};"
            f" held by {held}",
            blockers=blockers,
        )

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


class SessionOwner(Generic[DesiredT]):
    """What a Postgres-family provisioner holds: its desired section and a :class:`Session`.

    The connection is the caller's (opened and closed by it); ``log.change_count``
    counts the changes a pass sent (zero for an unchanged system). Provisioners of one
    connection may share one ``session``, so its timeouts are set once.
    """

    def __init__(
        self,
        conn: psycopg.AsyncConnection[TupleRow],
        desired: DesiredT,
        *,
        timeouts: Timeouts | None = None,
        log: StatementLog | None = None,
        session: Session | None = None,
    ) -> None:
        self.desired = desired
        self.session = session if session is not None else Session(conn, timeouts or Timeouts(), log)
        self.log = self.session.log
