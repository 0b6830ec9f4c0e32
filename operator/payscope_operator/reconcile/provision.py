"""Drive the provisioners of one pass: observe, plan, apply, verify; summarise.

For each system the spec declares objects for: observe the actual state, plan (pure),
apply the actions when the resource is managed (``Full``, not paused), then observe
and plan again to verify, so ``status.provisioned`` shows the state after the changes.
Under ``ObserveOnly`` or while paused nothing is applied and the planned actions
become ``status.plan``, a preview platform teams can review. One system being down
never stops the others, nor does one whose provisioner raises something unexpected
(a bug): that system is reported with reason ``UnexpectedError`` and the exception's
type. Within a system a change that gives up waiting for a lock (``errors.LockTimeout``)
stops only its own scope: it waits with per-object backoff (``object_backoff``) while the
other changes are applied. Every observation goes through the pass's
``observations.Ledger``, which keeps it for the audit (one read of each system per
pass). This module calls the provisioners' Protocol only; which provisioners exist is
``systems``'s job.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from payscope_operator import errors, logs
from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import fields, spec, status
from payscope_operator.backends import base
from payscope_operator.reconcile import managed, object_backoff, observations, readiness, session

logger = logging.getLogger(__name__)
Reason = api_conditions.Reason
CS = status.ConditionStatus

Open = Callable[[session.PassSession], contextlib.AbstractAsyncContextManager[observations.Provisioners]]


@dataclass(frozen=True)
class Factory:
    """Provisioners of one group of systems that share a client (e.g. one Postgres connection).

    ``open`` yields the provisioners of every system whose section the spec has (none
    when it is absent): the audit may observe a section that declares nothing to
    provision. ``provisions`` says whether the spec declares objects for provisioning
    and teardown to handle. Failures to open are reported under ``systems[0]``.
    """

    systems: tuple[str, ...]
    open: Open
    provisions: Callable[[spec.PayScopeSpec], bool]

    @property
    def system(self) -> str:
        return self.systems[0]


def ledger(
    factories: Sequence[Factory], run: session.PassSession, previous: status.PayScopeStatus | None = None
) -> observations.Ledger:
    """The observations ledger of ``run``: each factory bound to it (for the audit's read-only use),
    and the managed objects the ``previous`` status lists (their loss is drift)."""
    groups = [observations.Group(f.systems, functools.partial(f.open, run)) for f in factories]
    timeout = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()
    return observations.Ledger(groups, managed.Known.from_status(previous), timeout=timeout)


@dataclass(frozen=True)
class SystemFailure:
    system: str
    reason: str
    message: str
    permanent: bool


@dataclass
class Outcome:
    """What provisioning did and found in one pass."""

    plans: list[base.Plan] = field(default_factory=list)
    applied: list[base.Action] = field(default_factory=list)
    preview: list[base.Action] = field(default_factory=list)
    failures: list[SystemFailure] = field(default_factory=list)
    teardown: list[base.TeardownResult] = field(default_factory=list)

    def stall(self) -> readiness.Stall | None:
        """A permanent blocker or failure stalls the resource, naming the object."""
        for failure in self.failures:
            if failure.permanent:
                return readiness.Stall(failure.reason, f"{failure.system}: {failure.message}")
        for plan in self.plans:
            for blocker in plan.blockers:
                if blocker.permanent:
                    return readiness.Stall(blocker.reason, f"{plan.system}: {blocker.message}")
        return None

    def pending(self) -> str | None:
        """A message while declared objects are still being created (Reconciling)."""
        names = [
            f"{p.system} {o.kind} {o.name}"
            for p in self.plans
            for o in p.objects
            if o.state == status.ProvisionState.PENDING
        ]
        return f"Waiting for {', '.join(names[:5])} to become ready." if names else None

    def foreign(self) -> list[str]:
        """One ``status.plan`` line per object left as found because this resource does not own it."""
        return [
            f"{p.system}: leave {o.kind} {o.name} as found (Foreign: {o.message})"
            for p in self.plans
            for o in p.objects
            if o.state == status.ProvisionState.FOREIGN
        ]

    def summary(self, *, managed: bool) -> readiness.Provisioning:
        """The Provisioned condition's status, reason and message."""
        transient = [f for f in self.failures if not f.permanent]
        if transient:
            first = transient[0]
            return readiness.Provisioning(CS.UNKNOWN, first.reason, f"{first.system}: {first.message}")
        if not self.plans:
            return readiness.Provisioning(
                CS.TRUE, Reason.NOTHING_TO_PROVISION, "The spec declares no external objects."
            )
        blockers = [(p.system, b) for p in self.plans for b in p.blockers]
        if blockers:
            system, blocker = blockers[0]
            more = f" ({len(blockers) - 1} more)" if len(blockers) > 1 else ""
            return readiness.Provisioning(CS.FALSE, blocker.reason, f"{system}: {blocker.message}{more}")
        locked = [(p.system, o) for p in self.plans for o in p.objects if o.state is status.ProvisionState.LOCK_TIMEOUT]
        if locked:
            system, obj = locked[0]
            more = f" ({len(locked) - 1} more)" if len(locked) > 1 else ""
            message = f"{system} {obj.kind} {obj.name}: {obj.message}{more}"
            return readiness.Provisioning(CS.FALSE, Reason.LOCK_TIMEOUT, message)
        if self.preview:
            reason = Reason.OBSERVE_ONLY if not managed else Reason.DRIFT_DETECTED
            return readiness.Provisioning(
                CS.FALSE, reason, f"{len(self.preview)} change(s) not applied; status.plan lists them."
            )
        pending = self.pending()
        if pending:
            return readiness.Provisioning(CS.FALSE, Reason.PROVISIONING_PENDING, pending)
        unconverged = [p.system for p in self.plans if p.actions]
        if unconverged:
            return readiness.Provisioning(
                CS.FALSE, Reason.PROVISIONING_FAILED, "Changes applied but not yet verified: " + ", ".join(unconverged)
            )
        foreign = [(p.system, o) for p in self.plans for o in p.objects if o.state == status.ProvisionState.FOREIGN]
        differing = [f"{system} {o.kind} {o.name}" for system, o in foreign if not o.matches]
        if differing:
            message = f"{', '.join(differing[:5])}: not created by this resource and not as declared; left as found"
            return readiness.Provisioning(CS.FALSE, Reason.DRIFT_DETECTED, message + " (adopt: true takes one over).")
        count = sum(len(p.objects) for p in self.plans)
        kept = f" ({len(foreign)} of them Foreign: not created by this resource, left as found)" if foreign else ""
        return readiness.Provisioning(
            CS.TRUE, Reason.PROVISIONED, f"All {count} declared objects exist and match{kept}."
        )


async def _one(provisioner: base.Provisioner[Any], run: session.PassSession, outcome: Outcome, apply: bool) -> None:
    ledger = run.observations
    plan = (await ledger.observe_with(provisioner)).planned()
    if not plan.actions:
        outcome.plans.append(object_backoff.settle(plan, run.lock_backoff, {}))
        return
    if not apply:
        outcome.preview.extend(plan.actions)
        outcome.plans.append(plan)
        return
    applied = object_backoff.Applied()
    interval = fields.parse_duration(run.spec.audit.interval).total_seconds()
    try:
        await object_backoff.apply(provisioner, plan, run.lock_backoff, interval, applied)
    except Exception:
        ledger.forget(provisioner.system)  # the audit observes what is there now, on its own
        raise
    finally:
        outcome.applied.extend(applied.actions)
    if applied.attempted:
        plan = (await ledger.observe_with(provisioner)).planned()
    outcome.plans.append(object_backoff.settle(plan, run.lock_backoff, applied.waiting))


Step = Callable[[base.Provisioner[Any]], Awaitable[None]]


async def _each(factories: Sequence[Factory], run: session.PassSession, outcome: Outcome, step: Step) -> None:
    """``step`` on every provisioner of every factory that provisions something; failures go to ``outcome``."""
    for factory in factories:
        if not factory.provisions(run.spec):
            continue
        system = factory.system
        try:
            async with run.observations.opened(functools.partial(factory.open, run), factory.systems) as provisioners:
                for provisioner in provisioners:
                    system = provisioner.system
                    try:
                        with logs.bind(system=system):
                            await step(provisioner)
                    except Exception as exc:  # noqa: BLE001 - contained to this system (see _failure)
                        outcome.failures.append(_failure(system, exc))
        except errors.PayScopeError as exc:
            run.observations.fail(factory.systems, exc)
            outcome.failures.append(_failure(system, exc))
        except Exception as exc:  # noqa: BLE001 - contained to this system (see _failure)
            outcome.failures.append(_failure(system, exc))


async def run(factories: Sequence[Factory], run_session: session.PassSession, *, apply: bool) -> Outcome:
    """Provision every declared system, one after the other; one failing never stops the others."""
    outcome = Outcome()

    async def step(provisioner: base.Provisioner[Any]) -> None:
        await _one(provisioner, run_session, outcome, apply)

    await _each(factories, run_session, outcome, step)
    return outcome


def _failure(system: str, exc: Exception) -> SystemFailure:
    """What one system's failure means for the pass; an unexpected exception is contained, never raised."""
    if not isinstance(exc, errors.PayScopeError):
        logger.warning("%s: provisioning failed unexpectedly", system, exc_info=exc)
        return SystemFailure(system, Reason.UNEXPECTED_ERROR, errors.describe_unexpected(exc), permanent=False)
    return SystemFailure(system, exc.reason, exc.message, permanent=isinstance(exc, errors.PermanentError))


async def teardown(factories: Sequence[Factory], run_session: session.PassSession) -> Outcome:
    """``deletionPolicy: Delete``: remove what we created; failures are reported, not raised."""
    outcome = Outcome()

    async def step(provisioner: base.Provisioner[Any]) -> None:
        outcome.teardown.append(await provisioner.teardown())

    await _each(factories, run_session, outcome, step)
    return outcome
