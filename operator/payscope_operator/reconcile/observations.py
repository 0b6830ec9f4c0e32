"""What one pass observed of each provisioned system, shared by provisioning and the audit.

Why this module exists: provisioning reads Postgres, TimescaleDB, Neo4j, Pinecone and
S3 to plan, and the audit judges the same objects. The :class:`Ledger` of a pass makes
that one read: provisioning records each system's :class:`base.Observation` here (after
applied changes, the verifying re-observation), and the audit's sources ask
:meth:`Ledger.observe` for it (``audit.context.Observations``), so the audit evaluates
exactly what provisioning saw and planned. When provisioning did not observe a system
(the resource is Stalled on a missing Secret, or the section declares nothing to
provision), the ledger observes it on the audit's first request, read-only, through the
same provisioner (``systems``' factories in their read-only use), once for all the
sources that ask. A system whose observation failed is not tried again in the same
pass: every later request raises the same error, so a dead system costs one timeout
per pass, not one per reader.

Every observation is planned here, and the plan marked with the managed objects the
last status knew (``managed.Known``): a drift is told the same way whoever observed.

Every observation honours the pass's probe timeout (``Ledger.timeout``), connecting
included (:meth:`Ledger.opened`): a frozen store (its port accepts, nothing answers)
costs a pass one probe timeout, in provisioning as in the audit, whatever longer
timeouts its client has. An observation past the bound is left to end on its own (a
Postgres driver asks the server to cancel the query and waits for the answer): the
pass records the system as unreachable and goes on at once.

What it must not do: apply anything, open a client itself (a :class:`Group` opens its
provisioners), or retry a failed observation within a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from payscope_operator import errors, logs
from payscope_operator.api import conditions
from payscope_operator.backends import base
from payscope_operator.reconcile import managed

logger = logging.getLogger(__name__)

T = TypeVar("T")
Provisioners = Sequence[base.Provisioner[Any]]
Open = Callable[[], contextlib.AbstractAsyncContextManager[Provisioners]]


@dataclass(frozen=True)
class Group:
    """Provisioners that share one client, bound to a pass: opened for a read-only observation."""

    systems: tuple[str, ...]
    open: Open


async def observe(provisioner: base.Provisioner[Any], known: managed.Known) -> base.Observation[Any]:
    """Observe and plan (pure) one system; a refused plan is kept beside the observation, not raised."""
    observed = await provisioner.observe()
    try:
        plan = known.mark(provisioner.plan(observed))
    except errors.PayScopeError as exc:
        return base.Observation(provisioner.system, observed, refusal=exc)
    return base.Observation(provisioner.system, observed, plan)


@dataclass
class Ledger:
    """The observations of one pass, by system; a failure stands for the rest of the pass."""

    groups: Sequence[Group] = ()
    known: managed.Known = field(default_factory=managed.Known)
    timeout: float | None = None
    """Seconds an observation may take, connecting included (the probe timeout); None: unbounded."""
    _seen: dict[str, base.Observation[Any] | errors.PayScopeError] = field(default_factory=dict)
    _pending: dict[tuple[str, ...], asyncio.Task[None]] = field(default_factory=dict)

    async def observe_with(self, provisioner: base.Provisioner[Any]) -> base.Observation[Any]:
        """Observe ``provisioner``'s system and record it; a failure is recorded, then raised."""
        try:
            observation = await self._within(observe(provisioner, self.known), provisioner.system)
        except errors.PayScopeError as exc:
            self._seen[provisioner.system] = exc
            raise
        self._seen[provisioner.system] = observation
        return observation

    async def _within(self, work: Coroutine[Any, Any, T], system: str) -> T:
        """``work``'s result, or DependencyUnavailable once ``timeout`` passed (``work`` then ends on its own)."""
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        task.add_done_callback(_quietly)  # its cancellation may take a while; nobody waits for it
        raise _too_slow(system, self.timeout)

    @contextlib.asynccontextmanager
    async def opened(self, opener: Open, systems: Sequence[str]) -> AsyncIterator[Provisioners]:
        """Enter ``opener()`` (connecting, for Postgres) within ``timeout``; DependencyUnavailable past it."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(self.timeout):
                    provisioners = await stack.enter_async_context(opener())
            except TimeoutError:
                raise _too_slow("/".join(systems), self.timeout) from None
            yield provisioners

    def fail(self, systems: Sequence[str], exc: errors.PayScopeError) -> None:
        """No provisioner of ``systems`` could be opened (a client, a Secret): their readers get ``exc``."""
        for system in systems:
            self._seen.setdefault(system, exc)

    def forget(self, system: str) -> None:
        """Applying changes failed part-way: what was observed before is no longer the state."""
        self._seen.pop(system, None)

    async def observe(self, system: str) -> base.Observation[Any]:
        """``system`` as this pass observed it, observing it now (once) if nobody has.

        Raises the error its observation met, in this pass, whoever met it first.
        """
        if system not in self._seen:
            group = next((g for g in self.groups if system in g.systems), None)
            if group is None:
                raise errors.PayScopeError(f"{system}: no provisioner observes it in this pass")
            task = self._pending.get(group.systems)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._observe_group(group))
                self._pending[group.systems] = task
            await asyncio.shield(task)  # a reader that times out leaves the observation to the others
        found = self._seen.get(system)
        if found is None:
            raise errors.PayScopeError(f"{system}: nothing to observe (the spec declares nothing it reads)")
        if isinstance(found, errors.PayScopeError):
            raise found
        return found

    async def _observe_group(self, group: Group) -> None:
        try:
            async with self.opened(group.open, group.systems) as provisioners:
                for provisioner in provisioners:
                    with contextlib.suppress(errors.PayScopeError), logs.bind(system=provisioner.system):
                        await self.observe_with(provisioner)  # recorded either way
        except errors.PayScopeError as exc:
            logger.info("%s could not be observed: %s", "/".join(group.systems), exc.message)
            self.fail(group.systems, exc)

    async def close(self) -> None:
        """Cancel an observation still running when the pass ends (its readers have given up)."""
        pending, self._pending = list(self._pending.values()), {}
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _too_slow(system: str, timeout: float | None) -> errors.DependencyUnavailable:
    return errors.DependencyUnavailable(
        f"{system} did not answer within {timeout or 0:g}s", reason=conditions.Reason.DEPENDENCY_TIMEOUT
    )


def _quietly(task: asyncio.Task[Any]) -> None:
    """Retrieve what an abandoned observation ended with, so that asyncio does not report it."""
    if not task.cancelled() and task.exception() is not None:
        logger.debug("an abandoned observation ended with %s", type(task.exception()).__name__)
