"""The one object that writes a resource's status and posts its Events.

A ``StatusWriter`` is made once per pass from the snapshot the watch delivered.
It parses the stored status once (``previous``), and on ``publish`` builds the
new status, diffs it against what the API server holds and, only when they
differ, sends one JSON merge patch guarded by the snapshot's resourceVersion
(optimistic lock). Then, and only then, it posts an Event per condition
transition, followed by the Events the pass queued with ``note``: through an
``events.Poster`` when it has one (the operator: the pass does not wait for them),
inline otherwise.

Failures are the write's alone, never the pass's: on 409 the writer re-reads
the resource, rebuilds the status against what it found and diffs again
(writing nothing when the server already holds it); on 429, 5xx, a timeout or
an unreachable server it waits with exponential backoff and tries the same
write again. Because every write carries its resourceVersion, a retry is safe
even when the failed attempt did reach the server: it then gets a 409, and the
re-read finds the status already there. After ``Backoff.attempts`` tries it
gives up and says so; the next scheduled pass writes afresh. An Event that
cannot be posted is logged and dropped.

What it must not do: probe, provision or decide conditions. It knows nothing
of kopf; it reaches the API server through ``Target`` (``kube.gateway``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from payscope_operator import errors
from payscope_operator.api import status
from payscope_operator.kube import gateway
from payscope_operator.reconcile import events, readiness, report

logger = logging.getLogger(__name__)


class Target(events.Target, Protocol):
    """What the writer needs of the API server (``kube.gateway.Gateway``)."""

    async def read_status(self, ref: gateway.ObjectRef) -> gateway.StoredStatus | None: ...

    async def patch_status(
        self, ref: gateway.ObjectRef, changes: Mapping[str, Any], *, resource_version: str | None
    ) -> str | None: ...


@dataclass(frozen=True)
class Backoff:
    """How a failed write is retried: ``attempts`` tries, waiting first, first*factor, ... up to ``cap`` seconds.

    Each wait is stretched by up to ``jitter`` of itself, so that many writers
    refused at once (429) do not come back at once. A 429's Retry-After is
    honoured when it asks for longer. The first 409 is re-read at once.
    """

    first: float = 0.5
    factor: float = 2.0
    cap: float = 16.0
    attempts: int = 8
    jitter: float = 0.1

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield min(self.cap, delay) * (1 + self.jitter * random.random())  # noqa: S311 - jitter, not a secret
            delay *= self.factor


@dataclass(frozen=True)
class Published:
    """The outcome of ``publish``: the status the server holds now (when known), and how it got there."""

    status: status.PayScopeStatus
    written: bool
    transitions: int = 0
    failure: str | None = None  # why the write was given up, when it was
    gone: bool = False  # the API server no longer has the resource (404): the caller forgets it


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class StatusWriter:
    """Parse, diff, write and announce the status of one resource during one pass."""

    target: Target
    ref: gateway.ObjectRef
    stored: Mapping[str, Any] | None
    """The status exactly as the API server holds it at ``ref.resource_version``."""
    backoff: Backoff = field(default_factory=Backoff)
    sleep: Sleep = asyncio.sleep
    poster: events.Poster | None = None
    """Posts the Events in the background once the status is written (None: inline, before publish returns)."""
    previous: status.PayScopeStatus | None = field(init=False)
    """``stored`` as a model, parsed once; after a write, the status written."""
    _queued: list[report.Notice] = field(default_factory=list, init=False)
    _over_placeholder: bool = field(default=False, init=False)
    """The server holds this pass's placeholder announcement (see ``publish``)."""

    def __post_init__(self) -> None:
        self.previous = report.parse(self.stored)

    @property
    def resource_version(self) -> str | None:
        return self.ref.resource_version

    def note(self, kind: Literal["Normal", "Warning"], reason: str, message: str, *, action: str = "Reconcile") -> None:
        """Queue an Event; it is posted after the next status write (or by ``flush``)."""
        self._queued.append(report.Notice(kind, reason, message, action))

    async def flush(self) -> None:
        """Post the queued Events, in order; one that cannot be posted is logged and dropped."""
        queued, self._queued = self._queued, []
        for notice in queued:
            await self._post(notice)

    async def publish(self, draft: report.Draft, *, now: datetime.datetime, placeholder: bool = False) -> Published:
        """Make the API server hold the status of ``draft``, writing only if it does not already.

        ``placeholder``: the announcement of a resource's first pass; the status published over it next
        counts as the resource's first (its Events say only what needs attention).
        """
        delays = self.backoff.delays()
        base = self.previous  # what the server held before this publish: the Events describe the change from it
        first = base is None or self._over_placeholder
        built = report.build(draft, previous=self.previous, now=now)
        stale = False  # a 409 said the server moved on: re-read before diffing again
        landed = False  # a write failed in a way that may still have been applied
        conflicts = 0
        failure = "no attempt made"
        for _ in range(self.backoff.attempts):
            writing = False
            try:
                if stale:
                    fresh = await self.target.read_status(self.ref)
                    if fresh is None:
                        return await self._finish(base, built, written=False, failure="the resource is gone", gone=True)
                    self._adopt(fresh.resource_version, fresh.status, report.parse(fresh.status))
                    stale = False
                if self.previous is not None and report.superseded(self.previous, draft):
                    # a newer pass's status is there
                    return await self._finish(base, self.previous, written=False, first=first)
                built = report.build(draft, previous=self.previous, now=now)
                patch = report.changes(self.stored, self.previous, built)
                if patch is None:  # the server holds it already (perhaps from an attempt that timed out)
                    return await self._finish(base, built, written=landed, first=first)
                writing = True
                version = await self.target.patch_status(self.ref, patch, resource_version=self.resource_version)
            except errors.Conflict as exc:
                failure, stale, conflicts = exc.message, True, conflicts + 1
                if conflicts > 1:
                    await self.sleep(next(delays))
                continue
            except errors.TransientError as exc:
                failure, landed = exc.message, landed or writing
                wait = self._wait(delays, exc)
                logger.info("%s: %s; retrying in %.1fs", self._name, exc.message, wait)
                await self.sleep(wait)
                continue
            except errors.PermanentError as exc:
                failure = exc.message
                break
            if version is None:
                return await self._finish(base, built, written=False, failure="the resource is gone", gone=True)
            self._adopt(version, report.to_wire(built), built)
            self._over_placeholder = placeholder
            return await self._finish(base, built, written=True, first=first)
        logger.warning("%s: status not written: %s", self._name, failure)
        return await self._finish(base, built, written=False, failure=failure, first=first)

    def _wait(self, delays: Iterator[float], exc: errors.TransientError) -> float:
        wait = next(delays)
        if isinstance(exc, errors.RateLimited):
            return max(wait, min(exc.delay, self.backoff.cap))
        return wait

    @property
    def _name(self) -> str:
        return f"{self.ref.namespace}/{self.ref.name}"

    def _adopt(self, version: str, stored: Mapping[str, Any] | None, parsed: status.PayScopeStatus | None) -> None:
        self.ref = gateway.ObjectRef(self.ref.namespace, self.ref.name, self.ref.uid, version)
        self.stored = stored
        self.previous = parsed

    async def _finish(
        self,
        base: status.PayScopeStatus | None,
        held: status.PayScopeStatus,
        *,
        written: bool,
        failure: str | None = None,
        gone: bool = False,
        first: bool = False,
    ) -> Published:
        """Post the transitions' Events (only after a write), then the queued ones."""
        changed = readiness.transitions(base.conditions if base else (), held.conditions) if written else []
        for _, new in changed:
            logger.info("%s: %s=%s (%s)", self._name, new.type, new.status, new.reason)
        for notice in report.notices(changed, first=first):
            await self._post(notice)
        if not gone:
            await self.flush()  # Events about a resource that is gone would only be noise
        return Published(held, written=written, transitions=len(changed), failure=failure, gone=gone)

    async def _post(self, notice: report.Notice) -> None:
        if self.poster is not None:
            self.poster.post(self.ref, notice)
        else:
            await events.post_now(self.target, self.ref, notice)
