"""One observation of each system per pass, and drift told from the last status, for every system.

Pure: fake provisioners that count their reads stand for the servers. The ledger is
what provisioning and the audit share (``reconcile.observations``); ``managed.Known``
is the memory of the last status (``reconcile.managed``). Each test asserts what a
reader gets and how many reads the system received.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from payscope_operator import errors
from payscope_operator.api import status, stores_spec
from payscope_operator.backends import base, neo4j
from payscope_operator.reconcile import managed, observations, provision
from tests.unit import fake_provisioner, observed

READY = status.ProvisionState.READY
MISSING = status.ProvisionState.MISSING
Fake = fake_provisioner.Fake
group = fake_provisioner.group


def known(*names: str, field_name: str = "neo4j") -> managed.Known:
    listed = {field_name: tuple(status.ProvisionedObject(kind="Constraint", name=n, state=READY) for n in names)}
    return managed.Known.from_status(status.PayScopeStatus(provisioned=status.Provisioned(**listed)))


async def test_what_provisioning_observed_is_what_the_audit_reads_without_a_second_read() -> None:
    fake = Fake(present={"payscope_a"})
    ledger = observations.Ledger([group(fake)])
    first = await ledger.observe_with(fake)  # provisioning
    assert await ledger.observe("neo4j") is first  # the audit
    assert fake.reads == 1


async def test_the_audit_observes_once_what_provisioning_did_not_observe_for_all_its_readers() -> None:
    fake, opened = Fake(present={"payscope_a"}, delay=0.05), list[int]()
    ledger = observations.Ledger([group(fake, opened=opened)])
    got = await asyncio.gather(*(ledger.observe("neo4j") for _ in range(3)))
    assert [o.planned().converged for o in got] == [True, True, True]
    assert (fake.reads, len(opened)) == (1, 1)


async def test_a_failed_observation_is_not_retried_in_the_same_pass() -> None:
    fake = Fake(failure=errors.DependencyUnavailable("Neo4j did not answer within 5s"))
    ledger = observations.Ledger([group(fake)])
    with pytest.raises(errors.DependencyUnavailable):
        await ledger.observe_with(fake)  # provisioning met the timeout
    for _ in range(2):  # two audit sources ask
        with pytest.raises(errors.DependencyUnavailable, match="within 5s"):
            await ledger.observe("neo4j")
    assert fake.reads == 1


async def test_a_group_that_cannot_open_fails_every_system_it_serves() -> None:
    class Broken(contextlib.AbstractAsyncContextManager[observations.Provisioners]):
        async def __aenter__(self) -> observations.Provisioners:
            raise errors.SecretNotFound("Secret 'pg' key 'dsn' is not available")

        async def __aexit__(self, *exc: object) -> None:
            return None

    ledger = observations.Ledger([observations.Group(("postgres", "timescaledb"), Broken)])
    for system in ("postgres", "timescaledb"):
        with pytest.raises(errors.SecretNotFound, match="'pg'"):
            await ledger.observe(system)


async def test_a_refused_plan_keeps_the_observation_as_evidence() -> None:
    class Refusing(Fake):
        def plan(self, observed: neo4j.model.GraphState) -> base.Plan:
            raise errors.SpecUnsatisfiable("postgres.appRole payscope_app is a superuser")

    fake = Refusing(system="postgres", present={"t"})
    observation = await observations.Ledger([group(fake)]).observe("postgres")
    assert [c.name for c in observation.observed.constraints] == ["t"]
    with pytest.raises(errors.SpecUnsatisfiable, match="superuser"):
        observation.planned()


async def test_after_applying_the_audit_reads_the_verifying_observation() -> None:
    fake = Fake()
    run = fake_provisioner.pass_session(fake)
    outcome = await provision.run([fake_provisioner.factory(fake)], run, apply=True)
    assert fake.applied == ["payscope_a"]
    assert (await run.observations.observe("neo4j")).planned().converged  # after, not before, the create
    assert fake.reads == 2  # the observation and the verifying one; the audit read none
    assert outcome.plans[0].converged


async def test_a_failed_apply_leaves_the_audit_to_observe_what_is_there() -> None:
    class Failing(Fake):
        async def apply(self, action: base.Action) -> None:
            raise errors.SpecUnsatisfiable("Neo4j refused the constraint")

    fake = Failing(present=set())
    run = fake_provisioner.pass_session(fake)
    outcome = await provision.run([fake_provisioner.factory(fake)], run, apply=True)
    assert [(f.message, f.permanent) for f in outcome.failures] == [("Neo4j refused the constraint", True)]
    assert not (await run.observations.observe("neo4j")).planned().converged
    assert fake.reads == 2  # provisioning's, then the audit's own: the first no longer says what is there


def test_a_create_of_an_object_the_last_status_listed_ready_is_drift() -> None:
    plan = Fake().plan(neo4j.model.GraphState(fake_provisioner.SERVER))
    marked = known("payscope_a").mark(plan)
    assert [(a.target, a.drift, a.detail) for a in marked.actions] == [
        ("payscope_a", True, "a constraint; dropped out of band")
    ]
    assert [(o.name, o.state, o.message) for o in marked.objects] == [("payscope_a", MISSING, "dropped out of band")]


def test_a_create_of_an_object_never_listed_ready_is_not_drift() -> None:
    plan = Fake().plan(neo4j.model.GraphState(fake_provisioner.SERVER))
    assert known("payscope_other").mark(plan) == plan
    assert known(field_name="postgres").mark(plan) == plan
    assert managed.Known.from_status(None).mark(plan) == plan


def test_known_objects_are_per_system_field_and_per_kind() -> None:
    same_name = base.Plan("pinecone", (base.Action("pinecone", base.Verb.CREATE, "PineconeIndex", "payscope_a"),))
    assert known("payscope_a").mark(same_name) == same_name  # listed under neo4j, not pinecone
    index = base.Plan("neo4j", (base.Action("neo4j", base.Verb.CREATE, "Index", "payscope_a"),))
    assert known("payscope_a").mark(index) == index  # listed as a Constraint


def test_timescale_objects_are_known_from_the_postgres_field() -> None:
    plan = base.Plan("timescaledb", (base.Action("timescaledb", base.Verb.CREATE, "Constraint", "payscope_a"),))
    assert known("payscope_a", field_name="postgres").mark(plan).actions[0].drift


def test_the_neo4j_plan_marked_from_the_last_status_recreates_as_drift() -> None:
    desired = stores_spec.Neo4j.model_validate(
        {
            "connection": {"uri": "bolt://neo4j:7687", "secretRef": {"name": "neo4j"}},
            "constraints": [{"label": "Transaction", "properties": ["id"], "type": "Unique"}],
        }
    )
    name = neo4j.model.desired_objects(desired)[0].name
    state = neo4j.model.GraphState(neo4j.model.ServerInfo("5.26.0", "community"))
    plan = neo4j.plan.plan_neo4j(desired, state, owner=observed.OWNER)
    assert [a.drift for a in plan.actions] == [False]
    assert [(a.target, a.drift) for a in known(name).mark(plan).actions] == [(name, True)]
