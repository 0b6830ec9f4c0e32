"""Drive the provisioners of one pass: observe, plan, apply, verify; summarise.

For each system the spec declares: observe the actual state, plan (pure),
apply the actions when the resource is managed (``Full``, not paused), then
observe and plan again to verify, so ``status.provisioned`` shows the state
after the changes. Under ``ObserveOnly`` or while paused nothing is applied
and the planned actions become ``status.plan``, a preview platform teams can
review. One system being down never stops the others, nor does one whose
provisioner raises something unexpected (a bug): that system is reported with
reason ``UnexpectedError`` and the exception's type. This module calls the
provisioners' Protocol only; which provisioners exist is ``systems``'s job.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from payscope_operator import errors, logs
from payscope_operator.api import conditions as api_conditions
from payscope_operator.api import status
from payscope_operator.backends import base
from payscope_operator.reconcile import readiness, session

logger = logging.getLogger(__name__)
Reason = api_conditions.Reason
CS = status.ConditionStatus

Open = Callable[[session.PassSession], contextlib.AbstractAsyncContextManager[Sequence[base.Provisioner[Any]]]]


@dataclass(frozen=True)
class Factory:
    """Provisioners of one system that share a client (e.g. one Postgres connection).

    ``open`` yields no provisioner when the spec does not declare the system.
    """

    system: str
    open: Open


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
        count = sum(len(p.objects) for p in self.plans)
        return readiness.Provisioning(CS.TRUE, Reason.PROVISIONED, f"All {count} declared objects exist and match.")


async def _one(provisioner: base.Provisioner[Any], *, apply: bool, outcome: Outcome) -> None:
    plan = provisioner.plan(await provisioner.observe())
    if not plan.actions:
        outcome.plans.append(plan)
        return
    if not apply:
        outcome.preview.extend(plan.actions)
        outcome.plans.append(plan)
        return
    for action in plan.actions:
        await provisioner.apply(action)
        outcome.applied.append(action)
    outcome.plans.append(provisioner.plan(await provisioner.observe()))


async def run(factories: Sequence[Factory], run_session: session.PassSession, *, apply: bool) -> Outcome:
    """Provision every declared system, one after the other; one failing never stops the others."""
    outcome = Outcome()
    for factory in factories:
        system = factory.system
        try:
            async with factory.open(run_session) as provisioners:
                for provisioner in provisioners:
                    system = provisioner.system
                    try:
                        with logs.bind(system=system):
                            await _one(provisioner, apply=apply, outcome=outcome)
                    except Exception as exc:  # noqa: BLE001 - contained to this system (see _failure)
                        outcome.failures.append(_failure(system, exc))
        except Exception as exc:  # noqa: BLE001 - contained to this system (see _failure)
            outcome.failures.append(_failure(system, exc))
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
    for factory in factories:
        system = factory.system
        try:
            async with factory.open(run_session) as provisioners:
                for provisioner in provisioners:
                    system = provisioner.system
                    outcome.teardown.append(await provisioner.teardown())
        except errors.PayScopeError as exc:
            outcome.failures.append(_failure(system, exc))
    return outcome
