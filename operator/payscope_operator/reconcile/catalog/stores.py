"""Checks on Neo4j, Pinecone and object storage (B), and their reachability (A).

Each source reads the store once per pass through its backend's read-only
``observe`` (plus, for Pinecone, each declared index's namespace statistics and,
for Neo4j, a bounded count of nodes lacking the tenant key). Evaluations reuse
the backends' pure plan functions: an object the plan would create or change
is an object the installation lacks, so the audit and the provisioners can
never disagree about what "as declared" means.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from payscope_operator.api import fields, spec, status, stores_spec
from payscope_operator.backends import base, neo4j, pinecone, s3
from payscope_operator.reconcile import checks, clients, session

Severity = status.Severity
Finding = checks.Finding
Ready = status.ProvisionState.READY
MAX_TENANT_LABELS = 20


def _states(plan: base.Plan, kind: str | None = None) -> list[base.ObjectState]:
    return [o for o in plan.objects if kind is None or o.kind.lower() == kind.lower()]


def _objects_finding(plan: base.Plan, kind: str | None, what: str, where: str) -> Finding:
    states = _states(plan, kind)
    if not states:
        return Finding.not_configured(f"No {what} is declared.")
    bad = [o for o in states if o.state != Ready]
    if bad:
        shown = "; ".join(
            f"{o.name}: {o.state.value}{' (' + (o.message or o.reason) + ')' if o.message or o.reason else ''}"
            for o in bad[:5]
        )
        return Finding.failed(f"{len(bad)} of {len(states)} {what} not as declared: {shown}", evidence=where)
    return Finding.passed(f"All {len(states)} {what} present as declared.", evidence=where)


# Neo4j ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphEvidence:
    uri: str
    plan: base.Plan
    version: str
    edition: str
    untenanted: dict[str, int]  # label -> nodes without the tenant key


async def _gather_graph(run: session.PassSession) -> GraphEvidence:
    section = run.spec.neo4j
    assert section is not None
    driver = await clients.neo4j(run)
    provisioner = neo4j.provisioner.Neo4jProvisioner(driver, section, known=run.provisioned_neo4j)
    state = await provisioner.observe()
    untenanted: dict[str, int] = {}
    if run.spec.tenancy is not None:
        untenanted = await provisioner.count_untenanted(_declared_labels(section), run.spec.tenancy.tenant_key)
    return GraphEvidence(
        section.connection.uri, provisioner.plan(state), state.server.version, state.server.edition, untenanted
    )


GRAPH = checks.Source[GraphEvidence](
    name="neo4j.schema",
    gather=_gather_graph,
    configured=lambda s: s.neo4j is not None,
    absent="spec.neo4j is absent.",
)


def _graph_reachable(evidence: GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed(f"Neo4j {evidence.version} {evidence.edition} answered.", evidence=evidence.uri)


def _graph_kind(kind: str, what: str) -> checks.Evaluate[GraphEvidence]:
    def evaluate(evidence: GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
        return _objects_finding(evidence.plan, kind, what, f"SHOW {kind.upper()}S on {evidence.uri}")

    return evaluate


def _graph_tenancy(evidence: GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
    assert desired.tenancy is not None
    assert desired.neo4j is not None
    key = desired.tenancy.tenant_key
    labels = _declared_labels(desired.neo4j)
    where = f"MATCH (n:<label>) WHERE n.{key} IS NULL on {evidence.uri}"
    bad = {label: n for label, n in evidence.untenanted.items() if n}
    if bad:
        shown = ", ".join(f"{label}: {n}" for label, n in sorted(bad.items()))
        return Finding.failed(f"Nodes without {key} cannot be filtered by tenant: {shown}", evidence=where)
    return Finding.passed(f"Every node of the {len(labels)} declared label(s) carries {key}.", evidence=where)


def _declared_labels(section: stores_spec.Neo4j) -> list[str]:
    return sorted({c.label for c in section.constraints} | {i.label for i in section.indexes})[:MAX_TENANT_LABELS]


# Pinecone ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorEvidence:
    controller: str
    plan: base.Plan
    stats: dict[str, pinecone.model.IndexStats]
    stats_errors: dict[str, str]


async def _gather_vectors(run: session.PassSession) -> VectorEvidence:
    section = run.spec.pinecone
    assert section is not None
    provisioner = pinecone.provisioner.PineconeProvisioner(section, await clients.pinecone(run))
    observed = await provisioner.observe()
    stats: dict[str, pinecone.model.IndexStats] = {}
    failed: dict[str, str] = {}
    for index in section.indexes:
        found = observed.indexes.get(index.name)
        if found is None or not found.host:
            continue
        try:
            stats[index.name] = await provisioner.describe_index_stats(found.host)
        except Exception as exc:  # noqa: BLE001 - one index's stats failing spoils only its own check
            failed[index.name] = getattr(exc, "message", type(exc).__name__)
    return VectorEvidence(section.controller_url, provisioner.plan(observed), stats, failed)


VECTORS = checks.Source[VectorEvidence](
    name="pinecone.indexes",
    gather=_gather_vectors,
    configured=lambda s: s.pinecone is not None,
    absent="spec.pinecone is absent.",
)


def _vectors_reachable(evidence: VectorEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed("Pinecone's control plane answered.", evidence=evidence.controller)


def _vector_indexes(evidence: VectorEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _objects_finding(evidence.plan, None, "Pinecone indexes", f"GET /indexes on {evidence.controller}")


def _namespaces(evidence: VectorEvidence, desired: spec.PayScopeSpec) -> Finding:
    assert desired.pinecone is not None
    problems, warnings, unknown = [], [], []
    tenants = desired.audit.probe_tenants or ()
    for index in desired.pinecone.indexes:
        if index.name in evidence.stats_errors:
            unknown.append(f"describe_index_stats of {index.name} failed: {evidence.stats_errors[index.name]}")
            continue
        stats = evidence.stats.get(index.name)
        if stats is None:
            problems.append(f"{index.name}: not found")
            continue
        default = stats.namespaces.get("", 0) + stats.namespaces.get("__default__", 0)
        if default:
            problems.append(f"{index.name}: {default} vector(s) in the default namespace, outside any tenant")
        named = [ns for ns in stats.namespaces if ns not in ("", "__default__")]
        missing = [t for t in tenants if t not in named]
        if stats.total_vector_count and not named:
            problems.append(f"{index.name}: vectors exist but no tenant namespace")
        elif missing:
            warnings.append(f"{index.name}: no namespace for tenant(s) {', '.join(missing)}")
    where = "describe_index_stats of " + ", ".join(i.name for i in desired.pinecone.indexes)
    if problems:
        return Finding.failed("Keep every vector in its tenant's namespace: " + "; ".join(problems), evidence=where)
    if unknown:
        return Finding.unknown("; ".join(unknown), evidence=where)
    if warnings:
        return Finding.warned("; ".join(warnings), evidence=where)
    return Finding.passed("Vectors live only in tenant namespaces.", evidence=where)


# Object storage -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketEvidence:
    endpoint: str
    facts: dict[str, s3.evidence.BucketFacts]
    anonymous_status: dict[str, int]  # HTTP status of an unauthenticated listing, per bucket


async def _gather_buckets(run: session.PassSession) -> BucketEvidence:
    section = run.spec.object_storage
    assert section is not None
    provisioner = s3.provisioner.S3Provisioner(section, await clients.s3(run))
    facts = {f.name: f for f in await provisioner.audit()}
    anonymous: dict[str, int] = {}
    if section.endpoint is not None:
        timeout = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            for name, found in facts.items():
                if found.exists:
                    anonymous[name] = (await http.get(f"{section.endpoint.rstrip('/')}/{name}")).status_code
    return BucketEvidence(section.endpoint or "AWS S3", facts, anonymous)


BUCKETS = checks.Source[BucketEvidence](
    name="s3.buckets",
    gather=_gather_buckets,
    configured=lambda s: s.object_storage is not None,
    absent="spec.objectStorage is absent.",
)


def _buckets_reachable(evidence: BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed("The S3 endpoint answered.", evidence=evidence.endpoint)


BucketTest = Callable[[stores_spec.Bucket, s3.evidence.BucketFacts, BucketEvidence], str | None]


def _per_bucket(
    wanted: Callable[[stores_spec.Bucket], bool], test: BucketTest, what: str
) -> checks.Evaluate[BucketEvidence]:
    def evaluate(evidence: BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
        assert desired.object_storage is not None
        selected = [b for b in desired.object_storage.buckets if wanted(b)]
        problems, warnings = [], []
        for bucket in selected:
            facts = evidence.facts.get(bucket.name)
            if facts is None or not facts.exists:
                problems.append(f"{bucket.name}: bucket not found")
                continue
            problem = test(bucket, facts, evidence)
            if problem and problem.startswith("warn:"):
                warnings.append(f"{bucket.name}: {problem[5:].strip()}")
            elif problem:
                problems.append(f"{bucket.name}: {problem}")
        where = f"{evidence.endpoint}: " + ", ".join(b.name for b in selected)
        if problems:
            return Finding.failed(f"Fix {what}: " + "; ".join(problems[:6]), evidence=where)
        if warnings:
            return Finding.warned("; ".join(warnings[:6]), evidence=where)
        return Finding.passed(f"{what} as declared on {len(selected)} bucket(s).", evidence=where)

    return evaluate


def _exists(bucket: stores_spec.Bucket, facts: s3.evidence.BucketFacts, evidence: BucketEvidence) -> str | None:
    return "owned by another account" if facts.owned_by_another_account else None


def _versioning(bucket: stores_spec.Bucket, facts: s3.evidence.BucketFacts, evidence: BucketEvidence) -> str | None:
    want = "Enabled" if bucket.versioning else "Suspended"
    if bucket.versioning and facts.versioning != "Enabled":
        return f"versioning is {facts.versioning or 'never enabled'}, want {want}"
    if bucket.versioning is False and facts.versioning == "Enabled":
        return "versioning is Enabled, want Suspended"
    return None


def _encryption(bucket: stores_spec.Bucket, facts: s3.evidence.BucketFacts, evidence: BucketEvidence) -> str | None:
    want = bucket.encryption.value if bucket.encryption is not None else None
    return None if facts.encryption == want else f"default encryption is {facts.encryption or 'none'}, want {want}"


def _public(bucket: stores_spec.Bucket, facts: s3.evidence.BucketFacts, evidence: BucketEvidence) -> str | None:
    code = evidence.anonymous_status.get(bucket.name)
    if code is not None and code < 400:
        return f"an anonymous listing was answered {code}"
    if facts.allows_anonymous:
        return "the bucket policy allows anonymous principals"
    if facts.denies_anonymous or facts.public_access_block == s3.evidence.BlockState.ON:
        return None
    if code in (401, 403):
        return "warn: anonymous requests are refused by the endpoint, but no policy or PublicAccessBlock says so"
    return "neither a deny-anonymous policy nor PublicAccessBlock is in effect"


def _lifecycle(bucket: stores_spec.Bucket, facts: s3.evidence.BucketFacts, evidence: BucketEvidence) -> str | None:
    rules = bucket.lifecycle
    assert rules is not None
    missing = []
    if rules.noncurrent_version_expiration_days is not None and not facts.noncurrent_version_expiration:
        missing.append("noncurrent-version expiration")
    if rules.abort_incomplete_multipart_upload_days is not None and not facts.abort_incomplete_multipart_upload:
        missing.append("abort of incomplete multipart uploads")
    if rules.expiration_days is not None and f"{s3.model.RULE_ID_PREFIX}expiration" not in facts.lifecycle_rule_ids:
        missing.append("expiration")
    return "missing " + ", ".join(missing) if missing else None


def _declared_buckets(test: Callable[[stores_spec.Bucket], bool]) -> Callable[[spec.PayScopeSpec], bool]:
    return lambda s: s.object_storage is not None and any(test(b) for b in s.object_storage.buckets)


# The catalog ------------------------------------------------------------------------------------


def _c(
    check_id: str,
    title: str,
    passes: str,
    severity: Severity,
    source: Any,
    evaluate: Any,
    covers: tuple[str, ...],
    **kw: Any,
) -> checks.Check[Any]:
    return checks.Check(check_id, title, passes, severity, source, evaluate, covers, **kw)


CHECKS: tuple[checks.Check[Any], ...] = (
    _c(
        "A.dependencies.neo4j",
        "Neo4j answers within its timeout.",
        "SHOW CONSTRAINTS and SHOW INDEXES succeed.",
        Severity.HIGH,
        GRAPH,
        _graph_reachable,
        ("A/Startup & Dependencies/Connection retry logic",),
        fails_when_unreachable=True,
    ),
    _c(
        "B.neo4j.constraints",
        "Declared Neo4j constraints exist.",
        "Each declared constraint is listed by SHOW CONSTRAINTS.",
        Severity.HIGH,
        GRAPH,
        _graph_kind("constraint", "constraints"),
        ("B/Neo4j/Constraints defined", "B/Neo4j/Schema validation on startup"),
        applies=lambda s: s.neo4j is not None and bool(s.neo4j.constraints),
    ),
    _c(
        "B.neo4j.indexes",
        "Declared Neo4j indexes exist and are ONLINE.",
        "Each declared index is listed by SHOW INDEXES as ONLINE.",
        Severity.MEDIUM,
        GRAPH,
        _graph_kind("index", "indexes"),
        ("B/Neo4j/Indexes created",),
        applies=lambda s: s.neo4j is not None and bool(s.neo4j.indexes),
    ),
    _c(
        "B.neo4j.tenant_property",
        "Every node of the declared labels carries the tenant key.",
        "No node of a declared label lacks tenancy.tenantKey.",
        Severity.CRITICAL,
        GRAPH,
        _graph_tenancy,
        ("B/Neo4j/Tenant isolation verified", "E/Bank Isolation/Neo4j filtering", "G/Bank Isolation/Graph filtering"),
        applies=lambda s: (
            s.neo4j is not None and s.tenancy is not None and bool(s.neo4j.constraints or s.neo4j.indexes)
        ),
    ),
    _c(
        "A.dependencies.pinecone",
        "Pinecone's control plane answers within its timeout.",
        "GET /indexes succeeds.",
        Severity.HIGH,
        VECTORS,
        _vectors_reachable,
        (),
        fails_when_unreachable=True,
    ),
    _c(
        "B.pinecone.indexes",
        "Declared Pinecone indexes exist, are Ready and match dimension, metric and placement.",
        "Each declared index is Ready with the declared dimension, metric, placement, protection and tags.",
        Severity.HIGH,
        VECTORS,
        _vector_indexes,
        ("B/Pinecone/Index exists check", "B/Pinecone/Index validation on startup"),
        applies=lambda s: s.pinecone is not None and bool(s.pinecone.indexes),
    ),
    _c(
        "B.pinecone.namespaces",
        "Vectors live in tenant namespaces, none in the default namespace.",
        "The default namespace is empty and, with probeTenants, each tenant has a namespace.",
        Severity.CRITICAL,
        VECTORS,
        _namespaces,
        (
            "B/Pinecone/Namespace configuration",
            "B/Pinecone/Metadata filtering (bank_id)",
            "E/Bank Isolation/Pinecone filtering",
            "G/Bank Isolation/Vector filtering",
        ),
        applies=lambda s: s.pinecone is not None and bool(s.pinecone.indexes),
    ),
    _c(
        "A.dependencies.s3",
        "The S3 endpoint answers within its timeout.",
        "Bucket reads succeed.",
        Severity.HIGH,
        BUCKETS,
        _buckets_reachable,
        ("A/Startup & Dependencies/Wait-for scripts for Postgres, Redis, Neo4j",),
        fails_when_unreachable=True,
    ),
    _c(
        "B.s3.buckets",
        "Declared buckets exist and belong to this installation's account.",
        "Each declared bucket exists and is not owned by another account.",
        Severity.HIGH,
        BUCKETS,
        _per_bucket(lambda b: True, _exists, "buckets"),
        ("B/MinIO/S3/Bucket creation",),
        applies=_declared_buckets(lambda b: True),
    ),
    _c(
        "B.s3.versioning",
        "Declared versioning is in effect (what backups rely on).",
        "GetBucketVersioning matches the spec.",
        Severity.MEDIUM,
        BUCKETS,
        _per_bucket(lambda b: b.versioning is not None, _versioning, "versioning"),
        ("B/MinIO/S3/Backup configuration",),
        applies=_declared_buckets(lambda b: b.versioning is not None),
    ),
    _c(
        "B.s3.encryption",
        "Declared default encryption is in effect.",
        "GetBucketEncryption matches the spec.",
        Severity.HIGH,
        BUCKETS,
        _per_bucket(lambda b: b.encryption is not None, _encryption, "default encryption"),
        (),
        applies=_declared_buckets(lambda b: b.encryption is not None),
    ),
    _c(
        "B.s3.public_access",
        "Buckets refuse anonymous access, in configuration and in fact.",
        "Anonymous listing refused; no policy allows anonymous principals; a deny or PublicAccessBlock is set.",
        Severity.CRITICAL,
        BUCKETS,
        _per_bucket(lambda b: b.block_public_access is not False, _public, "public access"),
        ("B/MinIO/S3/Access policies",),
        applies=_declared_buckets(lambda b: b.block_public_access is not False),
    ),
    _c(
        "B.s3.lifecycle",
        "Declared lifecycle rules are in effect.",
        "The operator's lifecycle rules for each declared rule exist.",
        Severity.LOW,
        BUCKETS,
        _per_bucket(lambda b: b.lifecycle is not None, _lifecycle, "lifecycle rules"),
        (),
        applies=_declared_buckets(lambda b: b.lifecycle is not None),
    ),
)
