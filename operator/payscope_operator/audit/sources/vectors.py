"""Evidence that Pinecone keeps tenants apart: each probe tenant's namespace queried for another tenant's key.

Why this module exists: a namespace per tenant (dimension B) is the convention;
whether a tenant's namespace really holds only that tenant's vectors shows when it
is queried with a metadata filter on another tenant's key (``spec.tenancy.tenantKey``,
``bank_id`` by default): the nearest match must not exist. For every declared,
existing dense index and every probe tenant (``spec.audit.probeTenants``) this
source (on the indexes the pass's provisioning observed) sends two read-only ``query``
calls of ``topK`` 1: one unfiltered (the
namespace holds vectors, so the second can find something) and one filtered on the
next probe tenant's key.

What it must not do: upsert, update or delete a vector, ask for values or
metadata (ids only), query an index the spec does not declare, or judge anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payscope_operator import errors
from payscope_operator.api import spec
from payscope_operator.audit import context, registry
from payscope_operator.backends.pinecone import evidence as pinecone_evidence
from payscope_operator.backends.pinecone import model as pinecone_model

DEFAULT_TENANT_KEY = "bank_id"


@dataclass(frozen=True)
class Probe:
    """One tenant namespace of one index, queried for another tenant's key."""

    index: str
    namespace: str  # the probe tenant's own namespace
    foreign: str  # the other tenant whose key the filter names
    nearest: tuple[str, ...] = ()  # ids of the unfiltered query (empty: the namespace holds no vector)
    leaked: tuple[str, ...] = ()  # ids of the filtered query: vectors of the other tenant in this namespace
    problem: str | None = None


@dataclass(frozen=True)
class VectorIsolation:
    key: str  # the metadata key naming the tenant
    probes: tuple[Probe, ...]
    skipped: tuple[str, ...]  # declared indexes that could not be probed, and why


def tenant_key(desired: spec.PayScopeSpec) -> str:
    return desired.tenancy.tenant_key if desired.tenancy is not None else DEFAULT_TENANT_KEY


def configured(desired: spec.PayScopeSpec) -> bool:
    return desired.pinecone is not None and bool(desired.pinecone.indexes) and desired.audit.probe_tenants is not None


def _unit(dimension: int) -> list[float]:
    """A query vector of the index's dimension (Pinecone refuses an all-zero one)."""
    return [1.0] + [0.0] * (dimension - 1)


async def _probe(http: Any, index: str, host: str, dimension: int, own: str, other: str, key: str) -> Probe:
    try:
        nearest = await pinecone_evidence.query_ids(http, host, own, _unit(dimension))
        leaked = await pinecone_evidence.query_ids(http, host, own, _unit(dimension), where={key: {"$eq": other}})
    except errors.PayScopeError as exc:
        return Probe(index, own, other, problem=exc.message)
    return Probe(index, own, other, nearest, leaked)


async def _gather(run: context.Session) -> VectorIsolation:
    section, tenants = run.spec.pinecone, run.spec.audit.probe_tenants
    assert section is not None  # configured only with spec.pinecone and spec.audit.probeTenants
    assert tenants is not None
    observed = await context.observed(run, pinecone_model.SYSTEM, pinecone_model.ObservedVectors)
    http = await run.stores.pinecone()
    key, probes, skipped = tenant_key(run.spec), [], []
    for declared in section.indexes:
        found = observed.indexes.get(declared.name)
        if found is None or not found.host or not found.dimension:
            skipped.append(f"{declared.name}: {'not found' if found is None else 'no dense vectors to query'}")
            continue
        for n, own in enumerate(tenants):
            other = tenants[(n + 1) % len(tenants)]
            probes.append(await _probe(http, declared.name, found.host, found.dimension, own, other, key))
    return VectorIsolation(key, tuple(probes), tuple(skipped))


ISOLATION = registry.Source[VectorIsolation](
    name="pinecone.isolation",
    gather=_gather,
    configured=configured,
    absent="spec.pinecone.indexes or spec.audit.probeTenants is not set: no tenant namespace is queried.",
)
