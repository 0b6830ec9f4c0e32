"""Untenanted Neo4j nodes, counted without reading every node each pass, against the real Neo4j 5.26.

Two declared labels of the test's own prefix: ``Account`` has a range index on the
tenant key, ``Tx`` has none. The audit's count (``audit.sources.neo4j.count_untenanted``,
with a real pass session: the resource's driver and client cache) must settle
``Account`` from server statistics alone, and scan ``Tx`` at most every
``deepScanInterval``, showing the time of the scan it reuses. PROFILE shows what the
statistics statement costs: no db hit per node.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import neo4j
import pytest
from pydantic import SecretStr

from payscope_operator.api import spec
from payscope_operator.audit.sources import neo4j as neo4j_source
from payscope_operator.backends.neo4j import cypher as neo4j_cypher
from payscope_operator.backends.neo4j import evidence as neo4j_evidence
from payscope_operator.reconcile import secrets, session
from payscope_operator.standalone import LocalCluster
from tests.integration.test_provision_neo4j import DATABASE, cypher, driver, prefix, quoted

__all__ = ["driver", "prefix"]  # fixtures used here, defined with the provisioning tests


@pytest.fixture
async def graph(prefix: str, driver: neo4j.AsyncDriver) -> tuple[str, str]:
    """``<prefix>Account`` (50 nodes with bank_id, 2 without; indexed on bank_id, freshly sampled) and
    ``<prefix>Tx`` (30 with, 1 without; no index on bank_id)."""
    account, tx = f"{prefix}Account", f"{prefix}Tx"
    await cypher(driver, f"UNWIND range(1, 52) AS i CREATE (:{quoted(account)} {{id: i, bank_id: CASE WHEN i > 50"
                         " THEN null ELSE 'bank-' + (i % 3) END})")  # fmt: skip
    await cypher(driver, f"UNWIND range(1, 31) AS i CREATE (:{quoted(tx)} {{id: i, bank_id: CASE WHEN i > 30"
                         " THEN null ELSE 'bank-a' END})")  # fmt: skip
    index = f"{prefix.lower()}_account_bank"
    await cypher(driver, f"CREATE INDEX {quoted(index)} FOR (n:{quoted(account)}) ON (n.bank_id)")
    await cypher(driver, "CALL db.awaitIndexes(60)")
    await cypher(driver, "CALL db.resampleIndex($name)", name=index)
    deadline = time.monotonic() + 30
    while True:  # wait for what the test relies on: the index sampled, with no update since
        found = await neo4j_evidence.read_statistics(driver, DATABASE, [account], "bank_id")
        assert found is not None
        if (found[account].indexed, found[account].updates) == (50, 0):
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)
    return account, tx


def pass_over(
    env: dict[str, str], labels: tuple[str, str], clients: session.ClientCache, every: str = "1h"
) -> session.PassSession:
    account, tx = labels
    desired = spec.PayScopeSpec.model_validate(
        {
            "tenancy": {"tenantKey": "bank_id"},
            "neo4j": {
                "connection": {"uri": env["PAYSCOPE_NEO4J_URI"], "secretRef": {"name": "neo4j"}},
                "database": DATABASE,
                "constraints": [{"label": tx, "properties": ["id"], "type": "Unique"}],
                "indexes": [{"label": account, "properties": ["bank_id"]}],
            },
            "audit": {"interval": "1s", "probeTimeout": "1s", "deepScanInterval": every},
        }
    )
    values = {("neo4j", "username"): env["PAYSCOPE_NEO4J_USER"], ("neo4j", "password"): env["PAYSCOPE_NEO4J_PASSWORD"]}
    resolved = secrets.Secrets({k: SecretStr(v) for k, v in values.items()})
    return session.PassSession(desired, "payscope", "psd", resolved, (), LocalCluster(), clients)


async def count(run: session.PassSession) -> dict[str, neo4j_source.Untenanted]:
    assert run.spec.neo4j is not None
    return await neo4j_source.count_untenanted(run, run.spec.neo4j, "bank_id")


async def test_statistics_settle_an_indexed_label_and_other_labels_are_scanned_at_most_every_interval(
    testenv: dict[str, str], graph: tuple[str, str], driver: neo4j.AsyncDriver
) -> None:
    account, tx = graph
    clients = session.ClientCache()
    try:
        first = await count(pass_over(testenv, graph, clients))
        assert first[account] == neo4j_source.Untenanted(
            2, True, "the count store and the tenant key index's statistics"
        )
        assert (first[tx].count, first[tx].exact) == (1, True)
        assert first[tx].how.startswith("a full scan at ")
        assert first[tx].how.endswith("(at most every 1h)")
        scanned_at = time.monotonic()

        await cypher(driver, f"CREATE (:{quoted(tx)} {{id: 100}}), (:{quoted(account)} {{id: 100}})")  # untenanted
        second = await count(pass_over(testenv, graph, clients))
        assert second[tx] == first[tx]  # within deepScanInterval: Tx's last scan is reused, its time shown
        assert second[account].count == 3  # a node without the key updates no index: statistics stay exact

        await asyncio.sleep(max(0.0, scanned_at + 1 - time.monotonic()))  # a 1s deepScanInterval is now due
        third = await count(pass_over(testenv, graph, clients, every="1s"))
        assert (third[tx].count, third[tx].how.endswith("(at most every 1s)")) == (2, True)
    finally:
        await clients.close()


async def test_the_statistics_statement_reads_no_node(graph: tuple[str, str], driver: neo4j.AsyncDriver) -> None:
    account, tx = graph
    records, summary, _ = await driver.execute_query(
        "PROFILE " + neo4j_evidence.STATISTICS, {"labels": [account, tx], "key": "bank_id"}, database_=DATABASE
    )
    assert records
    profile: dict[str, Any] = summary.profile or {}

    def hits(plan: dict[str, Any]) -> int:
        return int(plan.get("dbHits") or 0) + sum(hits(child) for child in plan.get("children", []))

    assert hits(profile) == 0  # the procedure reads the count store and index samples, not the 83 nodes
    scan, scan_summary, _ = await driver.execute_query(
        "PROFILE " + neo4j_cypher.cypher_untenanted([tx], "bank_id"), database_=DATABASE
    )
    assert scan[0]["c"] == 1
    assert hits(scan_summary.profile or {}) >= 31  # the full scan it replaces reads every node of the label
