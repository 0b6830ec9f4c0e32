"""The audit's facts about a bucket, derived from one observation (pure: no server)."""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import stores_spec
from payscope_operator.backends import s3
from tests.unit import observed

B = "payscope-ingest"
Ownership = s3.model.Ownership
Feature = s3.model.Feature
OURS = s3.plan.desired_statements(B, deny_anonymous=True, deny_insecure_transport=False)
RULES = s3.plan.desired_rules(
    stores_spec.Lifecycle.model_validate(
        {"noncurrentVersionExpirationDays": 30, "abortIncompleteMultipartUploadDays": 7}
    )
)
ANALYTICS = {"AWS": ["arn:aws:iam::123456789012:role/analytics"]}
FOREIGN_STATEMENT = {"Sid": "AnalyticsRead", "Effect": "Allow", "Principal": ANALYTICS, "Action": ["s3:GetObject"],
                     "Resource": f"arn:aws:s3:::{B}/*"}  # fmt: skip


def test_the_audit_facts_of_a_provisioned_bucket() -> None:
    seen = s3.model.ObservedBucket(
        B,
        Ownership.OURS,
        managed=True,
        versioning="Enabled",
        encryption=("AES256", None),
        policy=(*OURS, s3.model.statement_of(FOREIGN_STATEMENT)),
        lifecycle=RULES,
        unsupported=frozenset({Feature.PUBLIC_ACCESS_BLOCK}),
    )
    facts = s3.evidence.facts_of(seen)
    assert facts == observed.bucket_facts(
        name=B,
        public_access_block=s3.evidence.BlockState.NOT_IMPLEMENTED,
        lifecycle_rule_ids=("payscope-noncurrent-version-expiration", "payscope-abort-incomplete-multipart-upload"),
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
    seen = s3.model.ObservedBucket(B, Ownership.OURS, policy=(s3.model.statement_of(statement),))
    facts = s3.evidence.facts_of(seen)
    assert (facts.allows_anonymous, facts.denies_anonymous) == (allows, denies)
    assert facts.public_access_block is s3.evidence.BlockState.OFF


def test_a_missing_bucket_has_facts_that_say_so() -> None:
    facts = s3.evidence.facts_of(s3.model.ObservedBucket(B, Ownership.MISSING))
    assert not facts.exists
    assert facts.versioning is None
    assert not facts.denies_anonymous
