"""When each resource is reconciled: at once on a new generation, then every audit interval.

kopf delivers every watch event of every PayScopeDeployment to ``observe``;
the scheduler keeps the latest snapshot of each and runs ``reconciler.reconcile``
when one is due: immediately when it is new, its generation changed or its
pause annotation flipped, and otherwise ``spec.audit.interval`` after its last
pass. Passes over different resources run concurrently up to a bound; one
resource never has two passes at once.

Why not a kopf timer or daemon: kopf puts a finalizer on every resource that
has a timer or daemon, so deleting a resource would block while the operator
is down. ``deletionPolicy: Retain`` promises no finalizer, so the schedule is
kept here, fed by a plain event handler that needs none. No kopf here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from payscope_operator import logs
from payscope_operator.api import fields
from payscope_operator.reconcile import reconciler

logger = logging.getLogger(__name__)
DEFAULT_INTERVAL = 60.0
RETRY_AFTER_CRASH = 10.0


@dataclass
class Entry:
    resource: reconciler.Resource
    """The snapshot the next pass starts from: the watch's latest, or what our own write produced."""
    seen_version: str | None = None
    """The resourceVersion the watch last delivered (liveness compares it with the API server's)."""
    due: float = 0.0
    handled_generation: int | None = None
    handled_paused: bool | None = None
    running: bool = False
    deleting: bool = False


@dataclass
class Scheduler:
    """The per-resource schedule; ``run`` until ``stop`` is set."""

    deps: reconciler.Dependencies
    concurrency: int = 4
    entries: dict[str, Entry] = field(default_factory=dict)
    last_event: float = field(default_factory=time.monotonic)
    passes: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def observe(self, resource: reconciler.Resource, *, deleted: bool = False, deleting: bool = False) -> None:
        """A watch event: remember the latest snapshot; make it due at once if it changed."""
        self.last_event = time.monotonic()
        if deleted:
            entry = self.entries.pop(resource.uid, None)
            if entry is not None:
                self._spawn(reconciler.forget(self.deps, resource.uid))
            return
        entry = self.entries.get(resource.uid)
        if entry is None:
            entry = self.entries[resource.uid] = Entry(resource)
        entry.resource = resource
        entry.seen_version = resource.resource_version
        entry.deleting = deleting
        if entry.handled_generation != resource.generation or entry.handled_paused != resource.paused:
            entry.due = 0.0
            self._wake.set()

    def due_now(self, now: float) -> list[Entry]:
        return [e for e in self.entries.values() if not e.running and not e.deleting and e.due <= now]

    def _interval(self, resource: reconciler.Resource) -> float:
        raw = (resource.spec.get("audit") or {}).get("interval") if isinstance(resource.spec, dict) else None
        try:
            return fields.parse_duration(raw).total_seconds() if isinstance(raw, str) else DEFAULT_INTERVAL
        except ValueError:
            return DEFAULT_INTERVAL

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pass(self, entry: Entry, limit: asyncio.Semaphore) -> None:
        resource = entry.resource
        # Every line of this pass carries the resource and a pass id (the task has its own context).
        logs.bind_task(namespace=resource.namespace, name=resource.name, pass_id=logs.new_pass_id())
        try:
            async with limit:
                result = await reconciler.reconcile(self.deps, resource)
            if entry.resource is resource and result.resource_version is not None:
                # Nothing newer came from the watch: the next pass starts from what the server now holds,
                # even before the watch echoes our write (a newer snapshot, if any, is the better base).
                entry.resource = replace(resource, status=result.stored, resource_version=result.resource_version)
            entry.handled_generation = resource.generation
            entry.handled_paused = resource.paused
            entry.due = time.monotonic() + self._interval(resource)
        except Exception:
            logger.exception(
                "pass over %s/%s crashed; retrying in %ss", resource.namespace, resource.name, RETRY_AFTER_CRASH
            )
            self.deps.observer.error(resource, "pass")
            entry.due = time.monotonic() + RETRY_AFTER_CRASH
        finally:
            self.passes += 1
            entry.running = False
            if entry.resource.generation != resource.generation or entry.resource.paused != resource.paused:
                entry.due = 0.0  # changed while we worked: go again
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        limit = asyncio.Semaphore(self.concurrency)
        while not stop.is_set():
            now = time.monotonic()
            for entry in self.due_now(now):
                entry.running = True
                self._spawn(self._pass(entry, limit))
            waiting = [e.due for e in self.entries.values() if not e.running and not e.deleting]
            timeout = max(0.05, min(waiting) - now) if waiting else 5.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 5.0))
        await self.drain()

    async def drain(self) -> None:
        """Wait for passes in flight (used on shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
