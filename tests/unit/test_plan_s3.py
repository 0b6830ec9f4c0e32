"""The S3 plan is a pure function of spec and observed state: tables of both, actions out.

Also table-tested here, because they are pure: the CreateBucket arguments per region,
the mapping of S3 error answers to the operator's errors (ClientErrors built in the
shape botocore parses from SeaweedFS and AWS answers), and the audit facts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from payscope_operator import errors
from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, s3

B = "payscope-ingest"
Ownership = s3.plan.Ownership
Feature = s3.plan.Feature


def storage(endpoint: str | None = "http://minio:9000", **bucket: Any) -> stores_spec.ObjectStorage:
    return stores_spec.ObjectStorage.model_validate({"endpoint": endpoint, "buckets": [{"name": B, **bucket}]})


FULL: dict[str, Any] = {
    "versioning": True,
    "encryption": "AES256",
    "blockPublicAccess": True,
    "lifecycle": {"noncurrentVersionExpirationDays": 30, "abortIncompleteMultipartUploadDays": 7},
}


def ours(*, tls: bool = False, anonymous: bool = True) -> tuple[s3.plan.Statement, ...]:
    return s3.plan.desired_statements(B, deny_anonymous=anonymous, deny_insecure_transport=tls)


def rules(**lifecycle: int) -> tuple[s3.plan.Rule, ...]:
    return s3.plan.desired_rules(stores_spec.Lifecycle.model_validate(lifecycle))


def converged(**changes: Any) -> s3.plan.ObservedBucket:
    """The observed state of a bucket that matches FULL on an http endpoint, with ``changes``."""
    fields: dict[str, Any] = {
        "ownership": Ownership.OURS,
        "managed": True,
        "versioning": "Enabled",
        "encryption": ("AES256", None),
        "policy": ours(),
        "public_access_block": (True, True, True, True),
        "lifecycle": rules(noncurrentVersionExpirationDays=30, abortIncompleteMultipartUploadDays=7),
    } | changes
    return s3.plan.ObservedBucket(B, **fields)


def plan(desired: stores_spec.ObjectStorage, seen: s3.plan.ObservedBucket | None, **kw: Any) -> base.Plan:
    return s3.plan.plan_objects(desired, s3.plan.ObservedStorage((seen,) if seen else ()), **kw)


FOREIGN_STATEMENT = {
    "Sid": "AnalyticsRead",
    "Effect": "Allow",
    "Principal": {"AWS": ["arn:aws:iam::123456789012:role/analytics"]},
    "Action": ["s3:GetObject"],
    "Resource": f"arn:aws:s3:::{B}/*",
}
FOREIGN_RULE = {"ID": "tmp-cleanup", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}}


def test_a_missing_bucket_is_created_then_configured_in_order_without_drift() -> None:
    result = plan(storage(**FULL), None)
    assert [type(a).__name__ for a in result.actions] == [
        "CreateBucket",
        "SetVersioning",
        "SetEncryption",
        "SetPublicAccessBlock",
        "SetPolicy",
        "SetLifecycle",
    ]
    assert not any(action.drift for action in result.actions)
    assert result.objects == (base.ObjectState("Bucket", B, status.ProvisionState.MISSING),)
    policy = next(a for a in result.actions if isinstance(a, s3.plan.SetPolicy))
    assert policy.document is not None
    sids = [statement["Sid"] for statement in json.loads(policy.document)["Statement"]]
    assert sids == [s3.plan.DENY_ANONYMOUS_SID]  # http endpoint: no insecure-transport deny


def test_an_unchanged_bucket_plans_nothing_and_is_ready() -> None:
    result = plan(storage(**FULL), converged())
    assert result.actions == ()
    assert result.objects == (base.ObjectState("Bucket", B, status.ProvisionState.READY),)
    assert result.converged


@pytest.mark.parametrize(
    ("changes", "action_type", "detail"),
    [
        ({"versioning": "Suspended"}, s3.plan.SetVersioning, "versioning Enabled"),
        ({"encryption": None}, s3.plan.SetEncryption, "default encryption AES256"),
        ({"encryption": ("aws:kms", None)}, s3.plan.SetEncryption, "default encryption AES256"),
        ({"public_access_block": None}, s3.plan.SetPublicAccessBlock, "all four blocks on"),
        ({"public_access_block": (True, False, True, True)}, s3.plan.SetPublicAccessBlock, "all four blocks on"),
        ({"policy": None}, s3.plan.SetPolicy, f"statements {s3.plan.DENY_ANONYMOUS_SID}"),
        ({"lifecycle": ()}, s3.plan.SetLifecycle, "rules payscope-noncurrent-version-expiration,"),
    ],
)
def test_out_of_band_changes_are_corrected_as_drift(changes: dict[str, Any], action_type: type, detail: str) -> None:
    result = plan(storage(**FULL), converged(**changes))
    assert len(result.actions) == 1
    (action,) = result.actions
    assert isinstance(action, action_type)
    assert action.drift
    assert action.target == B
    assert detail in action.describe()
    assert result.objects[0].state is status.ProvisionState.DRIFTED


@pytest.mark.parametrize(
    ("spec_versioning", "observed", "expected"),
    [
        (True, None, "Enabled"),
        (True, "Suspended", "Enabled"),
        (True, "Enabled", None),
        (False, "Enabled", "Suspended"),
        (False, "Suspended", None),
        (False, None, None),  # never versioned already means "not versioning"
        (None, "Enabled", None),  # absent: not managed
        (None, "Suspended", None),
    ],
)
def test_versioning(spec_versioning: bool | None, observed: str | None, expected: str | None) -> None:
    result = plan(storage(**(FULL | {"versioning": spec_versioning})), converged(versioning=observed))
    assert [a.status for a in result.actions if isinstance(a, s3.plan.SetVersioning)] == (
        [expected] if expected else []
    )


@pytest.mark.parametrize(
    ("spec", "observed", "expected"),
    [
        ({"encryption": "aws:kms"}, ("aws:kms", "arn:aws:kms:eu-west-1:1:key/any"), None),
        ({"encryption": "aws:kms", "kmsKeyId": "key-1"}, ("aws:kms", "key-1"), None),
        ({"encryption": "aws:kms", "kmsKeyId": "key-1"}, ("aws:kms", "key-2"), ("aws:kms", "key-1")),
        ({"encryption": "aws:kms", "kmsKeyId": "key-1"}, ("AES256", None), ("aws:kms", "key-1")),
        ({"encryption": None}, None, None),  # absent: not managed
    ],
)
def test_encryption(spec: dict[str, Any], observed: Any, expected: tuple[str, str | None] | None) -> None:
    result = plan(storage(**(FULL | spec)), converged(encryption=observed))
    found = [(a.algorithm, a.kms_key_id) for a in result.actions if isinstance(a, s3.plan.SetEncryption)]
    assert found == ([expected] if expected else [])


def test_a_bucket_owned_by_another_account_is_failed_with_a_permanent_blocker() -> None:
    result = plan(storage(**FULL), s3.plan.ObservedBucket(B, Ownership.OTHER_ACCOUNT))
    reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
    assert result.actions == ()
    assert [(o.kind, o.name, o.state, o.reason) for o in result.objects] == [
        ("Bucket", B, status.ProvisionState.FAILED, reason)
    ]
    assert [(b.reason, b.permanent) for b in result.blockers] == [(reason, True)]
    assert B in result.blockers[0].message
    assert not result.converged


def test_a_feature_the_endpoint_lacks_is_reported_not_planned_and_not_failed() -> None:
    seen = converged(public_access_block=None, unsupported=frozenset({Feature.PUBLIC_ACCESS_BLOCK}))
    result = plan(storage(**FULL), seen)
    assert result.actions == ()
    note = next(o for o in result.objects if o.kind == Feature.PUBLIC_ACCESS_BLOCK)
    assert note.state is status.ProvisionState.READY
    assert note.reason == s3.plan.NOT_IMPLEMENTED_BY_ENDPOINT
    assert "501" in note.message
    assert result.converged
    # Not asked for, not reported.
    assert all(o.kind == "Bucket" for o in plan(storage(**(FULL | {"blockPublicAccess": None})), seen).objects)


@pytest.mark.parametrize(
    ("endpoint", "ask", "sids", "blocked"),
    [
        ("http://minio:9000", None, [s3.plan.DENY_ANONYMOUS_SID], False),
        (
            "https://s3.example.com",
            None,
            [s3.plan.DENY_ANONYMOUS_SID, s3.plan.DENY_INSECURE_TRANSPORT_SID],
            False,
        ),
        (None, None, [s3.plan.DENY_ANONYMOUS_SID, s3.plan.DENY_INSECURE_TRANSPORT_SID], False),
        ("https://s3.example.com", False, [s3.plan.DENY_ANONYMOUS_SID], False),
        ("http://minio:9000", True, [s3.plan.DENY_ANONYMOUS_SID], True),  # would lock the operator out
    ],
)
def test_insecure_transport_is_denied_only_where_it_cannot_lock_the_owner_out(
    endpoint: str | None, ask: bool | None, sids: list[str], blocked: bool
) -> None:
    result = plan(storage(endpoint, **FULL), None, deny_insecure_transport=ask)
    policy = next(a for a in result.actions if isinstance(a, s3.plan.SetPolicy))
    assert policy.document is not None
    assert [s["Sid"] for s in json.loads(policy.document)["Statement"]] == sids
    assert [(b.reason, b.permanent) for b in result.blockers] == (
        [(conditions.Reason.SPEC_INVALID, True)] if blocked else []
    )


def test_foreign_policy_statements_are_kept_when_ours_are_restored() -> None:
    foreign = s3.plan.statement_of(FOREIGN_STATEMENT)
    result = plan(storage(**FULL), converged(policy=(foreign,), policy_id="corp-policy"))
    (action,) = result.actions
    assert isinstance(action, s3.plan.SetPolicy)
    assert action.document is not None
    document = json.loads(action.document)
    assert document["Id"] == "corp-policy"
    assert document["Version"] == "2012-10-17"
    assert [s["Sid"] for s in document["Statement"]] == ["AnalyticsRead", s3.plan.DENY_ANONYMOUS_SID]
    assert s3.plan.statement_of(document["Statement"][0]) == foreign


def test_policy_comparison_ignores_list_order_and_one_item_lists() -> None:
    (statement,) = ours()
    raw = json.loads(statement.body)
    reordered = raw | {"Resource": list(reversed(raw["Resource"])), "Action": [raw["Action"]]}
    result = plan(storage(**FULL), converged(policy=(s3.plan.statement_of(reordered),)))
    assert result.actions == ()


@pytest.mark.parametrize(
    ("spec_block", "observed_policy", "expected_sids"),
    [
        (False, ours(), None),  # public bucket asked for: our deny goes, and with it the empty policy
        (False, (*ours(), s3.plan.statement_of(FOREIGN_STATEMENT)), ["AnalyticsRead"]),
        (None, ours(), "unchanged"),  # absent: still deny anonymous (secure default)
        (True, None, [s3.plan.DENY_ANONYMOUS_SID]),
    ],
)
def test_block_public_access_governs_our_anonymous_deny(
    spec_block: bool | None, observed_policy: Any, expected_sids: Any
) -> None:
    seen = converged(policy=observed_policy, public_access_block=(spec_block,) * 4 if spec_block else None)
    result = plan(storage(**(FULL | {"blockPublicAccess": spec_block})), seen)
    policies = [a for a in result.actions if isinstance(a, s3.plan.SetPolicy)]
    if expected_sids == "unchanged":
        assert policies == []
    elif expected_sids is None:
        assert [p.document for p in policies] == [None]
    else:
        assert [[s["Sid"] for s in json.loads(p.document or "")["Statement"]] for p in policies] == [expected_sids]


@pytest.mark.parametrize(
    ("spec_lifecycle", "observed", "expected_ids"),
    [
        # Our rule as servers return it: Filter {} or a bare Prefix means the whole bucket too.
        (
            {"noncurrentVersionExpirationDays": 30},
            [{"ID": "payscope-noncurrent-version-expiration", "Filter": {}, "Status": "Enabled",
              "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}],
            None,
        ),
        (
            {"noncurrentVersionExpirationDays": 30},
            [{"ID": "payscope-noncurrent-version-expiration", "Prefix": "", "Status": "Enabled",
              "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}],
            None,
        ),
        # Changed days, disabled by hand, or missing: ours are replaced, the foreign rule kept first.
        (
            {"noncurrentVersionExpirationDays": 30},
            [FOREIGN_RULE, {"ID": "payscope-noncurrent-version-expiration", "Filter": {"Prefix": ""},
                            "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 90}}],
            ["tmp-cleanup", "payscope-noncurrent-version-expiration"],
        ),
        (
            {"noncurrentVersionExpirationDays": 30},
            [{"ID": "payscope-noncurrent-version-expiration", "Filter": {"Prefix": ""}, "Status": "Disabled",
              "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}],
            ["payscope-noncurrent-version-expiration"],
        ),
        ({"expirationDays": 400}, [FOREIGN_RULE], ["tmp-cleanup", "payscope-expiration"]),
        # A rule of ours the spec no longer sets is removed; nothing left deletes the configuration.
        ({}, [{"ID": "payscope-expiration", "Filter": {"Prefix": ""}, "Status": "Enabled",
               "Expiration": {"Days": 400}}], []),
        ({}, [FOREIGN_RULE], None),  # foreign rules alone are never touched
        (None, [], None),  # absent: not managed
    ],
)  # fmt: skip
def test_lifecycle_rules_replace_only_ours(spec_lifecycle: Any, observed: Any, expected_ids: Any) -> None:
    seen = converged(lifecycle=tuple(s3.plan.rule_of(rule) for rule in observed))
    result = plan(storage(**(FULL | {"lifecycle": spec_lifecycle})), seen)
    lifecycles = [a for a in result.actions if isinstance(a, s3.plan.SetLifecycle)]
    if expected_ids is None:
        assert lifecycles == []
        return
    (action,) = lifecycles
    assert [json.loads(rule)["ID"] for rule in action.rules] == expected_ids
    assert action.drift
    if FOREIGN_RULE["ID"] in expected_ids:
        assert json.loads(action.rules[0]) == FOREIGN_RULE  # resent exactly as read


def test_buckets_not_in_the_spec_are_never_planned() -> None:
    other = s3.plan.ObservedBucket("someone-elses", Ownership.OURS)
    result = s3.plan.plan_objects(storage(**FULL), s3.plan.ObservedStorage((converged(), other)))
    assert result.actions == ()
    assert [o.name for o in result.objects] == [B]


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-east-1", {"Bucket": B}),
        ("eu-west-1", {"Bucket": B, "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}),
    ],
)
def test_create_bucket_is_region_aware(region: str, expected: dict[str, Any]) -> None:
    assert s3.plan.create_bucket_params(B, region) == expected
    desired = stores_spec.ObjectStorage.model_validate({"region": region, "buckets": [{"name": B}]})
    (create, *_) = plan(desired, None).actions
    assert isinstance(create, s3.plan.CreateBucket)
    assert create.region == region


def client_error(code: str, http_status: int, operation: str, message: str = "") -> ClientError:
    """A ClientError shaped as botocore parses an S3 error answer (see SeaweedFS's below)."""
    response: Any = {
        "Error": {"Code": code, "Message": message, "BucketName": B, "Resource": f"/{B}"},
        "ResponseMetadata": {"HTTPStatusCode": http_status, "HTTPHeaders": {}, "RetryAttempts": 0},
    }
    return ClientError(response, operation)


SEAWEEDFS_ALREADY_EXISTS = (
    "The requested bucket name is not available. The bucket name can not be an existing collection, and the "
    "bucket namespace is shared by all users of the system. Please select a different name and try again."
)


@pytest.mark.parametrize(
    ("code", "http_status", "operation", "error_type", "reason"),
    [
        ("BucketAlreadyExists", 409, "CreateBucket", errors.SpecUnsatisfiable, "BucketOwnedByAnotherAccount"),
        ("AccessDenied", 403, "PutBucketPolicy", errors.PermissionDenied, "PermissionDenied"),
        ("InvalidAccessKeyId", 403, "ListBuckets", errors.PermissionDenied, "PermissionDenied"),
        ("SignatureDoesNotMatch", 403, "ListBuckets", errors.PermissionDenied, "PermissionDenied"),
        ("SlowDown", 503, "PutBucketVersioning", errors.DependencyUnavailable, "DependencyUnavailable"),
        ("InternalError", 500, "GetBucketPolicy", errors.DependencyUnavailable, "DependencyUnavailable"),
        ("502", 502, "HeadBucket", errors.DependencyUnavailable, "DependencyUnavailable"),
        ("MalformedXML", 400, "PutBucketLifecycleConfiguration", errors.SpecUnsatisfiable, "ProvisioningFailed"),
        ("InvalidBucketName", 400, "CreateBucket", errors.SpecUnsatisfiable, "ProvisioningFailed"),
    ],
)
def test_s3_error_answers_map_to_the_operators_errors(
    code: str, http_status: int, operation: str, error_type: type[errors.PayScopeError], reason: str
) -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    error = client_error(code, http_status, operation, message=SEAWEEDFS_ALREADY_EXISTS + secret)
    translated = s3.provisioner.translate_error(error, operation=operation, bucket=B, endpoint="http://127.0.0.1:9000")
    assert type(translated) is error_type
    assert translated.reason == reason
    assert B in translated.message
    assert secret not in translated.message  # server text is never echoed


def test_the_audit_facts_of_a_provisioned_bucket() -> None:
    seen = converged(
        policy=(*ours(), s3.plan.statement_of(FOREIGN_STATEMENT)),
        public_access_block=None,
        unsupported=frozenset({Feature.PUBLIC_ACCESS_BLOCK}),
    )
    facts = s3.plan.facts_of(seen)
    assert facts == s3.plan.BucketFacts(
        name=B,
        exists=True,
        owned_by_another_account=False,
        managed=True,
        versioning="Enabled",
        encryption="AES256",
        denies_anonymous=True,
        allows_anonymous=False,
        denies_insecure_transport=False,
        public_access_block=s3.plan.BlockState.NOT_IMPLEMENTED,
        lifecycle_rule_ids=("payscope-noncurrent-version-expiration", "payscope-abort-incomplete-multipart-upload"),
        noncurrent_version_expiration=True,
        abort_incomplete_multipart_upload=True,
        not_implemented=("PublicAccessBlock",),
    )


@pytest.mark.parametrize(
    ("statement", "allows", "denies"),
    [
        ({"Sid": "Pub", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}, True, False),
        ({"Sid": "Pub", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "*"}, True, False),
        (
            {"Sid": "Vpc", "Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}},
            False,
            False,
        ),
        (
            {"Sid": "NoAnon", "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:principaltype": "Anonymous"}}},
            False,
            True,
        ),
    ],
)  # fmt: skip
def test_the_audit_reads_anonymous_access_from_any_statement(statement: Any, allows: bool, denies: bool) -> None:
    seen = s3.plan.ObservedBucket(B, Ownership.OURS, policy=(s3.plan.statement_of(statement),))
    facts = s3.plan.facts_of(seen)
    assert (facts.allows_anonymous, facts.denies_anonymous) == (allows, denies)
    assert facts.public_access_block is s3.plan.BlockState.OFF


def test_a_missing_bucket_has_facts_that_say_so() -> None:
    facts = s3.plan.facts_of(s3.plan.ObservedBucket(B, Ownership.MISSING))
    assert not facts.exists
    assert facts.versioning is None
    assert not facts.denies_anonymous
