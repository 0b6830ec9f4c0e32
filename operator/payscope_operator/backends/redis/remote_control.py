"""Celery's remote control over a Redis broker, reduced to the read-only ``inspect`` commands the audit asks.

Why this module exists: the C checks must see the Celery settings the running
workers really use (retries, backoff, time limits, acks_late, their queues), not
PayScope's account of them. Celery answers ``celery inspect`` through a mailbox
on the broker (kombu's pidbox); this is the minimal client of that mailbox over
redis-py, so the operator needs neither Celery nor kombu nor a thread.

The exchange on the wire (kombu's Redis transport, default key layout):

- the request: one kombu message per command, ``PUBLISH``ed on the fanout channel
  ``/<db>.celery.pidbox``; pub/sub stores nothing, and the number of subscribers
  ``PUBLISH`` returns is the number of workers that will answer;
- the reply path: a member ``<id>\\x06\\x16\\x06\\x16<id>.reply.celery.pidbox`` in the
  binding set ``_kombu.binding.reply.celery.pidbox`` routes the workers' replies
  (``reply_to`` names the exchange and ``<id>``) to the list
  ``<id>.reply.celery.pidbox``, which this client pops (``BRPOP``); the member and
  the list are removed again before it returns, whatever happened.

That request is the one write the audit makes on the broker; its commands
(``conf``, ``stats``, ``active_queues``, ``registered``) change nothing in a worker.

What it must not do: send a command that changes a worker (only :data:`READ_ONLY`),
touch a task queue or another client's reply list, wait past its window, or
judge the replies (``audit.sources.celery`` and the checks do).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis

NAMESPACE = "celery"
"""Celery's default control exchange (``control_exchange``)."""
READ_ONLY = frozenset({"conf", "stats", "active_queues", "registered", "ping"})
"""The commands this client may send: each only reads a worker's state."""
SEP = "\x06\x16"
"""kombu's separator inside a binding member."""

Json = Mapping[str, object]


@dataclass(frozen=True)
class Replies:
    """What the workers answered: how many were listening, and each command's reply by worker hostname."""

    listening: int
    answers: Mapping[str, Mapping[str, object]] = field(default_factory=dict)

    def of(self, command: str) -> Mapping[str, object]:
        return self.answers.get(command, {})

    @property
    def workers(self) -> tuple[str, ...]:
        """Every hostname that answered any command, sorted."""
        return tuple(sorted({host for replies in self.answers.values() for host in replies}))


def _envelope(body: Json, exchange: str, routing_key: str, headers: Json) -> bytes:
    """A kombu message as the Redis transport stores and publishes it (JSON, base64 body)."""
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": dict(headers),
            "properties": {
                "delivery_mode": 2,
                "delivery_info": {"exchange": exchange, "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


def _opened(raw: bytes) -> tuple[str | None, object]:
    """The ticket and decoded body of a reply message (None, None when it is not one)."""
    try:
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return message.get("headers", {}).get("ticket"), json.loads(body)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None


def database_of(client: aioredis.Redis) -> int:
    """The database number the client uses: kombu's virtual host, part of every channel name."""
    return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)


async def inspect(
    client: aioredis.Redis, commands: Mapping[str, Json], window: float, *, namespace: str = NAMESPACE
) -> Replies:
    """Broadcast each read-only command to every worker on the broker; collect replies for at most ``window`` s.

    Returns as soon as every listening worker answered every command. Raises
    ``ValueError`` for a command outside :data:`READ_ONLY`, and redis-py's
    errors when the broker fails (the caller turns them into evidence).
    """
    unsafe = sorted(set(commands) - READ_ONLY)
    if unsafe:
        raise ValueError(f"not a read-only remote-control command: {', '.join(unsafe)}")
    oid = str(uuid.uuid4())
    reply_exchange = f"reply.{namespace}.pidbox"
    queue = f"{oid}.{reply_exchange}"
    binding, member = f"_kombu.binding.{reply_exchange}", SEP.join((oid, "", queue))
    channel = f"/{database_of(client)}.{namespace}.pidbox"
    tickets: dict[str, str] = {}
    answers: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + window
    await client.sadd(binding, member)
    try:
        listening = 0
        for command, arguments in commands.items():
            ticket = str(uuid.uuid4())
            tickets[ticket] = command
            request = {
                "method": command,
                "arguments": dict(arguments),
                "destination": None,
                "pattern": None,
                "matcher": None,
                "ticket": ticket,
                "reply_to": {"exchange": reply_exchange, "routing_key": oid},
            }
            headers = {"clock": 1, "expires": time.time() + window}
            listening = int(await client.publish(channel, _envelope(request, f"{namespace}.pidbox", "", headers)))
        expected = listening * len(commands)
        received = 0
        while listening and received < expected and (left := deadline - time.monotonic()) > 0:
            popped = await client.brpop([queue], timeout=max(0.01, left))
            if popped is None:
                break
            raw = popped[1]
            found, body = _opened(raw.encode() if isinstance(raw, str) else raw)
            if found is not None and found in tickets and isinstance(body, dict):
                answers.setdefault(tickets[found], {}).update({str(k): v for k, v in body.items()})
                received += 1
        return Replies(listening, answers)
    finally:
        await asyncio.shield(_clean(client, binding, member, queue))


async def _clean(client: aioredis.Redis, binding: str, member: str, queue: str) -> None:
    async with client.pipeline(transaction=False) as pipe:  # two commands, one round trip
        pipe.srem(binding, member)
        pipe.delete(queue)
        await pipe.execute()
