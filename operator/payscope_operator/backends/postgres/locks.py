"""Which sessions block a change: the lock a DDL statement waits for, and who holds it.

Why this module exists: a change that gives up waiting for its lock (``lock_timeout``)
must say who held it, so the platform team can find the session that queued PayScope's
traffic. A waiting connection cannot ask while it waits; ``client.Session`` asks right
after, on the same connection, with :data:`BLOCKERS` (what ``pg_blocking_pids`` would
report, read from ``pg_locks`` and ``pg_stat_activity``).

What it must not do: read another session's query text, or run anything but that one
bounded read.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

ALL_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
"""Every table lock mode: all of them conflict with ACCESS EXCLUSIVE (ALTER TABLE, CREATE POLICY...)."""
CONCURRENT_BUILD_CONFLICTS = ALL_MODES[2:]
"""What a concurrent index build waits for: SHARE UPDATE EXCLUSIVE's conflicts and SHARE's (writers)."""
MAX_BLOCKERS = 5


@dataclass(frozen=True)
class Locking:
    """The lock a change waits for: a mode on ``schema.table`` that sessions holding ``conflicts`` block.

    ``snapshots``: the change also waits for transactions with an older snapshot (a
    concurrent index build does), so sessions of the database holding one are blockers too.
    """

    schema: str
    table: str
    conflicts: tuple[str, ...] = ALL_MODES
    snapshots: bool = False

    @classmethod
    def exclusive(cls, schema: str, table: str) -> Locking:
        """ACCESS EXCLUSIVE on the table: every other session holding any lock on it blocks."""
        return cls(schema, table)

    @classmethod
    def concurrent_build(cls, schema: str, table: str) -> Locking:
        return cls(schema, table, CONCURRENT_BUILD_CONFLICTS, snapshots=True)


@dataclass(frozen=True)
class BlockerRow:
    """One row of :data:`BLOCKERS`: a session holding what a change waited for."""

    pid: int
    application_name: str
    state: str
    seconds: float
    modes: str

    def describe(self) -> str:
        """``pid 4242 (application_name "reports", idle in transaction for 12s, holds AccessShareLock)``."""
        return (
            f'pid {self.pid} (application_name "{self.application_name}", {self.state} for {self.seconds:.0f}s,'
            f" holds {self.modes})"
        )


BLOCKERS = sql.SQL("""
SELECT a.pid, coalesce(nullif(a.application_name, ''), '(none)') AS application_name,
    coalesce(a.state, 'unknown') AS state,
    extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::float8 AS seconds,
    string_agg(DISTINCT coalesce(l.mode, 'a snapshot'), ', ') AS modes
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND l.granted AND l.locktype = 'relation'
    AND l.relation = to_regclass(quote_ident(%(schema)s) || '.' || quote_ident(%(table)s))
    AND l.mode = ANY(%(conflicts)s::text[])
WHERE a.pid <> pg_backend_pid() AND a.datname = current_database()
    AND (l.pid IS NOT NULL OR (%(snapshots)s AND a.backend_xmin IS NOT NULL))
GROUP BY a.pid, a.application_name, a.state, a.xact_start, a.backend_start
ORDER BY seconds DESC
LIMIT %(limit)s
""")
"""The sessions of this database holding a lock that conflicts with what a change waited for (or, for a
concurrent index build, an older snapshot), longest-open first; never their queries."""
