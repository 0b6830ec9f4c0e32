"""Per-object backoff of changes that gave up waiting for a lock, so a busy table is not hammered.

Why this module exists: a DDL statement on a PayScope table waits at most
``spec.postgres.lockTimeout`` for its lock (``errors.LockTimeout``), and every reader of
the table queues behind it for that long. Retrying such a change every pass would make
that stall periodic, so each object whose change timed out waits: its next try is one
audit interval after the timeout, then two, four... (doubling, at most an hour). Its
state in ``status.provisioned`` is ``LockTimeout``, naming the sessions that held the
lock and when the next try is due. Only that object and the later actions of its scope
(``base.Action.scope``: the RLS flags after their table's policy, a hypertable's
compression after the hypertable) wait; every other action of the plan is applied.

Memory: kept in the operator's process, per resource (``reconciler.Dependencies``) and
per object ``(system, kind, name)``. It is forgotten when the object's change succeeds
or the object is found as declared, when the resource's generation changes (a new spec
is tried at once: it may change the object or the lockTimeout) and when the resource
goes away; a restarted operator tries at once, which costs one more bounded wait.

What it must not do: decide what to change (planners do), catch anything but
``errors.LockTimeout`` (every other failure stops the system's provisioning as before),
or hold more than the timed-out objects.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from payscope_operator import errors
from payscope_operator.api import conditions, status
from payscope_operator.backends import base

MAX_DELAY = 3600.0
"""Seconds: the longest wait between two tries of one object."""

Key = tuple[str, str, str]
"""An object as ``(system, kind, name)``."""


@dataclass(frozen=True)
class Waiting:
    """An object whose change timed out on a lock: how often, and when it may be tried again."""

    attempts: int
    due: float  # time.monotonic() of the next try
    due_at: datetime.datetime  # the same instant, on the wall clock (shown in status)
    message: str  # the LockTimeout's message, naming the blockers

    def describe(self) -> str:
        """The object's status message: stable between tries, so it causes no status write of its own."""
        return f"{self.message}; try {self.attempts + 1} after {self.due_at:%Y-%m-%dT%H:%M:%SZ}"


def delay(attempts: int, interval: float) -> float:
    """Seconds before try ``attempts + 1``: the interval, then doubling, at most :data:`MAX_DELAY`."""
    return min(interval * float(2 ** max(attempts - 1, 0)), MAX_DELAY)


@dataclass
class Memory:
    """The waiting objects of one resource, for the generation they were tried under."""

    generation: int | None = None
    waiting: dict[Key, Waiting] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC)

    def begin(self, generation: int) -> Memory:
        """A pass over ``generation`` starts: a new generation forgets every wait."""
        if generation != self.generation:
            self.generation = generation
            self.waiting.clear()
        return self

    def holds(self, key: Key) -> Waiting | None:
        """The wait of ``key`` when it is not yet due, else None (it may be tried now)."""
        found = self.waiting.get(key)
        return found if found is not None and self.clock() < found.due else None

    def failed(self, key: Key, exc: errors.LockTimeout, interval: float) -> Waiting:
        attempts = self.waiting[key].attempts + 1 if key in self.waiting else 1
        seconds = delay(attempts, interval)
        due_at = (self.wall() + datetime.timedelta(seconds=seconds)).replace(microsecond=0)
        self.waiting[key] = Waiting(attempts, self.clock() + seconds, due_at, exc.message)
        return self.waiting[key]

    def forget(self, key: Key) -> None:
        self.waiting.pop(key, None)


@dataclass
class Applied:
    """What :func:`apply` did to one plan: applied actions, and the objects left waiting for a lock."""

    actions: list[base.Action] = field(default_factory=list)
    waiting: dict[tuple[str, str], Waiting] = field(default_factory=dict)  # (kind, name) -> its wait
    attempted: bool = False  # a statement was sent (a timed-out one too): the system must be observed again


async def apply(
    provisioner: base.Provisioner[Any], plan: base.Plan, memory: Memory, interval: float, applied: Applied
) -> None:
    """Apply ``plan``'s actions in order, except those of a scope held by a lock.

    An action whose object waits (not yet due) is skipped with the rest of its scope; one
    that times out now starts or extends its wait, and the rest of its scope is skipped.
    Any other error is raised, as before, with ``applied`` holding what was applied.
    """
    held: dict[str, Waiting] = {}
    for action in plan.actions:
        key = (plan.system, *action.subject)
        wait = held.get(action.scope) or memory.holds(key)
        if wait is None:
            applied.attempted = True
            try:
                await provisioner.apply(action)
            except errors.LockTimeout as exc:
                wait = memory.failed(key, exc, interval)
            else:
                memory.forget(key)
                applied.actions.append(action)
                continue
        held[action.scope] = wait
        applied.waiting[action.subject] = wait


def settle(plan: base.Plan, memory: Memory, waiting: dict[tuple[str, str], Waiting]) -> base.Plan:
    """``plan`` as ``status.provisioned`` shows it: objects still waiting for a lock are ``LockTimeout``.

    An object that is as declared (Ready, or Foreign and matching) is forgotten: someone
    made the change, or the lock came free for a change in another scope.
    """
    objects = []
    for obj in plan.objects:
        key = (plan.system, obj.kind, obj.name)
        if obj.as_declared:
            memory.forget(key)
            objects.append(obj)
            continue
        wait = waiting.get((obj.kind, obj.name))
        if wait is None:
            objects.append(obj)
            continue
        objects.append(
            dataclasses.replace(
                obj,
                state=status.ProvisionState.LOCK_TIMEOUT,
                reason=conditions.Reason.LOCK_TIMEOUT,
                message=wait.describe(),
            )
        )
    return dataclasses.replace(plan, objects=tuple(objects))
