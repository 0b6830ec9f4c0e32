"""Open connections to the stores, each with explicit timeouts, mapping failures to our errors.

Connection strings and passwords go in, clients come out; a failure becomes
``errors.DependencyUnavailable`` (or ``PermissionDenied`` for refused
credentials) whose message names the system and the host, never the DSN,
user or password. Pinecone's and S3's clients are made by their own modules
(``vectors_client.connect``, ``objects.make_client``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import neo4j
import psycopg
import redis.asyncio as aioredis
from psycopg import conninfo

from payscope_operator import errors

CONNECT_TIMEOUT = 5


def postgres_host(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, for messages (no user, no password)."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparseable DSN"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


async def open_postgres(
    dsn: str, *, connect_timeout: float = CONNECT_TIMEOUT, statement_timeout_ms: int = 15000
) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection with a statement timeout; the caller closes it.

    The overall wait is bounded too: a server that queues connections (PGlite serves
    one at a time) must not hold a pass beyond ``connect_timeout``.
    """
    where = postgres_host(dsn)
    try:
        return await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                dsn,
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
        raise errors.DependencyUnavailable(f"Postgres at {where} is unreachable ({type(exc).__name__})") from None


def neo4j_driver(uri: str, user: str, password: str) -> neo4j.AsyncDriver:
    """A driver with short connection timeouts and no transparent retries (we retry per pass)."""
    return neo4j.AsyncGraphDatabase.driver(
        uri,
        auth=(user, password),
        connection_timeout=CONNECT_TIMEOUT,
        connection_acquisition_timeout=CONNECT_TIMEOUT * 2,
        max_transaction_retry_time=0,
        max_connection_pool_size=4,
    )


def redis_client(url: str) -> aioredis.Redis:
    """A Redis client with explicit socket timeouts."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT, retry_on_timeout=False
    )
    return client
