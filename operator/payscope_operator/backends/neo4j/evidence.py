"""What the audit reads from Neo4j beyond what the provisioner observes: nodes lacking the tenant key.

Why this module exists: the schema (server, constraints, indexes) is the provisioner's
observation, which the audit shares (``reconcile.observations``); whether PayScope's
nodes carry the tenant property is a fact of the data no plan needs, so the audit reads
it here, without reading every node each interval:

- :func:`read_statistics`: one statement, ``db.stats.retrieve('GRAPH COUNTS')``, gives each
  declared label's node count from the count store and, for a range index on
  ``(label, tenant key)``, its entry count as of its last sample and the updates since
  (PROFILE: no db hit grows with the data). A label with no node has no untenanted node;
  with such an index sampled since its last update, nodes minus entries is exact (adding
  a node without the key updates no index); after updates it bounds the answer, which is
  enough when the bound already shows untenanted nodes (:func:`judge`).
- :func:`count_untenanted`: the full scan ``MATCH (n:L) WHERE n.key IS NULL`` (a label scan
  reading every node's property: 2 db hits per node), for the labels nothing else answers.
  A range index cannot answer ``IS NULL``; callers run it at most every
  ``spec.audit.deepScanInterval``.

What it must not do: change the schema or the data, read the schema again, or name a
node's values (only counts per label leave this module).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import neo4j

from payscope_operator import errors
from payscope_operator.backends.neo4j import client, cypher

STATISTICS = """
CALL db.stats.retrieve('GRAPH COUNTS') YIELD data
RETURN [n IN data.nodes WHERE n.label IN $labels] AS nodes,
       [i IN data.indexes WHERE size(i.labels) = 1 AND i.labels[0] IN $labels AND i.properties = [$key]] AS indexes
"""
"""Node counts of the declared labels (count store) and statistics of their indexes on the tenant key."""


@dataclass(frozen=True)
class LabelStatistics:
    """What the server's statistics say about one label, without reading a node."""

    label: str
    nodes: int  # count store: exact
    indexed: int | None = None  # entries of the index on (label, tenant key) at its last sample; None: no such index
    updates: int = 0  # index updates since that sample


@dataclass(frozen=True)
class Known:
    """Untenanted nodes of one label as statistics tell them: exactly, or at least (``exact`` False)."""

    untenanted: int
    exact: bool
    how: str


def judge(stats: LabelStatistics) -> Known | None:
    """What the statistics settle about ``stats.label``; None when only a scan can tell."""
    if stats.nodes == 0:
        return Known(0, True, "the count store (no node)")
    if stats.indexed is None:
        return None
    if stats.updates == 0:
        return Known(max(stats.nodes - stats.indexed, 0), True, "the count store and the tenant key index's statistics")
    at_least = stats.nodes - stats.indexed - stats.updates
    if at_least > 0:
        return Known(at_least, False, "the count store and the tenant key index's statistics (a lower bound)")
    return None


def _statistics(record: Mapping[str, Any], labels: list[str]) -> dict[str, LabelStatistics]:
    nodes = {str(n["label"]): int(n["count"]) for n in record["nodes"]}
    found = {label: LabelStatistics(label, nodes.get(label, 0)) for label in labels}
    for index in record["indexes"]:
        label = str(index["labels"][0])
        if index.get("indexType", "RANGE") != "RANGE" or label not in found:
            continue
        found[label] = LabelStatistics(
            label, found[label].nodes, int(index["totalSize"]), int(index.get("updatesSinceEstimation") or 0)
        )
    return found


async def read_statistics(
    driver: neo4j.AsyncDriver,
    database: str,
    labels: Iterable[str],
    tenant_key: str,
    *,
    timeout: float = client.DEFAULT_TIMEOUT,
) -> dict[str, LabelStatistics] | None:
    """Each label's statistics (one read-only statement for all); None when the server refuses the procedure
    (a role without it), so callers fall back to :func:`count_nodes` and scans."""
    wanted = sorted(set(labels))
    if not wanted:
        return {}
    try:
        records = await client.Client(driver, database, timeout=timeout).read(
            STATISTICS, {"labels": wanted, "key": tenant_key}
        )
    except errors.PermissionDenied:
        return None
    except errors.DependencyUnavailable as exc:
        if "Procedure" in exc.message or "Security" in exc.message:
            return None
        raise
    return _statistics(records[0], wanted) if records else {label: LabelStatistics(label, 0) for label in wanted}


async def count_nodes(
    driver: neo4j.AsyncDriver, database: str, labels: Iterable[str], *, timeout: float = client.DEFAULT_TIMEOUT
) -> dict[str, LabelStatistics]:
    """Node counts per label from the count store (one statement, one db hit per label)."""
    wanted = sorted(set(labels))
    if not wanted:
        return {}
    text = " UNION ALL ".join(
        f"MATCH (n:{cypher.quote(label)}) RETURN $label{i} AS label, count(n) AS c" for i, label in enumerate(wanted)
    )
    params = {f"label{i}": label for i, label in enumerate(wanted)}
    records = await client.Client(driver, database, timeout=timeout).read(text, params)
    return {str(r["label"]): LabelStatistics(str(r["label"]), int(r["c"])) for r in records}


async def count_untenanted(
    driver: neo4j.AsyncDriver,
    database: str,
    labels: Iterable[str],
    tenant_key: str,
    *,
    timeout: float = client.DEFAULT_TIMEOUT,
) -> dict[str, int]:
    """Nodes of each label lacking ``tenant_key``: a full scan of each label (one read-only statement)."""
    wanted = sorted(set(labels))
    if not wanted:
        return {}
    records = await client.Client(driver, database, timeout=timeout).read(cypher.cypher_untenanted(wanted, tenant_key))
    return {str(r["label"]): int(r["c"]) for r in records}
