"""The operator's Postgres pool against the test Postgres: reuse, hygiene, and nothing kept for long.

Real server, observed on its side: the backend pid (``pg_backend_pid()``) says
whether two blocks shared a connection, ``pg_stat_activity`` whether a connection
is still open. A block that ends cleanly hands its connection to the next block
for the same address, with its session settings reset; a block that fails, or
that leaves a transaction open, never hands its connection on; an idle connection
is closed after ``idle_seconds`` (PGlite serves one connection at a time, so a
connection kept idle would lock everyone else out).

What it must not do: sleep and hope: the test waits for the server to show the
connection gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from payscope_operator.backends.postgres import client as postgres_client
from payscope_operator.reconcile import connections


def _opener(dsn: str) -> Any:
    return lambda: postgres_client.open_postgres(dsn)


async def _pid(conn: Any) -> int:
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    return int(row[0])


def _open_backends(dsn: str, pid: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return int(row[0]) if row else 0


async def test_a_clean_block_hands_its_connection_on_with_its_settings_reset(pg_dsn: str) -> None:
    pool = connections.Pool(idle_seconds=30)
    try:
        async with pool.connection(pg_dsn, _opener(pg_dsn)) as conn:
            first = await _pid(conn)
            await conn.execute("SELECT set_config('lock_timeout', '1234ms', false)")
        async with pool.connection(pg_dsn, _opener(pg_dsn)) as conn:
            assert await _pid(conn) == first
            row = await (await conn.execute("SHOW lock_timeout")).fetchone()
            assert row is not None
            assert row[0] != "1234ms"
            row = await (await conn.execute("SHOW statement_timeout")).fetchone()
            assert row is not None
            assert row[0] == "15s", "RESET ALL returns to the connection's own options, not the server's default"
        assert (pool.opened, pool.reused) == (1, 1)
    finally:
        await pool.close()


async def _fail_in_a_block(pool: connections.Pool, dsn: str, pids: list[int]) -> None:
    async with pool.connection(dsn, _opener(dsn)) as conn:
        pids.append(await _pid(conn))
        raise RuntimeError("the block failed")


async def test_a_failed_block_or_an_open_transaction_is_never_handed_on(pg_dsn: str) -> None:
    pool = connections.Pool(idle_seconds=30)
    try:
        pids: list[int] = []
        with pytest.raises(RuntimeError):
            await _fail_in_a_block(pool, pg_dsn, pids)
        (failed,) = pids
        async with pool.connection(pg_dsn, _opener(pg_dsn)) as conn:
            left_open = await _pid(conn)
            assert left_open != failed
            await conn.execute("BEGIN")
        async with pool.connection(pg_dsn, _opener(pg_dsn)) as conn:
            assert await _pid(conn) not in (failed, left_open)
        assert pool.reused == 0
    finally:
        await pool.close()
    assert _open_backends(pg_dsn, failed) == 0
    assert _open_backends(pg_dsn, left_open) == 0


async def test_an_idle_connection_is_closed_after_its_idle_time(pg_dsn: str) -> None:
    pool = connections.Pool(idle_seconds=0.5)
    try:
        async with pool.connection(pg_dsn, _opener(pg_dsn)) as conn:
            pid = await _pid(conn)
        assert _open_backends(pg_dsn, pid) == 1, "kept idle for the next block"
        for _ in range(100):
            if _open_backends(pg_dsn, pid) == 0:
                break
            await asyncio.sleep(0.1)
        assert _open_backends(pg_dsn, pid) == 0
        assert pool.idle == 0
    finally:
        await pool.close()


async def test_two_blocks_at_once_never_share_a_connection(pg_dsn: str) -> None:
    pool = connections.Pool(idle_seconds=30)
    try:
        async with pool.connection(pg_dsn, _opener(pg_dsn)) as one, pool.connection(pg_dsn, _opener(pg_dsn)) as other:
            assert await _pid(one) != await _pid(other)
        assert pool.idle == 2
    finally:
        await pool.close()
    assert pool.idle == 0
