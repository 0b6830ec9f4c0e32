"""Evidence from Neo4j: the declared schema as the provisioner's plan sees it, and untenanted nodes.

Why this module exists: the B checks judge Neo4j constraints, indexes and tenant
properties, and A its reachability. The schema (``dbms.components()``, ``SHOW
CONSTRAINTS``, ``SHOW INDEXES``) and the plan against it are what the pass's
provisioning observed (``context.Observations``: one read per pass, shared), so the
audit and the provisioner can never disagree about what "as declared" means; with
``spec.tenancy`` the source adds one count, per declared label (at most
:data:`MAX_TENANT_LABELS`), of the nodes lacking the tenant key.

What it must not do: change the schema, or judge the evidence (``checks`` do).
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.api import stores_spec
from payscope_operator.audit import context, registry
from payscope_operator.backends import base
from payscope_operator.backends.neo4j import evidence as neo4j_evidence
from payscope_operator.backends.neo4j import model as neo4j_model

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
    state = await context.observed(run, neo4j_model.SYSTEM, neo4j_model.GraphState)
    plan = await context.planned(run, neo4j_model.SYSTEM)
    untenanted: dict[str, int] = {}
    if run.spec.tenancy is not None:
        untenanted = await neo4j_evidence.count_untenanted(
            await run.stores.neo4j(), section.database, declared_labels(section), run.spec.tenancy.tenant_key
        )
    return GraphEvidence(section.connection.uri, plan, state.server.version, state.server.edition, untenanted)


SCHEMA = registry.Source[GraphEvidence](
    name="neo4j.schema",
    gather=_gather,
    configured=lambda s: s.neo4j is not None,
    absent="spec.neo4j is absent.",
)
