"""The S3 plan is a pure function of spec and observed state: tables of both, actions out.

Also table-tested here, because they are pure: the normalised policy and lifecycle
documents, and the CreateBucket arguments per region.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, ownership, s3

B = "payscope-ingest"
OWNER = ownership.Owner("5f0c6d1e-0000-4000-8000-000000000001", "payscope", "prod")
Ownership = s3.model.Ownership
Feature = s3.model.Feature


def storage(endpoint: str | None = "http://minio:9000", **bucket: Any) -> stores_spec.ObjectStorage:
    return stores_spec.ObjectStorage.model_validate({"endpoint": endpoint, "buckets": [{"name": B, **bucket}]})


FULL: dict[str, Any] = {
    "versioning": True,
    "encryption": "AES256",
    "blockPublicAccess": True,
    "lifecycle": {"noncurrentVersionExpirationDays": 30, "abortIncompleteMultipartUploadDays": 7},
}


def ours(*, tls: bool = False, anonymous: bool = True) -> tuple[s3.model.Statement, ...]:
    return s3.plan.desired_statements(B, deny_anonymous=anonymous, deny_insecure_transport=tls)


def rules(**lifecycle: int) -> tuple[s3.model.Rule, ...]:
    return s3.plan.desired_rules(stores_spec.Lifecycle.model_validate(lifecycle))


def converged(**changes: Any) -> s3.model.ObservedBucket:
    """The observed state of a bucket that matches FULL on an http endpoint, with ``changes``."""
    fields: dict[str, Any] = {
        "ownership": Ownership.OURS,
        "managed": True,
        "mark": ownership.Mark.of(OWNER),
        "versioning": "Enabled",
        "encryption": ("AES256", None),
        "policy": ours(),
        "public_access_block": (True, True, True, True),
        "lifecycle": rules(noncurrentVersionExpirationDays=30, abortIncompleteMultipartUploadDays=7),
    } | changes
    return s3.model.ObservedBucket(B, **fields)


def plan(desired: stores_spec.ObjectStorage, seen: s3.model.ObservedBucket | None, **kw: Any) -> base.Plan:
    return s3.plan.plan_s3(desired, s3.model.ObservedStorage((seen,) if seen else ()), **({"owner": OWNER} | kw))


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
    policy = next(a for a in result.actions if isinstance(a, s3.model.SetPolicy))
    assert policy.document is not None
    sids = [statement["Sid"] for statement in json.loads(policy.document)["Statement"]]
    assert sids == [s3.model.DENY_ANONYMOUS_SID]  # http endpoint: no insecure-transport deny


def test_an_unchanged_bucket_plans_nothing_and_is_ready() -> None:
    result = plan(storage(**FULL), converged())
    assert result.actions == ()
    assert result.objects == (base.ObjectState("Bucket", B, status.ProvisionState.READY),)
    assert result.converged


@pytest.mark.parametrize(
    ("changes", "action_type", "detail"),
    [
        ({"versioning": "Suspended"}, s3.model.SetVersioning, "versioning Enabled"),
        ({"encryption": None}, s3.model.SetEncryption, "default encryption AES256"),
        ({"encryption": ("aws:kms", None)}, s3.model.SetEncryption, "default encryption AES256"),
        ({"public_access_block": None}, s3.model.SetPublicAccessBlock, "all four blocks on"),
        ({"public_access_block": (True, False, True, True)}, s3.model.SetPublicAccessBlock, "all four blocks on"),
        ({"policy": None}, s3.model.SetPolicy, f"statements {s3.model.DENY_ANONYMOUS_SID}"),
        ({"lifecycle": ()}, s3.model.SetLifecycle, "rules payscope-noncurrent-version-expiration,"),
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
    assert [a.status for a in result.actions if isinstance(a, s3.model.SetVersioning)] == (
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
    found = [(a.algorithm, a.kms_key_id) for a in result.actions if isinstance(a, s3.model.SetEncryption)]
    assert found == ([expected] if expected else [])


def test_a_bucket_owned_by_another_account_is_failed_with_a_permanent_blocker() -> None:
    result = plan(storage(**FULL), s3.model.ObservedBucket(B, Ownership.OTHER_ACCOUNT))
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
    assert note.reason == s3.model.NOT_IMPLEMENTED_BY_ENDPOINT
    assert "501" in note.message
    assert result.converged
    # Not asked for, not reported.
    assert all(o.kind == "Bucket" for o in plan(storage(**(FULL | {"blockPublicAccess": None})), seen).objects)


@pytest.mark.parametrize(
    ("endpoint", "ask", "sids", "blocked"),
    [
        ("http://minio:9000", None, [s3.model.DENY_ANONYMOUS_SID], False),
        (
            "https://s3.example.com",
            None,
            [s3.model.DENY_ANONYMOUS_SID, s3.model.DENY_INSECURE_TRANSPORT_SID],
            False,
        ),
        (None, None, [s3.model.DENY_ANONYMOUS_SID, s3.model.DENY_INSECURE_TRANSPORT_SID], False),
        ("https://s3.example.com", False, [s3.model.DENY_ANONYMOUS_SID], False),
        ("http://minio:9000", True, [s3.model.DENY_ANONYMOUS_SID], True),  # would lock the operator out
    ],
)
def test_insecure_transport_is_denied_only_where_it_cannot_lock_the_owner_out(
    endpoint: str | None, ask: bool | None, sids: list[str], blocked: bool
) -> None:
    result = plan(storage(endpoint, **FULL), None, deny_insecure_transport=ask)
    policy = next(a for a in result.actions if isinstance(a, s3.model.SetPolicy))
    assert policy.document is not None
    assert [s["Sid"] for s in json.loads(policy.document)["Statement"]] == sids
    assert [(b.reason, b.permanent) for b in result.blockers] == (
        [(conditions.Reason.SPEC_INVALID, True)] if blocked else []
    )


def test_foreign_policy_statements_are_kept_when_ours_are_restored() -> None:
    foreign = s3.model.statement_of(FOREIGN_STATEMENT)
    result = plan(storage(**FULL), converged(policy=(foreign,), policy_id="corp-policy"))
    (action,) = result.actions
    assert isinstance(action, s3.model.SetPolicy)
    assert action.document is not None
    document = json.loads(action.document)
    assert document["Id"] == "corp-policy"
    assert document["Version"] == "2012-10-17"
    assert [s["Sid"] for s in document["Statement"]] == ["AnalyticsRead", s3.model.DENY_ANONYMOUS_SID]
    assert s3.model.statement_of(document["Statement"][0]) == foreign


def test_policy_comparison_ignores_list_order_and_one_item_lists() -> None:
    (statement,) = ours()
    raw = json.loads(statement.body)
    reordered = raw | {"Resource": list(reversed(raw["Resource"])), "Action": [raw["Action"]]}
    result = plan(storage(**FULL), converged(policy=(s3.model.statement_of(reordered),)))
    assert result.actions == ()


@pytest.mark.parametrize(
    ("spec_block", "observed_policy", "expected_sids"),
    [
        (False, ours(), None),  # public bucket asked for: our deny goes, and with it the empty policy
        (False, (*ours(), s3.model.statement_of(FOREIGN_STATEMENT)), ["AnalyticsRead"]),
        (None, ours(), "unchanged"),  # absent: still deny anonymous (secure default)
        (True, None, [s3.model.DENY_ANONYMOUS_SID]),
    ],
)
def test_block_public_access_governs_our_anonymous_deny(
    spec_block: bool | None, observed_policy: Any, expected_sids: Any
) -> None:
    seen = converged(policy=observed_policy, public_access_block=(spec_block,) * 4 if spec_block else None)
    result = plan(storage(**(FULL | {"blockPublicAccess": spec_block})), seen)
    policies = [a for a in result.actions if isinstance(a, s3.model.SetPolicy)]
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
    seen = converged(lifecycle=tuple(s3.model.rule_of(rule) for rule in observed))
    result = plan(storage(**(FULL | {"lifecycle": spec_lifecycle})), seen)
    lifecycles = [a for a in result.actions if isinstance(a, s3.model.SetLifecycle)]
    if expected_ids is None:
        assert lifecycles == []
        return
    (action,) = lifecycles
    assert [json.loads(rule)["ID"] for rule in action.rules] == expected_ids
    assert action.drift
    if FOREIGN_RULE["ID"] in expected_ids:
        assert json.loads(action.rules[0]) == FOREIGN_RULE  # resent exactly as read


def test_buckets_not_in_the_spec_are_never_planned() -> None:
    other = s3.model.ObservedBucket("someone-elses", Ownership.OURS)
    result = s3.plan.plan_s3(storage(**FULL), s3.model.ObservedStorage((converged(), other)), owner=OWNER)
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
    assert s3.client.create_bucket_params(B, region) == expected
    desired = stores_spec.ObjectStorage.model_validate({"region": region, "buckets": [{"name": B}]})
    (create, *_) = plan(desired, None).actions
    assert isinstance(create, s3.model.CreateBucket)
    assert create.region == region


# --- Ownership: only buckets this resource owns are changed -------------------------------------

OTHER = ownership.Owner("7a7a7a7a-0000-4000-8000-000000000002", "team-b", "payscope")
State = status.ProvisionState


@pytest.mark.parametrize(
    ("mark", "adopt", "state", "first_action", "blocker"),
    [
        (ownership.Mark.of(OWNER), False, State.DRIFTED, "SetVersioning", None),
        (ownership.Mark(), False, State.FOREIGN, None, None),  # created by hand: never changed
        (ownership.Mark(), True, State.DRIFTED, "SetOwner", None),  # adopt: true takes it over, mark first
        (ownership.Mark(legacy=True), False, State.DRIFTED, "SetOwner", None),  # an earlier operator's: migrated
        (ownership.Mark.of(OTHER), False, State.FOREIGN, None, conditions.Reason.OWNED_BY_ANOTHER_RESOURCE),
        (ownership.Mark.of(OTHER), True, State.FOREIGN, None, conditions.Reason.OWNED_BY_ANOTHER_RESOURCE),
        # an earlier incarnation of this very resource: only adopt takes it over
        (ownership.Mark("dead-uid", OWNER.resource), False, State.FOREIGN, None,
         conditions.Reason.OWNED_BY_ANOTHER_RESOURCE),
        (ownership.Mark("dead-uid", OWNER.resource), True, State.DRIFTED, "SetOwner", None),
    ],
)  # fmt: skip
def test_only_a_bucket_this_resource_owns_is_changed(
    mark: ownership.Mark, adopt: bool, state: status.ProvisionState, first_action: str | None, blocker: str | None
) -> None:
    seen = converged(versioning="Suspended", mark=mark, managed=mark.legacy)
    result = plan(storage(**(FULL | {"adopt": adopt})), seen)
    (bucket,) = [o for o in result.objects if o.kind == "Bucket"]
    assert bucket.state is state
    assert [type(a).__name__ for a in result.actions][:1] == ([first_action] if first_action else [])
    assert [b.reason for b in result.blockers] == ([blocker] if blocker else [])
    if state is State.FOREIGN:
        assert not bucket.matches
        assert "versioning Enabled" in bucket.message  # what Full management would have changed
        assert not bucket.as_declared


def test_a_foreign_bucket_that_matches_is_as_declared_and_names_its_owner() -> None:
    result = plan(storage(**FULL), converged(mark=ownership.Mark.of(OTHER)))
    (bucket,) = result.objects
    assert (bucket.state, bucket.matches, bucket.as_declared) == (State.FOREIGN, True, True)
    (blocker,) = result.blockers
    assert OTHER.resource in blocker.message
    assert OTHER.uid in blocker.message
    assert blocker.permanent
