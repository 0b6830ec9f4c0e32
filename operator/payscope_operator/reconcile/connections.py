"""Postgres connections shared per address across passes and resources, kept idle only for a moment.

Why this module exists: a pass needs Postgres twice (the provisioner's observation,
the audit's catalog read), and a thousand resources spread over ten databases make
ten passes a second. Opening a connection costs the server a backend and the
operator's event loop the authentication (SCRAM hashes on the loop's thread): it was
the largest piece of a pass's CPU. The operator therefore keeps a :class:`Pool`: a
block that ends cleanly hands its connection back, and the next block of any pass
for the same address (the full libpq connection string, credentials included) takes
it instead of opening one. Connections held are bounded by the passes running at
once (``--concurrency``) plus ``max_idle`` idle ones per address, never by the number
of resources.

Safety: an idle connection lives at most ``idle_seconds`` (1 s): TimescaleDB on
PGlite serves one connection at a time, so a connection kept longer would lock
every other client out. A connection is handed back only when its block ended
without an exception and outside a transaction, after ``RESET ALL`` (session
settings such as the provisioner's timeouts never leak into another pass); a
broken or closed one is dropped. At most ``max_idle`` idle connections per address.

What it must not do: log or expose a key (it holds credentials), share a connection
between two blocks at once, or keep a connection idle longer than ``idle_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import pq

logger = logging.getLogger(__name__)
IDLE_SECONDS = 1.0
MAX_IDLE = 4


@dataclass
class _Idle:
    conn: Any  # psycopg.AsyncConnection
    since: float


@dataclass
class Pool:
    """Idle connections by address; ``connection`` lends one for a block."""

    idle_seconds: float = IDLE_SECONDS
    max_idle: int = MAX_IDLE
    opened: int = 0
    reused: int = 0
    _idle: dict[str, list[_Idle]] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    @contextlib.asynccontextmanager
    async def connection(self, key: str, open_: Callable[[], Awaitable[Any]]) -> AsyncIterator[Any]:
        """A connection to ``key``'s address for the block: an idle one if there is, else ``open_()``."""
        conn = self._take(key)
        if conn is None:
            conn = await open_()
            self.opened += 1
        else:
            self.reused += 1
        clean = False
        try:
            yield conn
            clean = True
        finally:
            if clean and await self._reusable(conn):
                self._give_back(key, conn)
            else:
                await _close(conn)

    @property
    def idle(self) -> int:
        return sum(len(entries) for entries in self._idle.values())

    def _take(self, key: str) -> Any:
        entries = self._idle.get(key, [])
        now = time.monotonic()
        while entries:
            entry = entries.pop()
            if now - entry.since <= self.idle_seconds and not entry.conn.closed:
                return entry.conn
            self._close_later(entry.conn)
        return None

    async def _reusable(self, conn: Any) -> bool:
        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            await conn.execute("RESET ALL")
        except Exception:  # noqa: BLE001 - any failure: the connection is not handed on
            return False
        return True

    def _give_back(self, key: str, conn: Any) -> None:
        entries = self._idle.setdefault(key, [])
        if len(entries) >= self.max_idle:
            self._close_later(conn)
            return
        entries.append(_Idle(conn, time.monotonic()))
        asyncio.get_running_loop().call_later(self.idle_seconds, self._expire, key)

    def _expire(self, key: str) -> None:
        """Close the connections of ``key`` idle for longer than ``idle_seconds``."""
        now = time.monotonic()
        entries = self._idle.get(key, [])
        keep = [e for e in entries if now - e.since < self.idle_seconds]
        for entry in entries:
            if entry not in keep:
                self._close_later(entry.conn)
        if keep:
            self._idle[key] = keep
        else:
            self._idle.pop(key, None)

    def _close_later(self, conn: Any) -> None:
        task = asyncio.ensure_future(_close(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close every idle connection (the operator is stopping)."""
        idle, self._idle = self._idle, {}
        for entries in idle.values():
            for entry in entries:
                await _close(entry.conn)
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


async def _close(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:  # closing a dead connection must not fail the block that used it
        logger.debug("closing a Postgres connection failed", exc_info=True)
