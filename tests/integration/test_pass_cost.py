"""What one reconcile pass over an unchanged installation costs each external system, counted server-side.

Issue 9 asks that a pass observe each system once (the audit evaluates what
provisioning observed), and that its cost not grow with the number of tables. For 1
and for 20 tables this module builds a complete installation
(``tests.metered_pass``: Postgres 15 with RLS and tenant indexes, TimescaleDB
hypertables on PGlite, Neo4j, Pinecone, S3, Redis, the reference PayScope API,
Deployments, Secrets), converges it with real passes, then measures one more pass
that gathers every source (provisioning and audit), and again the pass after it.
Every figure is read from the server that received it (``tests.testenv.meter``). The
tests then assert that:

- the unchanged pass changed nothing (no status write, no Kubernetes write, both
  resources Provisioned) and measured the same as the pass after it;
- each system's figure is the same for 1 and for 20 tables;
- each system's figure is within its budget (``BUDGET``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests import metered_pass
from tests.conftest import unique
from tests.testenv import meter

SIZES = (1, 20)
SYSTEMS = ("postgres", "timescale", "neo4j", "redis", "s3", "pinecone", "payscope_api", "kubernetes")

# Statements or requests of one unchanged pass that gathers every source, per system, with what
# provisioning alone sends in brackets (benchmarks/pass_cost.py prints both, and the figures before
# issue 9: 23/41 (1/50 tables), 21, 7, 3, 17, 3, 49, 9). The audit evaluates what provisioning
# observed (reconcile.observations) and reads only what no plan needs. A budget is the figure
# measured: the cost of a pass can only go down.
#
# Issue 11 added evidence gathered by effect, each addition flat in the number of tables: Postgres +7
# (payscope.trail: the newest audit-log id, then at most 6 looks for the operator's own rows, here all
# of them: the metered installation's PayScope writes none); Redis +7 (celery.workers: the TYPE of the
# dead-letter queue moved here from redis.broker, the reply binding added and removed, 4 PUBLISH of the
# remote-control request, the reply list deleted; plus one BRPOP per worker's reply, none here: no
# worker runs); Pinecone +4 (pinecone.isolation: 2 queries per probe tenant and index); PayScope's API
# +6 (/metrics before and after the access and chat probes; the trail's chat query and admin read);
# Kubernetes +9 (kubernetes.pods: each Deployment's selector, its pods, their logs).
BUDGET = {
    "postgres": 18,  # (2) + table facts 1, migrations 1, audit log 2, isolation probe 5 for every RLS table, trail 7
    "timescale": 9,  # (5) simple Query and Execute messages; + table facts, migrations, audit log
    # (1) transactions: server, schema and ownership markers in one; + the untenanted-node statistics: one
    # statement, db.stats.retrieve, which takes two transaction ids of its own (it replaced a label scan
    # whose cost grew with the graph); the full scan it leaves runs at most every deepScanInterval
    "neo4j": 3,
    "redis": 10,  # (0) PING, INFO server; TYPE of the dead-letter queue and the workers' remote control
    "s3": 9,  # (8) + one anonymous listing per bucket
    "pinecone": 6,  # (1) + describe_index_stats per index, 2 isolation queries per probe tenant
    "payscope_api": 57,  # (0) fewer in a pass that reuses the agent probes (within agentProbeInterval); 2 of
    # them GET /healthz beside the first scrape of chat and access, so a frozen API fails them at once
    "kubernetes": 20,  # (0) 6 Secret reads, 6 Deployment reads, 3 pod lists, 3 pod logs, 1 list of
    # PodDisruptionBudgets, 1 of NetworkPolicies (the pod-security and availability checks); no write
}


@dataclass(frozen=True)
class Measured:
    """Two consecutive measured passes over each resource of one installation."""

    tables: int
    main: tuple[metered_pass.Pass, metered_pass.Pass]
    timescale: tuple[metered_pass.Pass, metered_pass.Pass]

    def counts(self, index: int = 0) -> dict[str, meter.Reading]:
        """Per system: the main resource's pass, and TimescaleDB from the TimescaleDB resource's pass."""
        return {**self.main[index].counts, "timescale": self.timescale[index].counts["timescale"]}

    def figures(self, index: int = 0) -> dict[str, int]:
        return meter.totals(self.counts(index))


async def _measure(kube_api: k8s.ApiClient, env: dict[str, str], setup: metered_pass.Setup) -> Measured:
    driver = metered_pass.Driver(kube_api, env)
    main_meter, timescale_meter = metered_pass.meters(env, setup)
    try:
        await driver.converge(setup.namespace, metered_pass.MAIN)
        await driver.converge(setup.namespace, metered_pass.TIMESCALE)
        main = [await driver.measure(main_meter, setup, metered_pass.MAIN) for _ in range(2)]
        timescale = [await driver.measure(timescale_meter, setup, metered_pass.TIMESCALE) for _ in range(2)]
    finally:
        await driver.close()
        main_meter.close()
        timescale_meter.close()
    return Measured(setup.tables, (main[0], main[1]), (timescale[0], timescale[1]))


@pytest.fixture(scope="module")
def measured(
    testenv: dict[str, str], kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, Measured]:
    found: dict[int, Measured] = {}
    core = k8s.CoreV1Api(kube_api)
    for tables in SIZES:
        namespace = unique("t-")
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        workdir: Path = tmp_path_factory.mktemp(f"pass-cost-{tables}")
        setup = metered_pass.build(kube_api, namespace, dict(testenv), workdir, tables)
        try:
            found[tables] = asyncio.run(_measure(kube_api, dict(testenv), setup))
        finally:
            metered_pass.teardown(kube_api, testenv, setup)
            core.delete_namespace(namespace)
    print(metered_pass.table({tables: m.figures() for tables, m in found.items()}))  # shown with -s
    return found


def _explain(reading: meter.Reading, other: meter.Reading) -> str:
    """The details that differ between two readings of one system, for a failure message."""
    keys = sorted(set(reading) | set(other), key=lambda k: (reading[k] == other[k], k))
    return "; ".join(f"{reading[k]} vs {other[k]}: {k[:120]!r}" for k in keys if reading[k] != other[k])


def test_the_unchanged_pass_changes_nothing_and_measures_the_same_twice(measured: dict[int, Measured]) -> None:
    for tables, m in measured.items():
        for passes in (m.main, m.timescale):
            for one in passes:
                assert not one.result.written, f"{tables} tables: an unchanged pass wrote the status"
                provisioned = next(c for c in one.result.status.conditions if c.type == "Provisioned")
                assert (provisioned.status.value, provisioned.reason) == ("True", "Provisioned"), provisioned.message
        for system in SYSTEMS:
            first, second = m.counts(0)[system], m.counts(1)[system]
            assert first == second, f"{tables} tables, {system}: {_explain(first, second)}"
        writes = {k: v for k, v in m.counts(0)["kubernetes"].items() if not k.startswith(("get ", "list "))}
        assert not writes, f"{tables} tables: the unchanged pass wrote to the API server: {writes}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_cost_of_a_pass_does_not_grow_with_the_tables(measured: dict[int, Measured], system: str) -> None:
    few, many = measured[SIZES[0]].counts()[system], measured[SIZES[-1]].counts()[system]
    assert sum(few.values()) == sum(many.values()), f"{system}: {SIZES[0]} vs {SIZES[-1]} tables: {_explain(few, many)}"


@pytest.mark.parametrize("system", SYSTEMS)
def test_the_cost_of_a_pass_is_within_budget(measured: dict[int, Measured], system: str) -> None:
    for tables, m in measured.items():
        figure = m.figures()[system]
        detail = ", ".join(f"{v}x {k[:80]!r}" for k, v in m.counts()[system].most_common(8))
        assert figure <= BUDGET[system], f"{tables} tables: {system} received {figure} > {BUDGET[system]}: {detail}"
