"""Per-object backoff of changes that timed out on a lock (``reconcile.object_backoff``), through provisioning.

Pure: a fake provisioner whose ``apply`` raises ``errors.LockTimeout`` for the objects a
test locks, and a clock the test moves. What is asserted is what a pass reports: the
object's state and message in ``status.provisioned``, the Provisioned condition, and
which changes were sent.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field

import pytest

from payscope_operator import errors
from payscope_operator.api import spec, status
from payscope_operator.backends import base
from payscope_operator.reconcile import object_backoff, provision
from tests.unit import fake_provisioner

LOCK_TIMEOUT = status.ProvisionState.LOCK_TIMEOUT
READY = status.ProvisionState.READY
BLOCKER = 'pid 42 (application_name "reports", idle in transaction for 3s, holds AccessShareLock)'
INTERVAL = 60.0


@dataclass(frozen=True, kw_only=True)
class TableAction(base.Action):
    """An action whose scope is its table, as the Postgres actions of one table share one."""

    table: str

    @property
    def scope(self) -> str:
        return self.table


@dataclass
class Locked(fake_provisioner.Fake):
    """Each object ``<table>.<n>`` belongs to ``<table>``; changes to ``locked`` tables time out."""

    locked: set[str] = field(default_factory=set)
    tried: list[str] = field(default_factory=list)

    def plan(self, observed: object) -> base.Plan:
        plan = super().plan(observed)  # type: ignore[arg-type]
        actions = tuple(
            TableAction(system=a.system, verb=a.verb, kind=a.kind, target=a.target, table=a.target.partition(".")[0])
            for a in plan.actions
        )
        return base.Plan(plan.system, actions, plan.objects)

    async def apply(self, action: base.Action) -> None:
        self.tried.append(action.target)
        if action.target.partition(".")[0] in self.locked:
            raise errors.LockTimeout(f"gave up after lock_timeout 1000ms; held by {BLOCKER}", blockers=(BLOCKER,))
        await super().apply(action)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def memory(clock: Clock) -> object_backoff.Memory:
    wall = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
    return object_backoff.Memory(clock=clock, wall=lambda: wall + datetime.timedelta(seconds=clock.now - 1000))


def one_pass(fake: Locked, kept: object_backoff.Memory, generation: int = 1) -> provision.Outcome:
    desired = spec.PayScopeSpec.model_validate({"audit": {"interval": "60s"}})
    run = fake_provisioner.pass_session(fake, desired)
    run.lock_backoff = kept.begin(generation)
    return asyncio.run(provision.run([fake_provisioner.factory(fake)], run, apply=True))


def states(outcome: provision.Outcome) -> dict[str, tuple[status.ProvisionState, str]]:
    return {o.name: (o.state, o.reason) for p in outcome.plans for o in p.objects}


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 60.0), (2, 120.0), (3, 240.0), (6, 1920.0), (7, 3600.0), (30, 3600.0)]
)
def test_the_wait_is_the_interval_then_doubles_up_to_an_hour(attempts: int, seconds: float) -> None:
    assert object_backoff.delay(attempts, INTERVAL) == seconds


def test_a_locked_object_waits_and_the_others_proceed() -> None:
    fake = Locked(objects=("tx.policy", "tx.rls", "accounts.policy"), locked={"tx"})
    outcome = one_pass(fake, memory(Clock()))
    assert fake.tried == ["tx.policy", "accounts.policy"]  # tx.rls waits with its table's policy
    assert states(outcome) == {
        "tx.policy": (LOCK_TIMEOUT, "LockTimeout"),
        "tx.rls": (LOCK_TIMEOUT, "LockTimeout"),
        "accounts.policy": (READY, ""),
    }
    locked = next(o for p in outcome.plans for o in p.objects if o.name == "tx.rls")
    assert BLOCKER in locked.message
    assert locked.message.endswith("try 2 after 2026-11-20T12:01:00Z")
    summary = outcome.summary(managed=True)
    assert (summary.status, summary.reason) == (status.ConditionStatus.FALSE, "LockTimeout")
    assert BLOCKER in summary.message
    assert outcome.stall() is None  # waiting for a lock is not Stalled: it resolves by itself


def test_a_waiting_object_is_not_tried_before_it_is_due_then_converges_when_the_lock_is_free() -> None:
    clock = Clock()
    kept = memory(clock)
    fake = Locked(objects=("tx.policy", "tx.rls"), locked={"tx"})
    first = one_pass(fake, kept)
    clock.now += INTERVAL - 1
    second = one_pass(fake, kept)
    assert fake.tried == ["tx.policy"]  # not due: nothing sent, so no reader queued behind it
    assert states(second) == states(first)
    assert [o.message for p in second.plans for o in p.objects] == [o.message for p in first.plans for o in p.objects]
    fake.locked.clear()
    clock.now += 1
    third = one_pass(fake, kept)
    assert fake.tried == ["tx.policy", "tx.policy", "tx.rls"]
    assert set(states(third).values()) == {(READY, "")}
    assert not kept.waiting


def test_each_new_timeout_doubles_the_wait() -> None:
    clock = Clock()
    kept = memory(clock)
    fake = Locked(objects=("tx.policy",), locked={"tx"})
    due = []
    for _ in range(4):
        one_pass(fake, kept)
        wait = kept.waiting[("neo4j", "Constraint", "tx.policy")]
        due.append(wait.due - clock.now)
        clock.now = wait.due
    assert due == [60.0, 120.0, 240.0, 480.0]
    assert len(fake.tried) == 4


def test_a_new_generation_tries_again_at_once() -> None:
    clock = Clock()
    kept = memory(clock)
    fake = Locked(objects=("tx.policy",), locked={"tx"})
    one_pass(fake, kept, generation=1)
    one_pass(fake, kept, generation=1)
    assert len(fake.tried) == 1
    one_pass(fake, kept, generation=2)
    assert len(fake.tried) == 2


def test_an_object_someone_else_fixed_is_forgotten() -> None:
    clock = Clock()
    kept = memory(clock)
    fake = Locked(objects=("tx.policy",), locked={"tx"})
    one_pass(fake, kept)
    fake.present.add("tx.policy")  # created out of band while it waited
    outcome = one_pass(fake, kept)
    assert states(outcome) == {"tx.policy": (READY, "")}
    assert not kept.waiting


def test_other_errors_still_stop_the_system() -> None:
    class Broken(Locked):
        async def apply(self, action: base.Action) -> None:
            raise errors.PermissionDenied("permission denied while creating policy")

    outcome = one_pass(Broken(objects=("tx.policy",)), memory(Clock()))
    assert [(f.reason, f.permanent) for f in outcome.failures] == [("PermissionDenied", True)]
