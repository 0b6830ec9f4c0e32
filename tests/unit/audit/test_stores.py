"""Dimension B's Neo4j, Pinecone and object-storage checks (and their A reachability), table-tested.

The graph and vector evidence is built through the backends' own pure plan
functions from observed states, as the sources build it, so the audit and the
provisioners agree on what "as declared" means; bucket evidence is the
``BucketFacts`` the S3 backend reports. Healthy by default; each case breaks one
thing and asserts the status and the words an on-call engineer acts on. No server.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog
from payscope_operator.audit.sources import neo4j, pinecone, s3
from payscope_operator.backends import base, ownership
from payscope_operator.backends.neo4j import model as neo4j_model
from payscope_operator.backends.neo4j import plan as neo4j_plan
from payscope_operator.backends.pinecone import model as pinecone_model
from payscope_operator.backends.pinecone import plan as pinecone_plan
from payscope_operator.backends.s3 import evidence as s3_evidence
from payscope_operator.backends.s3 import model as s3_model
from payscope_operator.backends.s3 import plan as s3_plan
from tests.unit import observed

S = status.CheckStatus
CHECKS = {c.id: c for c in catalog.CATALOG if c.source in (neo4j.SCHEMA, pinecone.INDEXES, s3.BUCKETS)}
BUCKET = "payscope-ingest"
INDEX = "payscope-rag"
URI = "bolt://neo4j:7687"
SECTIONS: dict[str, Any] = {
    "tenancy": {},
    "audit": {"probeTenants": ["bank-a", "bank-b"]},
    "neo4j": {
        "connection": {"uri": URI, "secretRef": {"name": "neo4j"}},
        "constraints": [{"label": "Transaction", "properties": ["id"], "type": "Unique"}],
        "indexes": [{"label": "Account", "properties": ["bank_id"]}],
    },
    "pinecone": {
        "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
        "indexes": [
            {
                "name": INDEX,
                "dimension": 1536,
                "metric": "cosine",
                "serverless": {"cloud": "aws", "region": "us-east-1"},
                "deletionProtection": True,
            }
        ],
    },
    "objectStorage": {
        "endpoint": "http://minio:9000",
        "credentialsSecretRef": {"name": "s3"},
        "buckets": [
            {
                "name": BUCKET,
                "versioning": True,
                "encryption": "AES256",
                "blockPublicAccess": True,
                "lifecycle": {
                    "noncurrentVersionExpirationDays": 30,
                    "expirationDays": 3650,
                    "abortIncompleteMultipartUploadDays": 7,
                },
            }
        ],
    },
}
SPEC = spec.PayScopeSpec.model_validate(SECTIONS)


def with_section(name: str, **changes: Any) -> spec.PayScopeSpec:
    """SPEC with ``changes`` merged into section ``name`` (camelCase keys)."""
    return spec.PayScopeSpec.model_validate({**SECTIONS, name: {**SECTIONS[name], **changes}})


# Neo4j ------------------------------------------------------------------------------------------

TX_NAME = "payscope_transaction_id_unique"
ACC_NAME = "payscope_account_bank_id_range"
SERVER = neo4j_model.ServerInfo("5.26.30", "community")
TX_CONSTRAINT = neo4j_model.ObservedConstraint(1, TX_NAME, "UNIQUENESS", "NODE", ("Transaction",), ("id",), TX_NAME)
TX_INDEX = neo4j_model.ObservedIndex(2, TX_NAME, "ONLINE", "RANGE", "NODE", ("Transaction",), ("id",), TX_NAME)
ACC_INDEX = neo4j_model.ObservedIndex(3, ACC_NAME, "ONLINE", "RANGE", "NODE", ("Account",), ("bank_id",))


def graph(
    constraints: tuple[neo4j_model.ObservedConstraint, ...] = (TX_CONSTRAINT,),
    indexes: tuple[neo4j_model.ObservedIndex, ...] = (TX_INDEX, ACC_INDEX),
    untenanted: dict[str, int] | None = None,
) -> neo4j.GraphEvidence:
    assert SPEC.neo4j is not None
    names = [c.name for c in constraints] + [i.name for i in indexes]
    marks = {name: ownership.Mark.of(OWNER) for name in names}
    plan = neo4j_plan.plan_neo4j(
        SPEC.neo4j, neo4j_model.GraphState(SERVER, constraints, indexes, marks=marks), owner=OWNER
    )
    counts = {"Account": 0, "Transaction": 0} if untenanted is None else untenanted
    return neo4j.GraphEvidence(URI, plan, SERVER.version, SERVER.edition, counts)


# Pinecone ---------------------------------------------------------------------------------------

OWNER = observed.OWNER
READY_INDEX = observed.pinecone_index(name=INDEX)
TENANT_NAMESPACES = {"bank-a": 10, "bank-b": 5}


def vector_evidence(
    index: pinecone_model.ObservedIndex | None = READY_INDEX,
    namespaces: dict[str, int] | None = None,
    *,
    stats_errors: dict[str, str] | None = None,
) -> pinecone.VectorEvidence:
    assert SPEC.pinecone is not None
    observed = pinecone_model.ObservedVectors({index.name: index} if index is not None else {})
    counts = TENANT_NAMESPACES if namespaces is None else namespaces
    stats = (
        {} if index is None or stats_errors else {INDEX: pinecone_model.IndexStats(counts, 1536, sum(counts.values()))}
    )
    return pinecone.VectorEvidence(
        "https://api.pinecone.io",
        pinecone_plan.plan_pinecone(SPEC.pinecone, observed, owner=OWNER),
        stats,
        stats_errors or {},
    )


def index_state(**changes: Any) -> pinecone.VectorEvidence:
    return vector_evidence(dataclasses.replace(READY_INDEX, **changes))


# Object storage ---------------------------------------------------------------------------------

OUR_RULES = observed.OUR_RULES
FACTS = observed.bucket_facts(name=BUCKET)


def bucket(anonymous: int | None = 403, **changes: Any) -> s3.BucketEvidence:
    """The healthy bucket with its facts changed, and the HTTP status an anonymous listing got (None: no probe)."""
    answered = {} if anonymous is None else {BUCKET: anonymous}
    return s3.BucketEvidence("http://minio:9000", {BUCKET: dataclasses.replace(FACTS, **changes)}, answered)


NO_DENY = {"denies_anonymous": False}


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        pytest.param("A.dependencies.neo4j", graph(), S.PASS, "Neo4j 5.26.30 community answered", id="neo4j-reachable"),
        pytest.param("B.neo4j.constraints", graph(), S.PASS, "All 1 constraints present", id="constraints-ok"),
        pytest.param(
            "B.neo4j.constraints",
            graph(constraints=(), indexes=(ACC_INDEX,)),
            S.FAIL,
            f"1 of 1 constraints not as declared: {TX_NAME}: Missing",
            id="constraint-missing",
        ),
        pytest.param(
            "B.neo4j.constraints",
            graph(indexes=(dataclasses.replace(TX_INDEX, state="FAILED"), ACC_INDEX)),
            S.FAIL,
            f"{TX_NAME}: Failed (index {TX_NAME} failed to populate",
            id="constraint-index-failed",
        ),
        pytest.param("B.neo4j.indexes", graph(), S.PASS, "All 1 indexes present", id="indexes-ok"),
        pytest.param(
            "B.neo4j.indexes",
            graph(indexes=(TX_INDEX, dataclasses.replace(ACC_INDEX, state="POPULATING"))),
            S.FAIL,
            f"{ACC_NAME}: Pending (index {ACC_NAME} is POPULATING)",
            id="index-populating",
        ),
        pytest.param(
            "B.neo4j.indexes",
            graph(indexes=(TX_INDEX,)),
            S.FAIL,
            f"1 of 1 indexes not as declared: {ACC_NAME}: Missing",
            id="index-missing",
        ),
        pytest.param(
            "B.neo4j.tenant_property",
            graph(),
            S.PASS,
            "Every node of the 2 declared label(s) carries bank_id",
            id="tenant-property-ok",
        ),
        pytest.param(
            "B.neo4j.tenant_property",
            graph(untenanted={"Account": 0, "Transaction": 3}),
            S.FAIL,
            "Nodes without bank_id cannot be filtered by tenant: Transaction: 3",
            id="untenanted-nodes",
        ),
        pytest.param(
            "A.dependencies.pinecone", vector_evidence(), S.PASS, "control plane answered", id="pinecone-reachable"
        ),
        pytest.param(
            "B.pinecone.indexes", vector_evidence(), S.PASS, "All 1 Pinecone indexes present", id="pinecone-index-ok"
        ),
        pytest.param(
            "B.pinecone.indexes",
            vector_evidence(None),
            S.FAIL,
            f"1 of 1 Pinecone indexes not as declared: {INDEX}: Missing (not found)",
            id="pinecone-index-missing",
        ),
        pytest.param(
            "B.pinecone.indexes",
            index_state(ready=False, state="Initializing"),
            S.FAIL,
            f"{INDEX}: Pending (Initializing, not Ready yet)",
            id="pinecone-index-not-ready",
        ),
        pytest.param(
            "B.pinecone.indexes",
            index_state(state="InitializationFailed"),
            S.FAIL,
            "is InitializationFailed; it needs attention in the Pinecone console",
            id="pinecone-index-broken",
        ),
        pytest.param(
            "B.pinecone.indexes",
            index_state(dimension=768),
            S.FAIL,
            "dimension is 768, spec says 1536",
            id="pinecone-index-dimension-differs",
        ),
        pytest.param(
            "B.pinecone.indexes",
            index_state(deletion_protection=False),
            S.FAIL,
            f"{INDEX}: Drifted",
            id="pinecone-index-drifted",
        ),
        pytest.param(
            "B.pinecone.namespaces", vector_evidence(), S.PASS, "only in tenant namespaces", id="namespaces-ok"
        ),
        pytest.param(
            "B.pinecone.namespaces",
            vector_evidence(namespaces={"": 4, **TENANT_NAMESPACES}),
            S.FAIL,
            f"{INDEX}: 4 vector(s) in the default namespace, outside any tenant",
            id="default-namespace-has-vectors",
        ),
        pytest.param(
            "B.pinecone.namespaces",
            vector_evidence(namespaces={"__default__": 2, **TENANT_NAMESPACES}),
            S.FAIL,
            "2 vector(s) in the default namespace",
            id="named-default-namespace-has-vectors",
        ),
        pytest.param(
            "B.pinecone.namespaces",
            vector_evidence(namespaces={"": 7}),
            S.FAIL,
            f"{INDEX}: vectors exist but no tenant namespace",
            id="vectors-but-no-tenant-namespace",
        ),
        pytest.param(
            "B.pinecone.namespaces",
            vector_evidence(namespaces={"bank-a": 10}),
            S.WARN,
            f"{INDEX}: no namespace for tenant(s) bank-b",
            id="tenant-namespace-missing",
        ),
        pytest.param(
            "B.pinecone.namespaces",
            vector_evidence(stats_errors={INDEX: "ServiceUnavailable"}),
            S.UNKNOWN,
            f"describe_index_stats of {INDEX} failed: ServiceUnavailable",
            id="stats-error",
        ),
        pytest.param(
            "B.pinecone.namespaces",
            vector_evidence(None),
            S.FAIL,
            f"{INDEX}: not found",
            id="namespaces-index-missing",
        ),
        pytest.param("A.dependencies.s3", bucket(), S.PASS, "S3 endpoint answered", id="s3-reachable"),
        pytest.param("B.s3.buckets", bucket(), S.PASS, "buckets as declared on 1 bucket(s)", id="bucket-ok"),
        pytest.param("B.s3.buckets", bucket(exists=False), S.FAIL, f"{BUCKET}: bucket not found", id="bucket-missing"),
        pytest.param(
            "B.s3.buckets",
            bucket(owned_by_another_account=True),
            S.FAIL,
            f"{BUCKET}: owned by another account",
            id="bucket-owned-by-another-account",
        ),
        pytest.param("B.s3.versioning", bucket(), S.PASS, "versioning as declared", id="versioning-ok"),
        pytest.param(
            "B.s3.versioning",
            bucket(versioning="Suspended"),
            S.FAIL,
            "versioning is Suspended, want Enabled",
            id="versioning-suspended",
        ),
        pytest.param(
            "B.s3.versioning",
            bucket(versioning=None),
            S.FAIL,
            "versioning is never enabled, want Enabled",
            id="versioning-never-enabled",
        ),
        pytest.param("B.s3.versioning", bucket(exists=False), S.FAIL, "bucket not found", id="versioning-no-bucket"),
        pytest.param("B.s3.encryption", bucket(), S.PASS, "default encryption as declared", id="encryption-ok"),
        pytest.param(
            "B.s3.encryption",
            bucket(encryption=None),
            S.FAIL,
            "default encryption is none, want AES256",
            id="encryption-none",
        ),
        pytest.param(
            "B.s3.encryption",
            bucket(encryption="aws:kms"),
            S.FAIL,
            "default encryption is aws:kms, want AES256",
            id="encryption-other-algorithm",
        ),
        pytest.param(
            "B.s3.public_access", bucket(), S.PASS, "public access as declared", id="public-denied-and-refused"
        ),
        pytest.param(
            "B.s3.public_access",
            bucket(None, **NO_DENY),
            S.PASS,
            "public access as declared",
            id="public-access-block-on",
        ),
        pytest.param(
            "B.s3.public_access",
            bucket(200),
            S.FAIL,
            f"{BUCKET}: an anonymous listing was answered 200",
            id="anonymous-listing-answered",
        ),
        pytest.param(
            "B.s3.public_access",
            bucket(allows_anonymous=True),
            S.FAIL,
            "the bucket policy allows anonymous principals",
            id="policy-allows-anonymous",
        ),
        pytest.param(
            "B.s3.public_access",
            bucket(403, public_access_block=s3_evidence.BlockState.NOT_IMPLEMENTED, **NO_DENY),
            S.WARN,
            "anonymous requests are refused by the endpoint, but no policy or PublicAccessBlock says so",
            id="refused-without-deny-or-block",
        ),
        pytest.param(
            "B.s3.public_access",
            bucket(None, public_access_block=s3_evidence.BlockState.PARTIAL, **NO_DENY),
            S.FAIL,
            "neither a deny-anonymous policy nor PublicAccessBlock is in effect",
            id="no-deny-no-block-no-probe",
        ),
        pytest.param(
            "B.s3.public_access",
            bucket(404, public_access_block=s3_evidence.BlockState.OFF, **NO_DENY),
            S.FAIL,
            "neither a deny-anonymous policy nor PublicAccessBlock is in effect",
            id="no-deny-no-block-not-refused",
        ),
        pytest.param("B.s3.lifecycle", bucket(), S.PASS, "lifecycle rules as declared", id="lifecycle-ok"),
        pytest.param(
            "B.s3.lifecycle",
            bucket(noncurrent_version_expiration=False),
            S.FAIL,
            f"{BUCKET}: missing noncurrent-version expiration",
            id="lifecycle-noncurrent-missing",
        ),
        pytest.param(
            "B.s3.lifecycle",
            bucket(abort_incomplete_multipart_upload=False),
            S.FAIL,
            "missing abort of incomplete multipart uploads",
            id="lifecycle-abort-missing",
        ),
        pytest.param(
            "B.s3.lifecycle",
            bucket(lifecycle_rule_ids=("payscope-noncurrent-version-expiration", "team-archive")),
            S.FAIL,
            "missing expiration",
            id="lifecycle-expiration-missing",
        ),
        pytest.param(
            "B.s3.lifecycle",
            bucket(lifecycle_rule_ids=(), noncurrent_version_expiration=False, abort_incomplete_multipart_upload=False),
            S.FAIL,
            "missing noncurrent-version expiration, abort of incomplete multipart uploads, expiration",
            id="lifecycle-none",
        ),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding = CHECKS[check_id].judge(evidence, SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_versioning_declared_off_fails_only_when_enabled() -> None:
    off = with_section("objectStorage", buckets=[{"name": BUCKET, "versioning": False}])
    finding = CHECKS["B.s3.versioning"].judge(bucket(versioning="Enabled"), off)
    assert finding.status == S.FAIL
    assert "versioning is Enabled, want Suspended" in finding.message
    for seen in ("Suspended", None):
        assert CHECKS["B.s3.versioning"].judge(bucket(versioning=seen), off).status == S.PASS


def test_facts_of_the_operators_own_policy_and_rules_pass_every_bucket_check() -> None:
    assert SPEC.object_storage is not None
    declared = SPEC.object_storage.buckets[0]
    assert declared.lifecycle is not None
    rules = s3_plan.desired_rules(declared.lifecycle)
    observed = s3_model.ObservedBucket(
        name=BUCKET,
        ownership=s3_model.Ownership.OURS,
        managed=True,
        versioning="Enabled",
        encryption=("AES256", None),
        policy=s3_plan.desired_statements(BUCKET, deny_anonymous=True, deny_insecure_transport=False),
        lifecycle=rules,
        unsupported=frozenset({s3_model.Feature.PUBLIC_ACCESS_BLOCK}),
    )
    evidence = s3.BucketEvidence("http://minio:9000", {BUCKET: s3_evidence.facts_of(observed)}, {})
    for check in CHECKS.values():
        if check.source is s3.BUCKETS:
            assert check.judge(evidence, SPEC).status == S.PASS, check.id
    # The expiration rule dropped out of band while the others stay: the lifecycle check must see it.
    kept = tuple(rule for rule in rules if rule.id != "payscope-expiration")
    drifted = s3_evidence.facts_of(dataclasses.replace(observed, lifecycle=kept))
    finding = CHECKS["B.s3.lifecycle"].judge(s3.BucketEvidence("x", {BUCKET: drifted}, {}), SPEC)
    assert finding.status == S.FAIL
    assert finding.message == f"Fix lifecycle rules: {BUCKET}: missing expiration"


def test_one_index_failing_its_stats_does_not_hide_another_index_in_the_default_namespace() -> None:
    second = {**SECTIONS["pinecone"]["indexes"][0], "name": "payscope-docs"}
    desired = with_section("pinecone", indexes=[*SECTIONS["pinecone"]["indexes"], second])
    evidence = pinecone.VectorEvidence(
        "https://api.pinecone.io",
        base.Plan("pinecone"),
        {"payscope-docs": pinecone_model.IndexStats({"": 9}, 1536, 9)},
        {INDEX: "ServiceUnavailable"},
    )
    finding = CHECKS["B.pinecone.namespaces"].judge(evidence, desired)
    assert finding.status == S.FAIL
    assert "payscope-docs: 9 vector(s) in the default namespace" in finding.message


def test_namespaces_without_probe_tenants_only_require_vectors_outside_the_default() -> None:
    desired = spec.PayScopeSpec.model_validate({k: v for k, v in SECTIONS.items() if k != "audit"})
    assert CHECKS["B.pinecone.namespaces"].judge(vector_evidence(namespaces={}), desired).status == S.PASS
    assert CHECKS["B.pinecone.namespaces"].judge(vector_evidence(namespaces={"bank-z": 1}), desired).status == S.PASS


def test_bucket_problems_name_the_endpoint_and_the_buckets() -> None:
    finding = CHECKS["B.s3.encryption"].judge(bucket(encryption=None), SPEC)
    assert finding.evidence == f"http://minio:9000: {BUCKET}"


@pytest.mark.parametrize(
    ("check_id", "desired"),
    [
        pytest.param("B.neo4j.constraints", with_section("neo4j", constraints=[]), id="no-constraints"),
        pytest.param("B.neo4j.indexes", with_section("neo4j", indexes=[]), id="no-neo4j-indexes"),
        pytest.param(
            "B.neo4j.tenant_property",
            spec.PayScopeSpec.model_validate({"neo4j": SECTIONS["neo4j"]}),
            id="tenant-property-without-tenancy",
        ),
        pytest.param(
            "B.neo4j.tenant_property", with_section("neo4j", constraints=[], indexes=[]), id="tenant-property-no-labels"
        ),
        pytest.param("B.pinecone.indexes", with_section("pinecone", indexes=[]), id="no-pinecone-indexes"),
        pytest.param("B.pinecone.namespaces", with_section("pinecone", indexes=[]), id="namespaces-no-indexes"),
        pytest.param("B.s3.buckets", with_section("objectStorage", buckets=[]), id="no-buckets"),
        pytest.param(
            "B.s3.versioning", with_section("objectStorage", buckets=[{"name": BUCKET}]), id="versioning-undeclared"
        ),
        pytest.param(
            "B.s3.encryption", with_section("objectStorage", buckets=[{"name": BUCKET}]), id="encryption-undeclared"
        ),
        pytest.param(
            "B.s3.public_access",
            with_section("objectStorage", buckets=[{"name": BUCKET, "blockPublicAccess": False}]),
            id="public-access-allowed",
        ),
        pytest.param(
            "B.s3.lifecycle", with_section("objectStorage", buckets=[{"name": BUCKET}]), id="lifecycle-undeclared"
        ),
    ],
)
def test_check_does_not_apply_without_its_declaration(check_id: str, desired: spec.PayScopeSpec) -> None:
    check = CHECKS[check_id]
    assert check.applies is not None
    assert not check.applies(desired)


def test_every_check_applies_to_the_full_spec() -> None:
    for check in CHECKS.values():
        assert check.source.configured(SPEC), check.id
        assert check.applies is None or check.applies(SPEC), check.id


@pytest.mark.parametrize("section", ["neo4j", "pinecone", "objectStorage"])
def test_no_check_of_an_absent_section_applies(section: str) -> None:
    desired = spec.PayScopeSpec.model_validate({k: v for k, v in SECTIONS.items() if k != section})
    absent = [c for c in CHECKS.values() if not c.source.configured(desired)]
    assert absent, section
    assert all(c.applies is None or not c.applies(desired) for c in absent)


def test_bucket_without_public_access_setting_is_audited_as_blocked() -> None:
    desired = with_section("objectStorage", buckets=[{"name": BUCKET}])
    public = CHECKS["B.s3.public_access"]
    assert public.applies is not None
    assert public.applies(desired)
    assert public.judge(bucket(200), desired).status == S.FAIL
