"""What the S3 provisioner observes and may do: buckets, their documents, and actions.

Why this module exists: the planner (``plan``), the provisioner (``provisioner``) and the
audit's facts (``evidence``) share these types. Policy statements and lifecycle rules
are held in a normalised form (:func:`statement_of`, :func:`rule_of`: IAM list order and
one-item lists do not count), so equal documents compare equal and an unchanged
bucket plans nothing.

What it must not do: talk to S3, read the clock, or decide what to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from payscope_operator.backends import base, ownership

SYSTEM = "objectStorage"
OUR_SID_PREFIX = "PayScope"
DENY_ANONYMOUS_SID = "PayScopeDenyAnonymous"
DENY_INSECURE_TRANSPORT_SID = "PayScopeDenyInsecureTransport"
RULE_ID_PREFIX = "payscope-"
CREATED_BY_TAG_KEY = "payscope.io/created-by"
"""Bucket tag beside managed-by: the creating credentials' owner id, as ListBuckets reports it."""
NOT_IMPLEMENTED_BY_ENDPOINT = "NotImplementedByEndpoint"
"""Reason on an ObjectState whose feature the endpoint answers 501 for (the audit warns)."""

Mark = ownership.Mark
BLOCK_KEYS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


class Ownership(StrEnum):
    MISSING = "Missing"
    OURS = "Ours"  # exists and is accessible, and no marker says another identity created it
    OTHER_ACCOUNT = "OtherAccount"  # HeadBucket refused, or created by another identity's operator


class Feature(StrEnum):
    """Bucket sub-resources; one ObjectState kind each when the endpoint lacks it."""

    TAGGING = "BucketTagging"
    VERSIONING = "BucketVersioning"
    ENCRYPTION = "BucketEncryption"
    POLICY = "BucketPolicy"
    PUBLIC_ACCESS_BLOCK = "PublicAccessBlock"
    LIFECYCLE = "BucketLifecycle"


@dataclass(frozen=True)
class Statement:
    """One bucket-policy statement: its Sid and its normalised JSON."""

    sid: str
    body: str


@dataclass(frozen=True)
class Rule:
    """One lifecycle rule: ``body`` is resent as read, ``key`` compares rules."""

    id: str
    body: str
    key: str


@dataclass(frozen=True)
class ObservedBucket:
    name: str
    ownership: Ownership
    managed: bool = False  # carries the managed-by tag: the operator created it
    created_by: str | None = None  # the CREATED_BY_TAG_KEY tag, when managed
    mark: Mark = field(default_factory=Mark)  # the owning resource its tags record
    tags: tuple[tuple[str, str], ...] = ()  # every tag, as read (foreign tags are kept when ours are added)
    versioning: str | None = None  # "Enabled", "Suspended", or None when never enabled
    encryption: tuple[str, str | None] | None = None  # (algorithm, kms key id)
    policy: tuple[Statement, ...] | None = None  # None: no bucket policy
    policy_id: str | None = None
    public_access_block: tuple[bool, ...] | None = None  # BLOCK_KEYS in order; None: not configured
    lifecycle: tuple[Rule, ...] = ()
    unsupported: frozenset[Feature] = frozenset()  # the endpoint answered 501 NotImplemented


@dataclass(frozen=True)
class ObservedStorage:
    buckets: tuple[ObservedBucket, ...] = ()

    def bucket(self, name: str) -> ObservedBucket | None:
        return next((bucket for bucket in self.buckets if bucket.name == name), None)


# --- Actions ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateBucket(base.Action):
    region: str


@dataclass(frozen=True, kw_only=True)
class SetOwner(base.Action):
    """Record the owning resource in the bucket's tags (migrating or adopting it), keeping other tags."""

    tags: tuple[tuple[str, str], ...]  # our tags to add: managed-by, owner uid, owner namespace/name


@dataclass(frozen=True, kw_only=True)
class SetVersioning(base.Action):
    status: Literal["Enabled", "Suspended"]


@dataclass(frozen=True, kw_only=True)
class SetEncryption(base.Action):
    algorithm: str
    kms_key_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class SetPublicAccessBlock(base.Action):
    blocked: bool


@dataclass(frozen=True, kw_only=True)
class SetPolicy(base.Action):
    document: str | None  # the whole policy JSON to put; None deletes the bucket policy


@dataclass(frozen=True, kw_only=True)
class SetLifecycle(base.Action):
    rules: tuple[str, ...]  # rule JSON bodies; () deletes the lifecycle configuration


# --- Documents: normalised policy statements and lifecycle rules ----------------


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _normal(value: Any) -> Any:
    """IAM semantics: lists are unordered, a one-item list equals its item, booleans are strings."""
    if isinstance(value, Mapping):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = sorted((_normal(item) for item in value), key=dump)
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def owner_tags(owner: ownership.Owner) -> tuple[tuple[str, str], ...]:
    """The tags recording ``owner`` (besides created-by, which the provisioner adds when it knows it)."""
    return (
        (base.MANAGED_TAG_KEY, base.MANAGED_TAG_VALUE),
        (ownership.OWNER_UID_TAG, owner.uid),
        (ownership.OWNER_TAG, owner.resource),
    )


def mark_of(tags: Mapping[str, str]) -> ownership.Mark:
    """The owner a bucket's tags record; the managed-by tag alone is an earlier operator's mark."""
    return ownership.Mark(
        tags.get(ownership.OWNER_UID_TAG) or None,
        tags.get(ownership.OWNER_TAG) or None,
        legacy=tags.get(base.MANAGED_TAG_KEY) == base.MANAGED_TAG_VALUE,
    )


def statement_of(raw: Mapping[str, Any]) -> Statement:
    return Statement(sid=str(raw.get("Sid", "")), body=dump(_normal(raw)))


def rule_of(raw: Mapping[str, Any]) -> Rule:
    """A rule as read; its key treats a whole-bucket Filter and Prefix forms as equal."""
    comparable = {k: v for k, v in raw.items() if k not in ("Filter", "Prefix")}
    scope = raw.get("Filter", {"Prefix": raw.get("Prefix", "")})
    if scope not in ({}, {"Prefix": ""}):
        comparable["Filter"] = scope
    return Rule(id=str(raw.get("ID", "")), body=dump(raw), key=dump(_normal(comparable)))
