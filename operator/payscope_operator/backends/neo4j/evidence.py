"""What the audit reads from Neo4j beyond what the provisioner observes: nodes lacking the tenant key.

Why this module exists: the schema (server, constraints, indexes) is the provisioner's
observation, which the audit shares (``reconcile.observations``); whether PayScope's
nodes carry the tenant property is a fact of the data no plan needs, so the audit reads
it here, one read-only statement for all declared labels.

What it must not do: change the schema or the data, read the schema again, or name a
node's values (only counts per label leave this module).
"""

from __future__ import annotations

from collections.abc import Iterable

import neo4j

from payscope_operator.backends.neo4j import client, cypher


async def count_untenanted(
    driver: neo4j.AsyncDriver,
    database: str,
    labels: Iterable[str],
    tenant_key: str,
    *,
    timeout: float = client.DEFAULT_TIMEOUT,
) -> dict[str, int]:
    """Nodes of each label lacking ``tenant_key`` (read-only; one statement for all labels)."""
    wanted = sorted(set(labels))
    if not wanted:
        return {}
    records = await client.Client(driver, database, timeout=timeout).read(cypher.cypher_untenanted(wanted, tenant_key))
    return {str(r["label"]): int(r["c"]) for r in records}
