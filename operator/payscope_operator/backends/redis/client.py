"""How the operator talks to Redis: one client with explicit timeouts, and the server named safely.

Why this module exists: the broker's connection URL may carry a password, yet failures
must say which server failed. :func:`address_of` names it by host, port and database
only; :func:`build_client` gives the audit a client with socket timeouts and no
transparent retries (the next audit pass is the retry).

What it must not do: send commands (``evidence`` does), or put the URL into a message.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

Closer = Callable[[], Awaitable[None]]
Client = aioredis.Redis


def address_of(url: str) -> str:
    """``host:port/db`` of a redis:// URL, for messages: never the user or the password."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "localhost", parts.port or 6379
    except ValueError:
        return "an unparseable Redis URL"
    db = parts.path.lstrip("/") or "0"
    return f"{host}:{port}/{db}"


def build_client(url: str, timeout: float) -> tuple[aioredis.Redis, Closer]:
    """A client with explicit socket timeouts and no transparent retries."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
    )
    return client, client.aclose
