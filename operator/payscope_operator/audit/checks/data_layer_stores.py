"""Dimension B, data layer, the other stores: Neo4j, Pinecone and object storage as declared.

Evidence: each store's objects as its provisioner's read-only ``observe`` and
pure plan see them (``neo4j.schema``, ``pinecone.indexes``, ``s3.buckets``), plus
untenanted graph nodes, vector namespace statistics and an anonymous listing of
each bucket. An object the plan would create or change is an object the
installation lacks, so the audit and the provisioners never disagree about what
"as declared" means. Postgres and TimescaleDB are judged in ``data_layer``.

What it must not do: change any store, or do I/O in an evaluate function.
"""

from __future__ import annotations

from collections.abc import Callable

from payscope_operator.api import spec, status, stores_spec
from payscope_operator.audit import registry
from payscope_operator.audit.sources import neo4j, pinecone, s3
from payscope_operator.backends import base
from payscope_operator.backends.s3 import evidence as s3_evidence
from payscope_operator.backends.s3 import model as s3_model

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()
BucketTest = Callable[[stores_spec.Bucket, s3_evidence.BucketFacts, s3.BucketEvidence], str | None]


def _objects(plan: base.Plan, kind: str | None, what: str, where: str) -> Finding:
    """Pass when every object of ``kind`` in the plan (every object, for None) is as declared (Ready, or Foreign
    and matching: the audit judges the object, whoever owns it)."""
    states = [o for o in plan.objects if kind is None or o.kind.lower() == kind.lower()]
    if not states:
        return Finding.not_configured(f"No {what} is declared.")
    bad = [o for o in states if not o.as_declared]
    if bad:
        shown = "; ".join(
            f"{o.name}: {o.state.value}{' (' + (o.message or o.reason) + ')' if o.message or o.reason else ''}"
            for o in bad[:5]
        )
        return Finding.failed(f"{len(bad)} of {len(states)} {what} not as declared: {shown}", evidence=where)
    return Finding.passed(f"All {len(states)} {what} present as declared.", evidence=where)


# Neo4j ------------------------------------------------------------------------------------------


@CHECKS.check(
    "B.neo4j.constraints",
    fix="Create the declared constraints (CREATE CONSTRAINT ... IF NOT EXISTS); Full management does it;"
    " remove duplicate nodes first.",
    source=neo4j.SCHEMA,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Declared Neo4j constraints exist.",
    passes_when="Each declared constraint is listed by SHOW CONSTRAINTS.",
    covers=("B/Neo4j/Constraints defined", "B/Neo4j/Schema validation on startup"),
    applies=lambda s: s.neo4j is not None and bool(s.neo4j.constraints),
)
def constraints(evidence: neo4j.GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _objects(evidence.plan, "constraint", "constraints", f"SHOW CONSTRAINTS on {evidence.uri}")


@CHECKS.check(
    "B.neo4j.indexes",
    fix="Create the declared indexes and wait until they are ONLINE (SHOW INDEXES); a FAILED index must be"
    " dropped and recreated.",
    source=neo4j.SCHEMA,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Declared Neo4j indexes exist and are ONLINE.",
    passes_when="Each declared index is listed by SHOW INDEXES as ONLINE.",
    covers=("B/Neo4j/Indexes created",),
    applies=lambda s: s.neo4j is not None and bool(s.neo4j.indexes),
)
def graph_indexes(evidence: neo4j.GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _objects(evidence.plan, "index", "indexes", f"SHOW INDEXES on {evidence.uri}")


@CHECKS.check(
    "B.neo4j.tenant_property",
    fix="Set the tenant key on every node of the declared labels (MATCH (n:Label) WHERE n.bank_id IS NULL"
    " ...), and make writers always set it.",
    source=neo4j.SCHEMA,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Every node of the declared labels carries the tenant key.",
    passes_when="No node of a declared label lacks tenancy.tenantKey.",
    covers=(
        "B/Neo4j/Tenant isolation verified",
        "E/Bank Isolation/Neo4j filtering",
        "G/Bank Isolation/Graph filtering",
    ),
    applies=lambda s: s.neo4j is not None and s.tenancy is not None and bool(s.neo4j.constraints or s.neo4j.indexes),
)
def tenant_property(evidence: neo4j.GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
    assert desired.tenancy is not None
    assert desired.neo4j is not None
    key = desired.tenancy.tenant_key
    where = f"MATCH (n:<label>) WHERE n.{key} IS NULL on {evidence.uri}"
    bad = {label: n for label, n in evidence.untenanted.items() if n}
    if bad:
        shown = ", ".join(f"{label}: {n}" for label, n in sorted(bad.items()))
        return Finding.failed(f"Nodes without {key} cannot be filtered by tenant: {shown}", evidence=where)
    labels = neo4j.declared_labels(desired.neo4j)
    return Finding.passed(f"Every node of the {len(labels)} declared label(s) carries {key}.", evidence=where)


# Pinecone ---------------------------------------------------------------------------------------


@CHECKS.check(
    "B.pinecone.indexes",
    fix="Create the index with the declared dimension, metric and placement (Full management does it); a"
    " wrong dimension needs a new index.",
    source=pinecone.INDEXES,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Declared Pinecone indexes exist, are Ready and match dimension, metric and placement.",
    passes_when="Each declared index is Ready with the declared dimension, metric, placement, protection and tags.",
    covers=("B/Pinecone/Index exists check", "B/Pinecone/Index validation on startup"),
    applies=lambda s: s.pinecone is not None and bool(s.pinecone.indexes),
)
def vector_indexes(evidence: pinecone.VectorEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _objects(evidence.plan, None, "Pinecone indexes", f"GET /indexes on {evidence.controller}")


@CHECKS.check(
    "B.pinecone.namespaces",
    fix="Upsert vectors into one namespace per tenant, never the default namespace; move stray vectors out of it.",
    source=pinecone.INDEXES,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Vectors live in tenant namespaces, none in the default namespace.",
    passes_when="The default namespace is empty and, with probeTenants, each tenant has a namespace.",
    covers=(
        "B/Pinecone/Namespace configuration",
        "B/Pinecone/Metadata filtering (bank_id)",
        "E/Bank Isolation/Pinecone filtering",
        "G/Bank Isolation/Vector filtering",
    ),
    applies=lambda s: s.pinecone is not None and bool(s.pinecone.indexes),
)
def namespaces(evidence: pinecone.VectorEvidence, desired: spec.PayScopeSpec) -> Finding:
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


def _buckets(
    evidence: s3.BucketEvidence,
    desired: spec.PayScopeSpec,
    wanted: Callable[[stores_spec.Bucket], bool],
    test: BucketTest,
    what: str,
) -> Finding:
    """Pass when ``test`` finds no problem on each bucket ``wanted`` selects; a problem "warn: ..." warns."""
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


def _declares(test: Callable[[stores_spec.Bucket], bool]) -> Callable[[spec.PayScopeSpec], bool]:
    return lambda s: s.object_storage is not None and any(test(b) for b in s.object_storage.buckets)


def _exists(bucket: stores_spec.Bucket, facts: s3_evidence.BucketFacts, evidence: s3.BucketEvidence) -> str | None:
    return "owned by another account" if facts.owned_by_another_account else None


@CHECKS.check(
    "B.s3.buckets",
    fix="Create the bucket (Full management does it) or correct its name; a bucket owned by another account"
    " must be replaced.",
    source=s3.BUCKETS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Declared buckets exist and belong to this installation's account.",
    passes_when="Each declared bucket exists and is not owned by another account.",
    covers=("B/MinIO/S3/Bucket creation",),
    applies=_declares(lambda b: True),
)
def buckets(evidence: s3.BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _buckets(evidence, desired, lambda b: True, _exists, "buckets")


def _versioning(bucket: stores_spec.Bucket, facts: s3_evidence.BucketFacts, evidence: s3.BucketEvidence) -> str | None:
    want = "Enabled" if bucket.versioning else "Suspended"
    if bucket.versioning and facts.versioning != "Enabled":
        return f"versioning is {facts.versioning or 'never enabled'}, want {want}"
    if bucket.versioning is False and facts.versioning == "Enabled":
        return "versioning is Enabled, want Suspended"
    return None


@CHECKS.check(
    "B.s3.versioning",
    fix="Enable versioning on the bucket (PutBucketVersioning Enabled); Full management does it.",
    source=s3.BUCKETS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Declared versioning is in effect (what backups rely on).",
    passes_when="GetBucketVersioning matches the spec.",
    covers=("B/MinIO/S3/Backup configuration",),
    applies=_declares(lambda b: b.versioning is not None),
)
def versioning(evidence: s3.BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _buckets(evidence, desired, lambda b: b.versioning is not None, _versioning, "versioning")


def _encryption(bucket: stores_spec.Bucket, facts: s3_evidence.BucketFacts, evidence: s3.BucketEvidence) -> str | None:
    want = bucket.encryption.value if bucket.encryption is not None else None
    return None if facts.encryption == want else f"default encryption is {facts.encryption or 'none'}, want {want}"


@CHECKS.check(
    "B.s3.encryption",
    fix="Set default encryption on the bucket (PutBucketEncryption, AES256 or aws:kms); Full management does it.",
    source=s3.BUCKETS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Declared default encryption is in effect.",
    passes_when="GetBucketEncryption matches the spec.",
    applies=_declares(lambda b: b.encryption is not None),
)
def encryption(evidence: s3.BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _buckets(evidence, desired, lambda b: b.encryption is not None, _encryption, "default encryption")


def _public(bucket: stores_spec.Bucket, facts: s3_evidence.BucketFacts, evidence: s3.BucketEvidence) -> str | None:
    code = evidence.anonymous_status.get(bucket.name)
    if code is not None and code < 400:
        return f"an anonymous listing was answered {code}"
    if facts.allows_anonymous:
        return "the bucket policy allows anonymous principals"
    if facts.denies_anonymous or facts.public_access_block == s3_evidence.BlockState.ON:
        return None
    if code in (401, 403):
        return "warn: anonymous requests are refused by the endpoint, but no policy or PublicAccessBlock says so"
    return "neither a deny-anonymous policy nor PublicAccessBlock is in effect"


@CHECKS.check(
    "B.s3.public_access",
    fix="Remove policy statements that allow anonymous principals and block public access on the bucket.",
    source=s3.BUCKETS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Buckets refuse anonymous access, in configuration and in fact.",
    passes_when="Anonymous listing refused; no policy allows anonymous principals; a deny or PublicAccessBlock is set.",
    covers=("B/MinIO/S3/Access policies",),
    applies=_declares(lambda b: b.block_public_access is not False),
)
def public_access(evidence: s3.BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _buckets(evidence, desired, lambda b: b.block_public_access is not False, _public, "public access")


def _lifecycle(bucket: stores_spec.Bucket, facts: s3_evidence.BucketFacts, evidence: s3.BucketEvidence) -> str | None:
    rules = bucket.lifecycle
    assert rules is not None
    missing = []
    if rules.noncurrent_version_expiration_days is not None and not facts.noncurrent_version_expiration:
        missing.append("noncurrent-version expiration")
    if rules.abort_incomplete_multipart_upload_days is not None and not facts.abort_incomplete_multipart_upload:
        missing.append("abort of incomplete multipart uploads")
    if rules.expiration_days is not None and f"{s3_model.RULE_ID_PREFIX}expiration" not in facts.lifecycle_rule_ids:
        missing.append("expiration")
    return "missing " + ", ".join(missing) if missing else None


@CHECKS.check(
    "B.s3.lifecycle",
    fix="Add the declared lifecycle rules (PutBucketLifecycleConfiguration); Full management does it.",
    source=s3.BUCKETS,
    severity=Severity.LOW,
    grade=Grade.OBSERVED,
    title="Declared lifecycle rules are in effect.",
    passes_when="The operator's lifecycle rules for each declared rule exist.",
    applies=_declares(lambda b: b.lifecycle is not None),
)
def lifecycle(evidence: s3.BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _buckets(evidence, desired, lambda b: b.lifecycle is not None, _lifecycle, "lifecycle rules")
