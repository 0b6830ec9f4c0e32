"""Evidence from Neo4j: the declared schema as the provisioner's plan sees it, and untenanted nodes.

Why this module exists: the B checks judge Neo4j constraints, indexes and tenant
properties, and A its reachability. One gathering per pass reads the schema
through the backend's read-only ``observe`` (``SHOW CONSTRAINTS``/``SHOW INDEXES``)
and plans against it, so the audit and the provisioner can never disagree about
what "as declared" means; with ``spec.tenancy`` it also counts, per declared
label (at most :data:`MAX_TENANT_LABELS`), nodes lacking the tenant key.

What it must not do: change the schema, or judge the evidence (``checks`` do).
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.api import stores_spec
from payscope_operator.audit import context, registry
from payscope_operator.backends import base
from payscope_operator.backends.neo4j import provisioner as neo4j_provisioner

MAX_TENANT_LABELS = 20


@dataclass(frozen=True)
class GraphEvidence:
    uri: str
    plan: base.Plan
    version: str
    edition: str
    untenanted: dict[str, int]  # label -> nodes without the tenant key


def declared_labels(section: stores_spec.Neo4j) -> list[str]:
    return sorted({c.label for c in section.constraints} | {i.label for i in section.indexes})[:MAX_TENANT_LABELS]


async def _gather(run: context.Session) -> GraphEvidence:
    section = run.spec.neo4j
    assert section is not None  # the source is configured only when spec.neo4j is set
    provisioner = neo4j_provisioner.Neo4jProvisioner(
        await run.stores.neo4j(), section, owner=run.owner, known=run.provisioned_neo4j
    )
    state = await provisioner.observe()
    untenanted: dict[str, int] = {}
    if run.spec.tenancy is not None:
        untenanted = await provisioner.count_untenanted(declared_labels(section), run.spec.tenancy.tenant_key)
    return GraphEvidence(
        section.connection.uri, provisioner.plan(state), state.server.version, state.server.edition, untenanted
    )


SCHEMA = registry.Source[GraphEvidence](
    name="neo4j.schema",
    gather=_gather,
    configured=lambda s: s.neo4j is not None,
    absent="spec.neo4j is absent.",
)
