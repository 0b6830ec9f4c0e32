"""Events posted in the background: a pass never waits for its Events, and one resource's keep their order.

Why it exists: a new resource's first pass says what needs attention in several
Events (one per condition that is not well). Posted inline, each is a round trip to
the API server inside the pass, which holds one of the scheduler's few pass slots
meanwhile: with many resources applied at once the slots spent most of their time
posting Events while other resources waited for a first status. So the status writer
hands its Events here once the status is written; this poster sends them on tasks of
its own, in order per resource, a bounded number in flight over all resources.

Bounds, because Events are for people and must never cost the operator its job:
at most ``max_pending`` Events wait over all resources (beyond that a new one is
dropped, counted and logged, never queued without limit); a resource that is gone
(``forget``) loses its Events still waiting, as its pass in flight would have
posted none; an Event that cannot be posted is logged and dropped, as inline.
``close`` gives those waiting a moment at shutdown, then drops the rest.

What it must not do: write status, decide which Events a pass posts (``report``
and ``status_writer`` do), or retry an Event (the next transition posts its own).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol

from payscope_operator import errors
from payscope_operator.kube import gateway
from payscope_operator.reconcile import report

logger = logging.getLogger(__name__)


class Target(Protocol):
    """Where Events go (``kube.gateway.Gateway``)."""

    async def post_event(
        self,
        ref: gateway.ObjectRef,
        *,
        kind: Literal["Normal", "Warning"],
        reason: str,
        message: str,
        action: str = ...,
    ) -> None: ...


@dataclass
class Poster:
    """Posts Events on background tasks: in order per resource (by uid), at most ``concurrency`` at once."""

    target: Target
    concurrency: int = 4
    max_pending: int = 5000
    dropped: int = 0
    """Events dropped because ``max_pending`` were already waiting."""
    _queues: dict[str, collections.deque[tuple[gateway.ObjectRef, report.Notice]]] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _pending: int = 0
    _limit: asyncio.Semaphore | None = None

    @property
    def pending(self) -> int:
        """Events queued and not yet sent."""
        return self._pending

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being sent."""
        return not self._tasks

    def post(self, ref: gateway.ObjectRef, notice: report.Notice) -> None:
        """Queue one Event about ``ref``; it is sent after every Event queued before it for the same resource."""
        if self._pending >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                logger.warning("%d Event(s) dropped: %d already wait to be posted", self.dropped, self._pending)
            return
        self._queues.setdefault(ref.uid, collections.deque()).append((ref, notice))
        self._pending += 1
        if ref.uid not in self._tasks:
            self._tasks[ref.uid] = asyncio.ensure_future(self._drain(ref.uid))

    def forget(self, uid: str) -> None:
        """The resource is gone: its Events still waiting are dropped."""
        queue = self._queues.pop(uid, None)
        self._pending -= len(queue) if queue is not None else 0
        task = self._tasks.pop(uid, None)
        if task is not None:
            task.cancel()

    async def close(self, timeout: float = 5.0) -> None:
        """Let the Events waiting go out for at most ``timeout`` seconds, then drop the rest."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for uid in list(self._tasks):
            self.forget(uid)

    async def _drain(self, uid: str) -> None:
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.concurrency)
        try:
            queue = self._queues.get(uid)
            while queue:
                ref, notice = queue.popleft()
                self._pending -= 1
                async with self._limit:
                    await _post(self.target, ref, notice)
        finally:
            # No await between the queue found empty and here: a post() meanwhile cannot be stranded.
            if self._tasks.get(uid) is asyncio.current_task():
                del self._tasks[uid]
                with contextlib.suppress(KeyError):
                    if not self._queues[uid]:
                        del self._queues[uid]


async def _post(target: Target, ref: gateway.ObjectRef, notice: report.Notice) -> None:
    try:
        await target.post_event(
            ref, kind=notice.kind, reason=notice.reason, message=notice.message, action=notice.action
        )
    except errors.PayScopeError as exc:
        logger.warning("%s/%s: could not post Event %s: %s", ref.namespace, ref.name, notice.reason, exc.message)


async def post_now(target: Target, ref: gateway.ObjectRef, notice: report.Notice) -> None:
    """Post one Event inline (no poster: tests, the CLI, and Events about a resource being deleted)."""
    await _post(target, ref, notice)
