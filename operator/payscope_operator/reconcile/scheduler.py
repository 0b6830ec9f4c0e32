"""When each resource is reconciled: at once on a new generation, then every audit interval.

kopf delivers every watch event of every PayScopeDeployment to ``observe``;
the scheduler keeps the latest snapshot of each and runs ``reconciler.reconcile``
when one is due: immediately when it is new, its generation changed or its
pause annotation flipped, and otherwise ``spec.audit.interval`` after its last
pass. Passes over different resources run concurrently up to a bound; one
resource never has two passes at once. Beyond that, the scheduler bounds what
a bad day can cost (:class:`Policy` holds the figures):

- every pass has a deadline; a pass that overruns it is cancelled;
- a pass that fails (crashes, overruns, or cannot write its status) is retried
  with exponential backoff and jitter, capped, instead of at a fixed rhythm;
- a new generation (or a flipped pause annotation) cancels the pass in flight
  and starts a fresh one at once, whatever the backoff: a stale pass, perhaps
  stuck retrying against an API server that just came back, never delays a change;
- a resource Stalled on a Secret (missing, a key missing, or unreadable)
  re-reads just that Secret with a short backoff (from 2 s, doubling up to its
  interval) and is reconciled as soon as the Secret is there, without a watch
  on Secrets (no list or watch permission needed);
- a DELETED event, or a pass that finds the resource gone (404 on its status
  write), forgets the resource: the pass in flight is cancelled first, then its
  clients are closed, its memory dropped and its metric series removed, so
  nothing of it is recreated afterwards.

Why not a kopf timer or daemon: kopf puts a finalizer on every resource that
has a timer or daemon, so deleting a resource would block while the operator
is down. ``deletionPolicy: Retain`` promises no finalizer, so the schedule is
kept here, fed by a plain event handler that needs none. No kopf here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import zlib
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from payscope_operator import errors, logs
from payscope_operator.api import fields
from payscope_operator.reconcile import reconciler, secrets

logger = logging.getLogger(__name__)
DEFAULT_INTERVAL = 60.0
DEFAULT_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Policy:
    """The scheduler's bounds, in seconds."""

    deadline: float = 60.0
    """A pass is cancelled after this long (at least ``deadline_probes`` probe timeouts)."""
    deadline_probes: float = 3.0
    failure_first: float = 5.0
    """The first retry after a failed pass; each further failure doubles it ..."""
    failure_cap: float = 300.0
    """... up to this."""
    secret_first: float = 2.0
    """The first re-read of a Secret a Stalled resource waits for; doubling up to the resource's interval."""
    jitter: float = 0.1

    def deadline_for(self, probe_timeout: float) -> float:
        return max(self.deadline, self.deadline_probes * probe_timeout)

    def failure_delay(self, failures: int) -> float:
        """The wait before the next pass after ``failures`` failed passes in a row (with jitter)."""
        delay = min(self.failure_cap, self.failure_first * 2.0 ** max(0, failures - 1))
        return delay * (1 + self.jitter * random.random())  # noqa: S311 - jitter, not a secret


def pack(stored: Mapping[str, Any] | None) -> bytes | None:
    """A stored status as compressed JSON: what an entry keeps of it between passes."""
    return None if stored is None else zlib.compress(json.dumps(stored, separators=(",", ":")).encode(), 1)


def unpack(packed: bytes | None) -> dict[str, Any] | None:
    return None if packed is None else dict(json.loads(zlib.decompress(packed)))


@dataclass
class Entry:
    resource: reconciler.Resource
    """The snapshot the next pass starts from (the watch's latest, or what our own write produced), without
    its status: a status of every check parsed into dicts is over a hundred kilobytes a resource, most of
    what a thousand resources cost; it is kept in ``status``, packed, and unpacked when a pass starts."""
    status: bytes | None = None
    seen_version: str | None = None
    """The resourceVersion the watch last delivered (liveness compares it with the API server's)."""
    due: float = 0.0
    handled_generation: int | None = None
    handled_paused: bool | None = None
    deleting: bool = False
    task: asyncio.Task[None] | None = None
    """The pass in flight, if any ..."""
    started: reconciler.Resource | None = None
    """... and the snapshot it started from."""
    cancelled_because: str | None = None
    """Why the scheduler cancelled the pass in flight (superseded, forgotten)."""
    failures: int = 0
    """Failed passes in a row (reset by a pass that completes, and by a new generation)."""
    awaiting: Mapping[str, frozenset[str]] | None = None
    """Secrets (name -> keys) a Stalled resource waits for; re-read on ``secret_delay``."""
    secret_due: float = 0.0
    secret_delay: float = 0.0
    rechecking: bool = False

    @property
    def running(self) -> bool:
        return self.task is not None


@dataclass
class Scheduler:
    """The per-resource schedule; ``run`` until ``stop`` is set."""

    deps: reconciler.Dependencies
    concurrency: int = 4
    policy: Policy = field(default_factory=Policy)
    entries: dict[str, Entry] = field(default_factory=dict)
    last_event: float = field(default_factory=time.monotonic)
    passes: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def observe(
        self, resource: reconciler.Resource, *, deleted: bool = False, deleting: bool = False, listed: bool = False
    ) -> None:
        """A watch event: remember the latest snapshot; make it due at once if it changed.

        ``listed``: the snapshot came from the operator's own list, not the watch; it is reconciled the same,
        but liveness keeps comparing what the watch delivered (``seen_version``), so a broken watch still shows.
        """
        if not listed:
            self.last_event = time.monotonic()
        if deleted:
            self.forget(resource)
            return
        entry = self.entries.get(resource.uid)
        if entry is not None and entry.resource.resource_version == resource.resource_version:
            stored = entry.status  # the echo of our own write: its status is packed already
        else:
            stored = pack(resource.status)
        resource = replace(resource, status=None)
        if entry is None:
            entry = self.entries[resource.uid] = Entry(resource)
        entry.resource, entry.status = resource, stored
        if not listed:
            entry.seen_version = resource.resource_version
        entry.deleting = deleting
        if entry.handled_generation != resource.generation or entry.handled_paused != resource.paused:
            entry.due = 0.0
            entry.failures = 0
            started = entry.started
            if entry.task is not None and started is not None and _differs(started, resource):
                entry.cancelled_because = "superseded by a newer generation"
                entry.task.cancel()
            self._wake.set()

    def forget(self, resource: reconciler.Resource) -> None:
        """The resource is gone: cancel its pass in flight, then drop everything kept for it."""
        entry = self.entries.pop(resource.uid, None)
        task = entry.task if entry is not None else None
        if entry is not None and task is not None:
            entry.cancelled_because = "the resource is gone"
            task.cancel()
        self._spawn(self._forget(resource, task))

    async def _forget(self, resource: reconciler.Resource, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)  # nothing of the pass runs after this
        await reconciler.forget(self.deps, resource)
        logger.info("%s/%s is gone: its clients, memory and metrics are dropped", resource.namespace, resource.name)

    def due_now(self, now: float) -> list[Entry]:
        return [e for e in self.entries.values() if not e.running and not e.deleting and e.due <= now]

    def _durations(self, resource: reconciler.Resource) -> tuple[float, float]:
        """(interval, probe timeout) of the resource, defaults when absent or unparseable."""
        audit = resource.spec.get("audit") if isinstance(resource.spec, Mapping) else None
        audit = audit if isinstance(audit, Mapping) else {}
        found = []
        for key, default in (("interval", DEFAULT_INTERVAL), ("probeTimeout", DEFAULT_PROBE_TIMEOUT)):
            raw = audit.get(key)
            try:
                found.append(fields.parse_duration(raw).total_seconds() if isinstance(raw, str) else default)
            except ValueError:
                found.append(default)
        return found[0], found[1]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start(self, entry: Entry, limit: asyncio.Semaphore) -> None:
        entry.cancelled_because = None
        entry.started = entry.resource
        entry.task = self._spawn(self._pass(entry, limit))

    async def _pass(self, entry: Entry, limit: asyncio.Semaphore) -> None:
        snapshot = entry.resource
        resource = replace(snapshot, status=unpack(entry.status))
        interval, probe_timeout = self._durations(resource)
        deadline = self.policy.deadline_for(probe_timeout)
        # Every line of this pass carries the resource and a pass id (the task has its own context).
        logs.bind_task(namespace=resource.namespace, name=resource.name, pass_id=logs.new_pass_id())
        gone = False
        try:
            async with limit:
                async with asyncio.timeout(deadline):
                    result = await reconciler.reconcile(self.deps, resource)
            gone = result.gone
            self._completed(entry, snapshot, result, interval)
        except TimeoutError:
            logger.warning("pass over %s/%s overran its %.0fs deadline and was cancelled", *_where(resource), deadline)
            self.deps.observer.error(resource, "deadline")
            self._failed(entry)
        except asyncio.CancelledError:
            if entry.cancelled_because is None:
                raise  # the operator is stopping
            logger.info("pass over %s/%s cancelled: %s", *_where(resource), entry.cancelled_because)
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except Exception:
            logger.exception("pass over %s/%s crashed", *_where(resource))
            self.deps.observer.error(resource, "pass")
            self._failed(entry)
        finally:
            self.passes += 1
            entry.task = entry.started = None
            if _differs(entry.resource, resource):
                entry.due = 0.0  # changed while we worked: go again
            self._wake.set()
        if gone and self.entries.get(resource.uid) is entry:
            self.forget(resource)  # 404 on our write: the watch's DELETED may come later, or never

    def _completed(
        self, entry: Entry, resource: reconciler.Resource, result: reconciler.Result, interval: float
    ) -> None:
        if entry.resource is resource and result.resource_version is not None:
            # Nothing newer came from the watch: the next pass starts from what the server now holds,
            # even before the watch echoes our write (a newer snapshot, if any, is the better base).
            entry.resource = replace(resource, resource_version=result.resource_version)
            entry.status = pack(result.stored)
        entry.handled_generation = resource.generation
        entry.handled_paused = resource.paused
        if result.write_failure is not None and not result.gone:
            self._failed(entry)  # the status could not be written: it is stale until a pass writes it
        else:
            entry.failures = 0
            entry.due = time.monotonic() + interval
        entry.awaiting = result.awaiting
        if entry.awaiting:
            entry.secret_delay = self.policy.secret_first
            entry.secret_due = time.monotonic() + entry.secret_delay

    def _failed(self, entry: Entry) -> None:
        entry.failures += 1
        delay = self.policy.failure_delay(entry.failures)
        entry.due = time.monotonic() + delay
        logger.info("%s/%s: %d failed pass(es) in a row; next in %.1fs", *_where(entry.resource), entry.failures, delay)

    async def _recheck(self, entry: Entry) -> None:
        """Re-read the Secrets a Stalled resource waits for; reconcile at once when they are all there."""
        resource, wanted = entry.resource, entry.awaiting or {}
        try:
            ready = await secrets.available(resource.namespace, wanted, self.deps.cluster.read_secret)
        except errors.PayScopeError:
            ready = False
        finally:
            entry.rechecking = False
        if entry.awaiting is not wanted:
            return  # a pass ran meanwhile and decided afresh
        if ready:
            logger.info("%s/%s: the Secret(s) it waits for are there; reconciling now", *_where(resource))
            entry.awaiting = None
            entry.due = 0.0
        else:
            interval, _ = self._durations(resource)
            entry.secret_delay = min(2 * entry.secret_delay, max(interval, self.policy.secret_first))
            entry.secret_due = time.monotonic() + entry.secret_delay
        self._wake.set()

    def _next_wake(self, now: float) -> float:
        waiting = [e.due for e in self.entries.values() if not e.running and not e.deleting]
        waiting += [e.secret_due for e in self.entries.values() if e.awaiting and not e.rechecking and not e.running]
        return max(0.05, min(waiting) - now) if waiting else 5.0

    async def run(self, stop: asyncio.Event) -> None:
        limit = asyncio.Semaphore(self.concurrency)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                now = time.monotonic()
                for entry in self.due_now(now):
                    self._start(entry, limit)
                for entry in list(self.entries.values()):
                    if entry.awaiting and not entry.rechecking and not entry.running and entry.secret_due <= now:
                        entry.rechecking = True
                        self._spawn(self._recheck(entry))
                timeout = self._next_wake(now)
                self._wake.clear()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({woken, stopping}, timeout=min(timeout, 5.0), return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            stopping.cancel()
        await self.drain()

    async def drain(self) -> None:
        """Wait for passes in flight (used on shutdown and by tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _differs(one: reconciler.Resource, other: reconciler.Resource) -> bool:
    """Whether a pass over ``one`` is stale for ``other``: another generation, or the pause flipped."""
    return one.generation != other.generation or one.paused != other.paused


def _where(resource: reconciler.Resource) -> tuple[str, str]:
    return resource.namespace, resource.name
