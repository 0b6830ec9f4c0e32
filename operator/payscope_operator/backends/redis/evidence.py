"""PayScope's Redis broker as the audit sees it: reachable, which version, how deep the dead-letter queue is.

Why this module exists: PayScope's Celery worker takes its tasks from Redis and
parks the ones that exhausted their retries in a dead-letter queue. Dimension C
needs three facts about that broker, gathered in one round of commands: it
answers ``PING``, its version (``INFO server``), and the depth of the
dead-letter queue whatever the key's type (``TYPE``, then ``LLEN``, ``ZCARD``,
``XLEN`` or ``SCARD``).

What it must not do: write to Redis, pop or read queued messages (only their
count), retry (the next audit pass does), or put the connection URL (it may
carry a password) into an exception: failures name the host and port only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from payscope_operator import errors

QUEUE_LENGTH_COMMANDS: Mapping[str, str] = {"list": "LLEN", "zset": "ZCARD", "stream": "XLEN", "set": "SCARD"}
"""How the depth of a queue is counted, by the Redis type of its key."""


@dataclass(frozen=True)
class QueueDepth:
    """The dead-letter queue: its key, the Redis type of that key, and how many entries it holds.

    ``type`` is ``none`` when the key does not exist (an empty queue); ``depth``
    is None when the key holds a type no queue is made of (a string, a hash).
    """

    key: str
    type: str
    depth: int | None


@dataclass(frozen=True)
class BrokerFacts:
    """What one round of commands saw."""

    address: str
    version: str | None
    dead_letters: QueueDepth | None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _depth(client: aioredis.Redis, key: str) -> QueueDepth:
    kind = _text(await client.type(key))
    if kind == "none":
        return QueueDepth(key, kind, 0)
    command = QUEUE_LENGTH_COMMANDS.get(kind)
    if command is None:
        return QueueDepth(key, kind, None)
    counters = {"LLEN": client.llen, "ZCARD": client.zcard, "XLEN": client.xlen, "SCARD": client.scard}
    depth = await counters[command](key)
    return QueueDepth(key, kind, int(depth))


@contextlib.contextmanager
def translated(address: str) -> Iterator[None]:
    """Redis driver errors as the operator's: refused credentials, no answer in time, unreachable, a refused read.

    Messages name ``address`` only; a server reply names the command, never the URL, and keeps its first words.
    """
    try:
        yield
    except redis.exceptions.AuthenticationError:
        raise errors.PermissionDenied(
            f"Redis at {address} refused the credentials of spec.redis.connection.secretRef"
        ) from None
    except redis.exceptions.TimeoutError:
        raise errors.DependencyUnavailable(f"Redis at {address} did not answer in time") from None
    except redis.exceptions.ConnectionError:
        raise errors.DependencyUnavailable(f"Redis at {address} is unreachable (connection refused or reset)") from None
    except redis.exceptions.ResponseError as exc:
        raise errors.DependencyUnavailable(f"Redis at {address} refused a read: {str(exc)[:80]}") from None


async def observe_depth(client: aioredis.Redis, address: str, dead_letter_queue: str | None) -> BrokerFacts:
    """Only the dead-letter queue's depth (TYPE, then its count), for a source that leaves PING to another."""
    with translated(address):
        depth = await _depth(client, dead_letter_queue) if dead_letter_queue is not None else None
    return BrokerFacts(address, None, depth)


async def observe(client: aioredis.Redis, address: str, dead_letter_queue: str | None) -> BrokerFacts:
    """PING, INFO server and, when a dead-letter queue is named, its depth.

    Raises ``errors.DependencyUnavailable`` (refused, timed out) or
    ``errors.PermissionDenied`` (credentials refused), naming ``address`` only.
    """
    with translated(address):
        if not await client.ping():
            raise errors.DependencyUnavailable(f"Redis at {address} did not answer PING")
        info = await client.info("server")
        version = info.get("redis_version")
        dead_letters = await _depth(client, dead_letter_queue) if dead_letter_queue is not None else None
    return BrokerFacts(address, _text(version) if version is not None else None, dead_letters)
