"""Dimension G's vector isolation: no tenant namespace holds another tenant's vectors, by query.

Why this module exists: a Pinecone namespace per tenant is only as good as what
lands in it. Querying each probe tenant's namespace with a metadata filter on
another tenant's key (``pinecone.isolation``) finds any vector of that other
tenant there; the unfiltered query next to it shows the namespace holds vectors,
so an empty answer means something (an empty namespace proves nothing: Unknown).

What it must not do: put a vector id of another tenant into a message beyond the
first few (ids, never values or metadata), send queries, or do I/O.
"""

from __future__ import annotations

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.sources import vectors

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()
MAX_SHOWN = 4


@CHECKS.check(
    "G.isolation.vectors",
    fix="Write each vector only into its own tenant's namespace (the named ids are another tenant's), and"
    " filter every query by the caller's key.",
    source=vectors.ISOLATION,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Each probe tenant's Pinecone namespace, queried (topK 1) with a metadata filter on another probe "
    "tenant's key (spec.tenancy.tenantKey).",
    passes_when="No filtered query matches, and at least one probed namespace holds vectors (all empty: Warn, as a "
    "new installation may be). Needs spec.audit.probeTenants.",
    covers=(
        "B/Pinecone/Metadata filtering (bank_id)",
        "G/Bank Isolation/Vector filtering",
        "E/Bank Isolation/Pinecone filtering",
    ),
)
def vector_isolation(evidence: vectors.VectorIsolation, desired: spec.PayScopeSpec) -> Finding:
    key, probes = evidence.key, evidence.probes
    where = "; ".join(
        f"{p.index}/{p.namespace} filtered on {key}={p.foreign}: "
        + (p.problem or f"{len(p.leaked)} match(es), {len(p.nearest)} unfiltered")
        for p in probes
    )
    leaks = [p for p in probes if p.leaked]
    if leaks:
        shown = "; ".join(f"{p.index}/{p.namespace} holds {p.foreign}'s {', '.join(p.leaked[:2])}" for p in leaks)
        return Finding.failed(
            f"Tenant namespaces hold other tenants' vectors: {shown[:400]}. Write each vector into its own tenant's "
            "namespace only, and filter every query by the caller's key.",
            evidence=where,
        )
    failed = [p for p in probes if p.problem is not None]
    judged = [p for p in probes if p.problem is None and p.nearest]
    skipped = f" ({'; '.join(evidence.skipped)})" if evidence.skipped else ""
    if not judged and not failed and probes:
        return Finding.warned(
            f"No probe tenant's namespace holds vectors yet{skipped}, which a new installation may rightly show: "
            "filtered queries prove isolation only once they could find something. Give the probe tenants data.",
            evidence=where,
        )
    if not judged:
        why = failed[0].problem if failed else "no index could be queried"
        return Finding.unknown(
            f"No tenant namespace could show isolation: {why}{skipped}. Query-filtering proves something only on a "
            "namespace that holds vectors.",
            evidence=where or None,
        )
    if failed:
        return Finding.unknown(
            f"{len(failed)} of {len(probes)} namespace queries failed ({failed[0].index}/{failed[0].namespace}: "
            f"{failed[0].problem}); the others found no foreign vector.",
            evidence=where,
        )
    return Finding.passed(
        f"{len(judged)} tenant namespace(s) hold vectors and none matches another tenant's {key}.", evidence=where
    )
