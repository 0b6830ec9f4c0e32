"""What the audit reads about S3 buckets: facts, never credentials, derived from one observation.

Why this module exists: the data-layer checks (B.s3.*) need a few yes/no facts per
bucket (versioning, encryption, anonymous access, public access block, lifecycle), the
same ones whichever endpoint serves it. :func:`facts_of` reduces what the provisioner
observed to those facts, so the audit sends no request of its own for them.

What it must not do: talk to S3, judge the facts (the checks do), or hold a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from payscope_operator.backends.s3 import model


class BlockState(StrEnum):
    ON = "On"
    OFF = "Off"
    PARTIAL = "Partial"
    NOT_IMPLEMENTED = "NotImplemented"


@dataclass(frozen=True)
class BucketFacts:
    """Read-only facts about one bucket for the audit (B.* checks); no secret in any field."""

    name: str
    exists: bool
    owned_by_another_account: bool
    managed: bool
    versioning: str | None  # Enabled, Suspended, or None (never enabled / unknown)
    encryption: str | None  # AES256, aws:kms, or None
    denies_anonymous: bool  # a Deny for aws:PrincipalType Anonymous covers the bucket
    allows_anonymous: bool  # an unconditional Allow to Principal "*" exists
    denies_insecure_transport: bool
    public_access_block: BlockState
    lifecycle_rule_ids: tuple[str, ...]
    noncurrent_version_expiration: bool
    abort_incomplete_multipart_upload: bool
    not_implemented: tuple[str, ...]  # features the endpoint answers 501 for


def facts_of(bucket: model.ObservedBucket) -> BucketFacts:
    statements = [json.loads(item.body) for item in bucket.policy or ()]

    def matches(effect: str, condition: tuple[str, str, str] | None) -> bool:
        for raw in statements:
            if raw.get("Effect") != effect or raw.get("Principal") not in ("*", {"AWS": "*"}):
                continue
            if condition is None and "Condition" not in raw:
                return True
            if condition is not None:
                operator, key, value = condition
                found = {k.lower(): v for k, v in raw.get("Condition", {}).get(operator, {}).items()}
                if str(found.get(key.lower(), "")).lower() == value:
                    return True
        return False

    block = bucket.public_access_block or (False,) * 4
    state = BlockState.ON if all(block) else BlockState.PARTIAL if any(block) else BlockState.OFF
    rules = [raw for raw in (json.loads(rule.body) for rule in bucket.lifecycle) if raw.get("Status") == "Enabled"]
    return BucketFacts(
        name=bucket.name,
        exists=bucket.ownership is not model.Ownership.MISSING,
        owned_by_another_account=bucket.ownership is model.Ownership.OTHER_ACCOUNT,
        managed=bucket.managed,
        versioning=bucket.versioning,
        encryption=bucket.encryption[0] if bucket.encryption else None,
        denies_anonymous=matches("Deny", ("StringEquals", "aws:PrincipalType", "anonymous")),
        allows_anonymous=matches("Allow", None),
        denies_insecure_transport=matches("Deny", ("Bool", "aws:SecureTransport", "false")),
        public_access_block=(
            BlockState.NOT_IMPLEMENTED if model.Feature.PUBLIC_ACCESS_BLOCK in bucket.unsupported else state
        ),
        lifecycle_rule_ids=tuple(rule.id for rule in bucket.lifecycle),
        noncurrent_version_expiration=any("NoncurrentVersionExpiration" in rule for rule in rules),
        abort_incomplete_multipart_upload=any("AbortIncompleteMultipartUpload" in rule for rule in rules),
        not_implemented=tuple(sorted(bucket.unsupported)),
    )
