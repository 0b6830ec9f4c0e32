"""Evidence from Pinecone: the declared indexes as the provisioner's plan sees them, and namespace stats.

Why this module exists: the B checks judge Pinecone's indexes and how vectors
are spread over tenant namespaces, and A its reachability. The indexes (``GET
/indexes``) and the plan against them are what the pass's provisioning observed
(``context.Observations``: one read per pass, shared); the source adds each existing
declared index's statistics; one index whose statistics cannot be read spoils only
what depends on it (``stats_errors``).

What it must not do: create, configure or query vectors, or judge the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator.audit import context, registry
from payscope_operator.backends import base
from payscope_operator.backends.pinecone import evidence as pinecone_evidence
from payscope_operator.backends.pinecone import model as pinecone_model


@dataclass(frozen=True)
class VectorEvidence:
    controller: str
    plan: base.Plan
    stats: dict[str, pinecone_model.IndexStats]
    stats_errors: dict[str, str]


async def _gather(run: context.Session) -> VectorEvidence:
    section = run.spec.pinecone
    assert section is not None  # the source is configured only when spec.pinecone is set
    observed = await context.observed(run, pinecone_model.SYSTEM, pinecone_model.ObservedVectors)
    plan = await context.planned(run, pinecone_model.SYSTEM)
    stats: dict[str, pinecone_model.IndexStats] = {}
    failed: dict[str, str] = {}
    for index in section.indexes:
        found = observed.indexes.get(index.name)
        if found is None or not found.host:
            continue
        try:
            stats[index.name] = await pinecone_evidence.describe_index_stats(await run.stores.pinecone(), found.host)
        except Exception as exc:  # noqa: BLE001 - one index's stats failing spoils only its own check
            failed[index.name] = getattr(exc, "message", type(exc).__name__)
    return VectorEvidence(section.controller_url, plan, stats, failed)


INDEXES = registry.Source[VectorEvidence](
    name="pinecone.indexes",
    gather=_gather,
    configured=lambda s: s.pinecone is not None,
    absent="spec.pinecone is absent.",
)
