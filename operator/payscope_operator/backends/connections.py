"""Open connections to the stores, each with explicit timeouts, mapping failures to our errors.

Connection strings and passwords go in, clients come out; a failure becomes
``errors.DependencyUnavailable`` (or ``PermissionDenied`` for refused
credentials) whose message names the system and the host, never the DSN,
user or password. Pinecone's and S3's clients are made by their own modules
(``vectors_client.connect``, ``objects.make_client``).
"""

from __future__ import annotations

import neo4j
import redis.asyncio as aioredis

CONNECT_TIMEOUT = 5


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
