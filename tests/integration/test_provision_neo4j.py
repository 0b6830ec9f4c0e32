"""The Neo4j provisioner against the real Neo4j 5.26 community server of the test environment.

The database is shared: every test keeps to labels starting with its ``graph_prefix``
and the ``prefix`` fixture drops whatever schema and nodes those labels carry at the
end. Idempotency is proven twice: the provisioner's count of schema-changing
statements does not move on an unchanged pass, and the server's constraint and index
ids stay the same (a recreated object would get a new id).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import neo4j
import pytest

from payscope_operator import errors
from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, ownership
from payscope_operator.backends.neo4j import model as neo4j_model
from payscope_operator.backends.neo4j import provisioner as neo4j_provisioner
from payscope_operator.reconcile import managed

DATABASE = "neo4j"
READY = status.ProvisionState.READY
OWNER = ownership.Owner("5a5a5a5a-0000-4000-8000-000000000777", "payscope", "prod")
Provisioner = functools.partial(neo4j_provisioner.Neo4jProvisioner, owner=OWNER)
"""The provisioner of one resource (OWNER): what it creates gets OWNER's marker node."""


def make_driver(env: dict[str, str], uri: str | None = None) -> neo4j.AsyncDriver:
    return neo4j.AsyncGraphDatabase.driver(
        uri or env["PAYSCOPE_NEO4J_URI"],
        auth=(env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"]),
        connection_timeout=2.0,
        connection_acquisition_timeout=3.0,
        max_transaction_retry_time=0.0,
    )


@pytest.fixture
async def driver(testenv: dict[str, str]) -> AsyncIterator[neo4j.AsyncDriver]:
    async with make_driver(testenv) as drv:
        yield drv


async def cypher(drv: neo4j.AsyncDriver, text: str, **params: Any) -> list[dict[str, Any]]:
    records, _, _ = await drv.execute_query(text, params, database_=DATABASE)
    return [record.data() for record in records]


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@pytest.fixture
async def prefix(graph_prefix: str, driver: neo4j.AsyncDriver) -> AsyncIterator[str]:
    """The test's label prefix; afterwards its constraints, indexes and nodes are removed."""
    yield graph_prefix
    where = "WHERE any(label IN coalesce(labelsOrTypes, []) WHERE label STARTS WITH $p) RETURN name"
    for row in await cypher(driver, f"SHOW CONSTRAINTS YIELD name, labelsOrTypes {where}", p=graph_prefix):
        await cypher(driver, f"DROP CONSTRAINT {quoted(row['name'])} IF EXISTS")
    for row in await cypher(driver, f"SHOW INDEXES YIELD name, labelsOrTypes {where}", p=graph_prefix):
        await cypher(driver, f"DROP INDEX {quoted(row['name'])} IF EXISTS")
    await cypher(driver, "MATCH (n) WHERE any(l IN labels(n) WHERE l STARTS WITH $p) DETACH DELETE n", p=graph_prefix)
    marked = "MATCH (m:PayScopeOwnership) WHERE m.object STARTS WITH 'payscope_' + toLower($p) DELETE m"
    await cypher(driver, marked, p=graph_prefix)


def neo4j_spec(constraints: list[dict[str, Any]], indexes: list[dict[str, Any]] | None = None) -> stores_spec.Neo4j:
    return stores_spec.Neo4j.model_validate(
        {
            "connection": {"uri": "bolt://neo4j:7687", "secretRef": {"name": "neo4j"}},
            "database": DATABASE,
            "constraints": constraints,
            "indexes": indexes or [],
        }
    )


def full_spec(p: str) -> stores_spec.Neo4j:
    return neo4j_spec(
        [
            {"label": f"{p}Transaction", "properties": ["id"]},
            {"label": f"{p}Transaction", "properties": ["bank_id", "ref"]},
        ],
        [
            {"label": f"{p}Account", "properties": ["bank_id"]},
            {"label": f"{p}Account", "properties": ["name"], "type": "Text"},
            {"label": f"{p}Transaction", "properties": ["id"]},  # covered by the constraint's own index
        ],
    )


async def run_pass(provisioner: neo4j_provisioner.Neo4jProvisioner, known: managed.Known | None = None) -> base.Plan:
    """One reconcile pass: observe, plan (marked with what the last status ``known`` listed), apply every action."""
    plan = (known or managed.Known()).mark(provisioner.plan(await provisioner.observe()))
    for action in plan.actions:
        await provisioner.apply(action)
    return plan


async def settled(provisioner: neo4j_provisioner.Neo4jProvisioner, timeout: float = 15.0) -> base.Plan:
    """The plan once new indexes have populated (Neo4j brings them ONLINE asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        plan = provisioner.plan(await provisioner.observe())
        pending = any(o.state is status.ProvisionState.PENDING for o in plan.objects)
        if not pending or asyncio.get_running_loop().time() > deadline:
            return plan
        await asyncio.sleep(0.2)


async def schema(drv: neo4j.AsyncDriver, p: str) -> dict[str, tuple[int, str, list[str]]]:
    """Name → (id, type, properties) of every constraint and index on the test's labels."""
    found: dict[str, tuple[int, str, list[str]]] = {}
    for show in ("CONSTRAINTS", "INDEXES"):
        rows = await cypher(
            drv,
            f"SHOW {show} YIELD id, name, type, labelsOrTypes, properties "
            "WHERE any(l IN coalesce(labelsOrTypes, []) WHERE l STARTS WITH $p) RETURN id, name, type, properties",
            p=p,
        )
        for row in rows:
            found[f"{show.lower()}:{row['name']}"] = (row["id"], row["type"], row["properties"])
    return found


async def test_create_from_nothing(driver: neo4j.AsyncDriver, prefix: str) -> None:
    provisioner = Provisioner(driver, full_spec(prefix), timeout=10.0)
    first = await run_pass(provisioner)
    low = prefix.lower()
    assert [(a.verb, a.target) for a in first.actions] == [
        ("create", f"payscope_{low}transaction_id_unique"),
        ("create", f"payscope_{low}transaction_bank_id_ref_unique"),
        ("create", f"payscope_{low}account_bank_id_range"),
        ("create", f"payscope_{low}account_name_text"),
    ]
    assert provisioner.schema_changes == 4
    assert (first.objects[-1].name, first.objects[-1].message) == (
        f"payscope_{low}transaction_id_range",
        f"comes with payscope_{low}transaction_id_unique",
    )
    after = await settled(provisioner)
    assert after.converged, after
    found = await schema(driver, prefix)
    assert found[f"constraints:payscope_{low}transaction_bank_id_ref_unique"][1:] == ("UNIQUENESS", ["bank_id", "ref"])
    assert found[f"indexes:payscope_{low}account_name_text"][1:] == ("TEXT", ["name"])
    assert found[f"indexes:payscope_{low}account_bank_id_range"][1:] == ("RANGE", ["bank_id"])
    # The declared range index on Transaction.id is the constraint's own: no second index was made.
    assert f"indexes:payscope_{low}transaction_id_range" not in found
    present = {o.name: o.message for o in after.objects}
    assert present[f"payscope_{low}transaction_id_range"] == (f"present as payscope_{low}transaction_id_unique")


async def test_unchanged_second_pass_sends_no_schema_change(driver: neo4j.AsyncDriver, prefix: str) -> None:
    provisioner = Provisioner(driver, full_spec(prefix), timeout=10.0)
    await run_pass(provisioner)
    before, sent = await schema(driver, prefix), provisioner.schema_changes
    second = await run_pass(provisioner)
    assert second.actions == ()
    assert (await settled(provisioner)).converged
    assert provisioner.schema_changes == sent
    restarted = Provisioner(driver, full_spec(prefix), timeout=10.0)  # e.g. after an operator restart
    assert (await run_pass(restarted)).actions == ()
    assert restarted.schema_changes == 0
    assert await schema(driver, prefix) == before  # same ids: nothing was dropped and recreated


async def test_out_of_band_drop_is_found_and_restored(driver: neo4j.AsyncDriver, prefix: str) -> None:
    provisioner = Provisioner(driver, full_spec(prefix), timeout=10.0)
    await run_pass(provisioner)
    written = status.PayScopeStatus(  # what the last pass wrote: every object Ready
        provisioned=status.Provisioned(
            neo4j=tuple(
                status.ProvisionedObject(kind=o.kind, name=o.name, state=o.state)
                for o in (await settled(provisioner)).objects
            )
        )
    )
    name = f"payscope_{prefix.lower()}transaction_id_unique"
    await cypher(driver, f"DROP CONSTRAINT {name}")
    assert f"constraints:{name}" not in await schema(driver, prefix)  # gone (Neo4j may reuse its id: no id check)

    restarted = Provisioner(driver, full_spec(prefix), timeout=10.0)  # e.g. a new pass
    plan = await run_pass(restarted, managed.Known.from_status(written))
    assert [(a.verb, a.target, a.drift) for a in plan.actions] == [("create", name, True)]
    assert "dropped out of band" in plan.actions[0].describe()
    found = await schema(driver, prefix)
    assert found[f"constraints:{name}"][1:] == ("UNIQUENESS", ["id"])
    assert (await settled(restarted)).converged


async def test_our_name_redefined_out_of_band_is_replaced(driver: neo4j.AsyncDriver, prefix: str) -> None:
    provisioner = Provisioner(driver, full_spec(prefix), timeout=10.0)
    await run_pass(provisioner)
    name = f"payscope_{prefix.lower()}transaction_id_unique"
    await cypher(driver, f"DROP CONSTRAINT {name}")
    await cypher(driver, f"CREATE CONSTRAINT {name} FOR (n:{prefix}Transaction) REQUIRE n.other IS UNIQUE")

    plan = await run_pass(provisioner)
    assert [(a.verb, a.target, a.drift) for a in plan.actions] == [("drop", name, True), ("create", name, True)]
    assert (await schema(driver, prefix))[f"constraints:{name}"][1:] == ("UNIQUENESS", ["id"])
    assert (await settled(provisioner)).converged


async def test_an_equivalent_under_another_name_is_left_alone(driver: neo4j.AsyncDriver, prefix: str) -> None:
    spec = neo4j_spec([{"label": f"{prefix}Account", "properties": ["iban"]}])
    provisioner = Provisioner(driver, spec, timeout=10.0)
    stale = provisioner.plan(await provisioner.observe())  # planned before the equivalent appears
    await cypher(driver, f"CREATE CONSTRAINT {prefix}_own_iban FOR (n:{prefix}Account) REQUIRE n.iban IS UNIQUE")
    for action in stale.actions:
        await provisioner.apply(action)  # IF NOT EXISTS: the server keeps the equivalent, no error

    plan = await run_pass(provisioner)
    assert plan.actions == ()
    (obj,) = plan.objects
    assert (obj.state, obj.matches) == (status.ProvisionState.FOREIGN, True)  # audited as present, never touched
    assert obj.message.startswith(f"present as {prefix}_own_iban, not created by this resource")
    assert list(await schema(driver, prefix)) == [f"constraints:{prefix}_own_iban", f"indexes:{prefix}_own_iban"]
    assert await cypher(driver, "MATCH (m:PayScopeOwnership {object: $o}) RETURN m.uid", o=f"{prefix}_own_iban") == []


async def test_our_range_index_makes_way_for_a_new_constraint(driver: neo4j.AsyncDriver, prefix: str) -> None:
    index = {"label": f"{prefix}Account", "properties": ["iban"]}
    await run_pass(Provisioner(driver, neo4j_spec([], [index]), timeout=10.0))
    # The spec later makes the indexed property unique: Neo4j refuses the constraint while the index exists.
    provisioner = Provisioner(driver, neo4j_spec([index], [index]), timeout=10.0)
    low = prefix.lower()
    plan = await run_pass(provisioner)
    assert [(a.verb, a.target) for a in plan.actions] == [
        ("drop", f"payscope_{low}account_iban_range"),
        ("create", f"payscope_{low}account_iban_unique"),
    ]
    assert (await settled(provisioner)).converged
    assert sorted(await schema(driver, prefix)) == [
        f"constraints:payscope_{low}account_iban_unique",
        f"indexes:payscope_{low}account_iban_unique",
    ]


async def test_enterprise_constraints_on_community_are_unsupported(driver: neo4j.AsyncDriver, prefix: str) -> None:
    spec = neo4j_spec(
        [
            {"label": f"{prefix}Account", "properties": ["iban"], "type": "Exists"},
            {"label": f"{prefix}Account", "properties": ["bank_id", "iban"], "type": "NodeKey"},
            {"label": f"{prefix}Account", "properties": ["id"]},
        ]
    )
    provisioner = Provisioner(driver, spec, timeout=10.0)
    observed = await provisioner.observe()
    assert observed.server.edition == "community"
    assert observed.server.version.startswith("5.26.")
    plan = await run_pass(provisioner)
    low = prefix.lower()
    assert [a.target for a in plan.actions] == [f"payscope_{low}account_id_unique"]
    assert [(o.state, o.reason) for o in plan.objects[:2]] == [
        (status.ProvisionState.FAILED, conditions.Reason.UNSUPPORTED_ON_EDITION)
    ] * 2
    assert [(b.reason, b.permanent) for b in plan.blockers] == [(conditions.Reason.UNSUPPORTED_ON_EDITION, True)] * 2
    assert sorted(await schema(driver, prefix)) == [
        f"constraints:payscope_{low}account_id_unique",
        f"indexes:payscope_{low}account_id_unique",
    ]
    # Had the edition been misread, the server's refusal still maps to the same reason.
    (exists, *_) = neo4j_model.desired_objects(spec)
    forced = neo4j_model.CreateSchema("neo4j", base.Verb.CREATE, "constraint", exists.name, object=exists)
    with pytest.raises(errors.SpecUnsatisfiable) as refused:
        await provisioner.apply(forced)
    assert refused.value.reason == conditions.Reason.UNSUPPORTED_ON_EDITION


async def test_duplicate_data_blocks_a_uniqueness_constraint(driver: neo4j.AsyncDriver, prefix: str) -> None:
    label = f"{prefix}Account"
    spec = neo4j_spec([{"label": label, "properties": ["iban"]}, {"label": label, "properties": ["id"]}])
    provisioner = Provisioner(driver, spec, timeout=10.0)
    stale = provisioner.plan(await provisioner.observe())  # planned while the data was still clean
    await cypher(driver, f"CREATE (:{label} {{iban: 'DE0001', id: 1}}), (:{label} {{iban: 'DE0001', id: 2}})")

    plan = await run_pass(provisioner)
    name = f"payscope_{prefix.lower()}account_iban_unique"
    assert [a.target for a in plan.actions] == [f"payscope_{prefix.lower()}account_id_unique"]
    failed = plan.objects[0]
    assert (failed.name, failed.state, failed.reason) == (
        name,
        status.ProvisionState.FAILED,
        conditions.Reason.CONSTRAINT_VIOLATED_BY_DATA,
    )
    assert f"label {label}" in failed.message
    assert "property iban" in failed.message
    assert "DE0001" not in failed.message
    assert [(b.reason, b.permanent) for b in plan.blockers] == [(conditions.Reason.CONSTRAINT_VIOLATED_BY_DATA, True)]

    # The server's own refusal (data changed between plan and apply) gives the same reason.
    with pytest.raises(errors.SpecUnsatisfiable) as refused:
        await provisioner.apply(stale.actions[0])
    assert refused.value.reason == conditions.Reason.CONSTRAINT_VIOLATED_BY_DATA
    assert label in refused.value.message
    assert "iban" in refused.value.message
    assert "DE0001" not in refused.value.message
    assert f"constraints:{name}" not in await schema(driver, prefix)

    await cypher(driver, f"MATCH (n:{label} {{id: 2}}) SET n.iban = 'DE0002'")
    assert [a.target for a in (await run_pass(provisioner)).actions] == [name]
    assert (await settled(provisioner)).converged


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_server_is_transient_then_recovers(testenv: dict[str, str], prefix: str) -> None:
    spec = full_spec(prefix)
    async with make_driver(testenv, f"bolt://127.0.0.1:{closed_port()}") as dead:
        provisioner = Provisioner(dead, spec, timeout=5.0)
        started = time.monotonic()
        with pytest.raises(errors.DependencyUnavailable) as unreachable:
            await provisioner.observe()
        assert time.monotonic() - started < 5.0
        assert unreachable.value.reason == "DependencyUnavailable"
        assert testenv["PAYSCOPE_NEO4J_PASSWORD"] not in unreachable.value.message
        assert "127.0.0.1" not in unreachable.value.message
        with pytest.raises(errors.DependencyUnavailable):
            await provisioner.teardown()
        assert provisioner.schema_changes == 0

    async with make_driver(testenv) as alive:
        provisioner = Provisioner(alive, spec, timeout=5.0)
        await run_pass(provisioner)
        assert (await settled(provisioner)).converged


async def test_teardown_removes_only_managed_declared_objects(driver: neo4j.AsyncDriver, prefix: str) -> None:
    label = f"{prefix}Account"
    earlier = neo4j_spec([{"label": label, "properties": ["legacy"]}])
    await run_pass(Provisioner(driver, earlier, timeout=10.0))  # an entry later removed from the spec
    await cypher(driver, f"CREATE CONSTRAINT {prefix}_own_iban FOR (n:{label}) REQUIRE n.iban IS UNIQUE")
    spec = neo4j_spec(
        [{"label": label, "properties": ["id"]}, {"label": label, "properties": ["iban"]}],
        [{"label": label, "properties": ["bank_id"]}, {"label": label, "properties": ["name"], "type": "Text"}],
    )
    provisioner = Provisioner(driver, spec, timeout=10.0)
    await run_pass(provisioner)
    await cypher(driver, f"UNWIND range(1, 5) AS i CREATE (:{label} {{id: i, iban: 'DE' + i, bank_id: 'b1'}})")

    result = await provisioner.teardown()
    low = prefix.lower()
    assert result.system == "neo4j"
    assert result.removed == (
        f"payscope_{low}account_id_unique",
        f"payscope_{low}account_bank_id_range",
        f"payscope_{low}account_name_text",
    )
    assert result.kept == (f"{prefix}_own_iban: not created by the operator",)
    assert sorted(await schema(driver, prefix)) == sorted(
        [
            f"constraints:payscope_{low}account_legacy_unique",
            f"constraints:{prefix}_own_iban",
            f"indexes:payscope_{low}account_legacy_unique",
            f"indexes:{prefix}_own_iban",
        ]
    )
    assert (await cypher(driver, f"MATCH (n:{label}) RETURN count(n) AS nodes")) == [{"nodes": 5}]
    assert (await provisioner.teardown()).removed == ()  # nothing left to remove
