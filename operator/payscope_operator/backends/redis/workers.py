"""PayScope's Celery workers as they describe themselves over the broker: typed facts of their replies.

Why this module exists: the C checks judge the settings the running workers
really use. ``remote_control`` brings back each worker's raw replies to
``conf``, ``stats``, ``active_queues`` and ``registered``; this module reads them
into frozen facts (one :class:`Worker` per hostname, one :class:`Task` per
registered task) so a check reads ``task.max_retries``, never a reply's
structure. A value that is absent or not of Celery's type reads as None, never
as a default that could pass a check.

What it must not do: talk to Redis (``remote_control`` does), judge the facts
(the checks do), or keep a setting whose value could carry a secret (the
broker URL, result backend): only the names below are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from payscope_operator.backends.redis import remote_control

TASK_ATTRIBUTES: tuple[str, ...] = (
    "max_retries",
    "retry_backoff",
    "retry_backoff_max",
    "time_limit",
    "soft_time_limit",
    "acks_late",
)
"""The task attributes ``registered`` is asked for."""
COMMANDS: Mapping[str, remote_control.Json] = {
    "conf": {"with_defaults": False},
    "stats": {},
    "active_queues": {},
    "registered": {"taskinfoitems": list(TASK_ATTRIBUTES)},
}
"""What the audit asks every worker: its non-default settings, pool, consumed queues and tasks."""
_REGISTERED = re.compile(r"^(?P<name>\S+)(?: \[(?P<info>.*)\])?$")
Value = bool | float | str | None


@dataclass(frozen=True)
class Task:
    """One task a worker registered, with the attributes that decide retries, time limits and acks."""

    name: str
    max_retries: float | None
    retry_backoff: bool | None
    retry_backoff_max: float | None
    time_limit: float | None
    soft_time_limit: float | None
    acks_late: bool | None


@dataclass(frozen=True)
class Worker:
    """One worker (a Celery node, ``name@host``) and what it answered."""

    hostname: str
    tasks: tuple[Task, ...]
    declared_queues: tuple[str, ...]  # conf task_queues: the queues it knows (routes to)
    consumed_queues: tuple[str, ...]  # active_queues: the queues it takes tasks from
    acks_late: bool | None  # conf task_acks_late (absent: Celery's default, False)
    time_limit: float | None  # conf task_time_limit
    soft_time_limit: float | None  # conf task_soft_time_limit
    pool_timeouts: tuple[float, ...]  # stats pool.timeouts: (soft, hard) a prefork pool enforces

    @property
    def own_tasks(self) -> tuple[Task, ...]:
        """PayScope's tasks, without Celery's own ``celery.*`` ones."""
        return tuple(t for t in self.tasks if not t.name.startswith("celery."))


@dataclass(frozen=True)
class Fleet:
    """Every worker that answered, and how many were listening when asked."""

    listening: int
    workers: tuple[Worker, ...]

    @property
    def tasks(self) -> tuple[tuple[Worker, Task], ...]:
        return tuple((w, t) for w in self.workers for t in w.own_tasks)


def _value(text: str) -> Value:
    """A ``registered`` attribute as Celery printed it with ``str()``."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def task_of(line: str) -> Task | None:
    """``payscope.ingest [max_retries=5 retry_backoff=True ...]`` as a :class:`Task` (None if unreadable)."""
    match = _REGISTERED.match(line.strip())
    if match is None:
        return None
    info: dict[str, Value] = {}
    for pair in (match.group("info") or "").split():
        key, sep, raw = pair.partition("=")
        if sep:
            info[key] = _value(raw)
    return Task(
        name=match.group("name"),
        max_retries=_number(info.get("max_retries")),
        retry_backoff=_flag(info.get("retry_backoff")),
        retry_backoff_max=_number(info.get("retry_backoff_max")),
        time_limit=_number(info.get("time_limit")),
        soft_time_limit=_number(info.get("soft_time_limit")),
        acks_late=_flag(info.get("acks_late")),
    )


def _names(queues: object) -> tuple[str, ...]:
    if not isinstance(queues, list):
        return ()
    return tuple(sorted({str(q["name"]) for q in queues if isinstance(q, dict) and isinstance(q.get("name"), str)}))


def _object(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def fleet_of(replies: remote_control.Replies) -> Fleet:
    """Every answering worker's facts, by hostname."""
    workers = []
    for host in replies.workers:
        conf, stats = _object(replies.of("conf").get(host)), _object(replies.of("stats").get(host))
        registered = replies.of("registered").get(host)
        lines = registered if isinstance(registered, list) else []
        timeouts = _object(stats.get("pool")).get("timeouts")
        workers.append(
            Worker(
                hostname=host,
                tasks=tuple(t for line in lines if isinstance(line, str) and (t := task_of(line)) is not None),
                declared_queues=_names(conf.get("task_queues")),
                consumed_queues=_names(replies.of("active_queues").get(host)),
                acks_late=_flag(conf.get("task_acks_late")),
                time_limit=_number(conf.get("task_time_limit")),
                soft_time_limit=_number(conf.get("task_soft_time_limit")),
                pool_timeouts=tuple(n for t in timeouts if (n := _number(t)) is not None)
                if isinstance(timeouts, list)
                else (),
            )
        )
    return Fleet(replies.listening, tuple(workers))


async def ask(client: aioredis.Redis, address: str, window: float) -> tuple[Fleet | None, str | None]:
    """Every worker's facts over the broker at ``address``, or None and why the exchange failed."""
    try:
        replies = await remote_control.inspect(client, COMMANDS, window)
    except redis.exceptions.ResponseError as exc:
        return None, f"the broker at {address} refused the remote-control request: {str(exc)[:80]}"
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
        return None, f"the broker at {address} dropped the remote-control exchange"
    return fleet_of(replies), None
