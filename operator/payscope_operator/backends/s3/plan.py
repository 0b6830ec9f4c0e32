"""Pure half of the S3 provisioner: observed bucket state, actions, plan, audit facts.

Why this module exists: deciding what a bucket needs is a pure function of the spec and
of what ``objects`` observed, so it is table-tested without a server. The operator owns
the bucket-policy statements whose Sid starts with ``PayScope`` (deny anonymous access;
deny insecure transport on https endpoints) and the lifecycle rules whose ID starts with
``payscope-``; everything else in a policy or lifecycle configuration is kept as found.
Documents are compared in a normalised form (IAM list order and one-item lists do not
count), so an unchanged bucket plans nothing. A spec setting that is absent is neither
planned nor audited; a feature the endpoint answers 501 NotImplemented for is reported
with reason ``NotImplementedByEndpoint`` (the audit warns) instead of being planned.

What it must not do: talk to S3, read the clock, or plan any deletion of a bucket (only
``objects.ObjectsProvisioner.teardown`` deletes, and only tagged, empty buckets).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, TypedDict

from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base

SYSTEM = "objectStorage"
OUR_SID_PREFIX = "PayScope"
DENY_ANONYMOUS_SID = "PayScopeDenyAnonymous"
DENY_INSECURE_TRANSPORT_SID = "PayScopeDenyInsecureTransport"
RULE_ID_PREFIX = "payscope-"
CREATED_BY_TAG_KEY = "payscope.io/created-by"
"""Bucket tag beside managed-by: the creating credentials' owner id, as ListBuckets reports it."""
NOT_IMPLEMENTED_BY_ENDPOINT = "NotImplementedByEndpoint"
"""Reason on an ObjectState whose feature the endpoint answers 501 for (the audit warns)."""

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


def _dump(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _normal(value: Any) -> Any:
    """IAM semantics: lists are unordered, a one-item list equals its item, booleans are strings."""
    if isinstance(value, Mapping):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = sorted((_normal(item) for item in value), key=_dump)
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def statement_of(raw: Mapping[str, Any]) -> Statement:
    return Statement(sid=str(raw.get("Sid", "")), body=_dump(_normal(raw)))


def rule_of(raw: Mapping[str, Any]) -> Rule:
    """A rule as read; its key treats a whole-bucket Filter and Prefix forms as equal."""
    comparable = {k: v for k, v in raw.items() if k not in ("Filter", "Prefix")}
    scope = raw.get("Filter", {"Prefix": raw.get("Prefix", "")})
    if scope not in ({}, {"Prefix": ""}):
        comparable["Filter"] = scope
    return Rule(id=str(raw.get("ID", "")), body=_dump(raw), key=_dump(_normal(comparable)))


def desired_statements(bucket: str, *, deny_anonymous: bool, deny_insecure_transport: bool) -> tuple[Statement, ...]:
    """The operator's own policy statements for ``bucket``."""
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    scope: dict[str, Any] = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources}
    raw: list[dict[str, Any]] = []
    if deny_anonymous:
        condition = {"StringEquals": {"aws:PrincipalType": "Anonymous"}}
        raw.append({"Sid": DENY_ANONYMOUS_SID, **scope, "Condition": condition})
    if deny_insecure_transport:
        condition = {"Bool": {"aws:SecureTransport": "false"}}
        raw.append({"Sid": DENY_INSECURE_TRANSPORT_SID, **scope, "Condition": condition})
    return tuple(statement_of(item) for item in raw)


def desired_rules(lifecycle: stores_spec.Lifecycle) -> tuple[Rule, ...]:
    """The operator's own lifecycle rules, one per set field, each over the whole bucket."""
    wanted = (
        ("noncurrent-version-expiration", "NoncurrentVersionExpiration", "NoncurrentDays",
         lifecycle.noncurrent_version_expiration_days),
        ("expiration", "Expiration", "Days", lifecycle.expiration_days),
        ("abort-incomplete-multipart-upload", "AbortIncompleteMultipartUpload", "DaysAfterInitiation",
         lifecycle.abort_incomplete_multipart_upload_days),
    )  # fmt: skip
    return tuple(
        rule_of({"ID": RULE_ID_PREFIX + suffix, "Filter": {"Prefix": ""}, "Status": "Enabled", element: {key: days}})
        for suffix, element, key, days in wanted
        if days is not None
    )


def create_bucket_params(name: str, region: str) -> dict[str, Any]:
    """CreateBucket arguments: us-east-1 takes no LocationConstraint, every other region must."""
    if region == "us-east-1":
        return {"Bucket": name}
    return {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": region}}


def secure_endpoint(desired: stores_spec.ObjectStorage) -> bool:
    """AWS (no endpoint) and https endpoints; on http, an insecure-transport deny locks the owner out."""
    return desired.endpoint is None or desired.endpoint.startswith("https://")


# --- Planning (pure) ---------------------------------------------------------------


def plan_objects(
    desired: stores_spec.ObjectStorage, observed: ObservedStorage, *, deny_insecure_transport: bool | None = None
) -> base.Plan:
    """Actions that make every declared bucket match the spec, in the order to apply them.

    ``deny_insecure_transport`` None means: only on https endpoints (and AWS); True on
    an http endpoint is refused with a permanent Blocker. An action on a bucket that
    already exists is marked ``drift=True``: without memory the plan cannot tell an
    out-of-band change from a spec edit, and treats both as drift to correct.
    """
    actions: list[base.Action] = []
    objects: list[base.ObjectState] = []
    blockers: list[base.Blocker] = []
    deny_tls = secure_endpoint(desired) if deny_insecure_transport is None else deny_insecure_transport
    if deny_tls and not secure_endpoint(desired):
        message = "denying insecure transport on an http endpoint would lock the operator out of its buckets"
        blockers.append(base.Blocker(conditions.Reason.SPEC_INVALID, message, permanent=True))
        deny_tls = False
    for bucket in desired.buckets:
        seen = observed.bucket(bucket.name) or ObservedBucket(bucket.name, Ownership.MISSING)
        if seen.ownership is Ownership.OTHER_ACCOUNT:
            message = (
                f"bucket {bucket.name} belongs to another account: it refuses these credentials,"
                " or the operator of another identity created it"
            )
            reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
            objects.append(base.ObjectState("Bucket", bucket.name, status.ProvisionState.FAILED, reason, message))
            blockers.append(base.Blocker(reason, message, permanent=True))
            continue
        planner = _BucketPlanner(bucket, seen)
        actions.extend(planner.plan(desired.region, deny_insecure_transport=deny_tls))
        if seen.ownership is Ownership.MISSING:
            state = status.ProvisionState.MISSING
        else:
            state = status.ProvisionState.DRIFTED if planner.actions else status.ProvisionState.READY
        objects.append(base.ObjectState("Bucket", bucket.name, state))
        objects.extend(planner.notes)
    return base.Plan(SYSTEM, tuple(actions), tuple(objects), tuple(blockers))


class _Change(TypedDict):
    system: str
    verb: base.Verb
    kind: str
    target: str
    detail: str
    drift: bool


class _BucketPlanner:
    """The actions one bucket needs; ``notes`` are features the endpoint does not implement."""

    def __init__(self, bucket: stores_spec.Bucket, seen: ObservedBucket) -> None:
        self.bucket, self.seen = bucket, seen
        self.actions: list[base.Action] = []
        self.notes: list[base.ObjectState] = []

    def _wanted(self, feature: Feature) -> bool:
        if feature not in self.seen.unsupported:
            return True
        name = self.bucket.name
        message = f"the endpoint answers 501 NotImplemented for {feature} on bucket {name}; not provisioned"
        state = status.ProvisionState.READY  # not a provisioning failure: the audit reports it as a warning
        self.notes.append(base.ObjectState(feature, name, state, NOT_IMPLEMENTED_BY_ENDPOINT, message))
        return False

    def _change(self, kind: Feature, detail: str) -> _Change:
        drift = self.seen.ownership is Ownership.OURS
        name = self.bucket.name
        return _Change(system=SYSTEM, verb=base.Verb.UPDATE, kind=kind, target=name, detail=detail, drift=drift)

    def plan(self, region: str, *, deny_insecure_transport: bool) -> list[base.Action]:
        bucket, seen, add = self.bucket, self.seen, self.actions.append
        if seen.ownership is Ownership.MISSING:
            create = _Change(
                system=SYSTEM,
                verb=base.Verb.CREATE,
                kind="Bucket",
                target=bucket.name,
                detail=f"region {region}",
                drift=False,
            )
            add(CreateBucket(**create, region=region))

        if bucket.versioning is not None and self._wanted(Feature.VERSIONING):
            want: Literal["Enabled", "Suspended"] = "Enabled" if bucket.versioning else "Suspended"
            if (seen.versioning or "Suspended") != want:  # never enabled reads as suspended
                add(SetVersioning(**self._change(Feature.VERSIONING, f"versioning {want}"), status=want))

        if bucket.encryption is not None and self._wanted(Feature.ENCRYPTION):
            algorithm, key = str(bucket.encryption), bucket.kms_key_id
            have = seen.encryption
            if have is None or have[0] != algorithm or (key is not None and have[1] != key):
                detail = f"default encryption {algorithm}" + (f" with key {key}" if key else "")
                add(SetEncryption(**self._change(Feature.ENCRYPTION, detail), algorithm=algorithm, kms_key_id=key))

        block = bucket.block_public_access
        have_block = seen.public_access_block or (False,) * 4  # never configured reads as all off
        if block is not None and self._wanted(Feature.PUBLIC_ACCESS_BLOCK) and have_block != (block,) * 4:
            detail = "all four blocks " + ("on" if block else "off")
            add(SetPublicAccessBlock(**self._change(Feature.PUBLIC_ACCESS_BLOCK, detail), blocked=block))

        if self._wanted(Feature.POLICY):
            self._plan_policy(deny_anonymous=block is not False, deny_insecure_transport=deny_insecure_transport)
        if bucket.lifecycle is not None and self._wanted(Feature.LIFECYCLE):
            self._plan_lifecycle(bucket.lifecycle)
        return self.actions

    def _plan_policy(self, *, deny_anonymous: bool, deny_insecure_transport: bool) -> None:
        """Replace our statements when they differ; keep every foreign statement as found."""
        ours = desired_statements(
            self.bucket.name, deny_anonymous=deny_anonymous, deny_insecure_transport=deny_insecure_transport
        )
        current = self.seen.policy or ()
        have = sorted(item.body for item in current if item.sid.startswith(OUR_SID_PREFIX))
        if have == sorted(item.body for item in ours):
            return
        foreign = [item for item in current if not item.sid.startswith(OUR_SID_PREFIX)]
        statements = [json.loads(item.body) for item in (*foreign, *ours)]
        document = None  # nothing left: delete the bucket policy
        if statements:
            head = {"Version": "2012-10-17"} | ({"Id": self.seen.policy_id} if self.seen.policy_id else {})
            document = _dump(head | {"Statement": statements})
        detail = "statements " + (", ".join(item.sid for item in ours) or "none of ours")
        self.actions.append(SetPolicy(**self._change(Feature.POLICY, detail), document=document))

    def _plan_lifecycle(self, lifecycle: stores_spec.Lifecycle) -> None:
        """Replace our rules (ID payscope-*) when they differ; keep every foreign rule as found."""
        rules = desired_rules(lifecycle)
        have = sorted(rule.key for rule in self.seen.lifecycle if rule.id.startswith(RULE_ID_PREFIX))
        if have == sorted(rule.key for rule in rules):
            return
        kept = [rule.body for rule in self.seen.lifecycle if not rule.id.startswith(RULE_ID_PREFIX)]
        detail = "rules " + (", ".join(rule.id for rule in rules) or "none of ours")
        bodies = (*kept, *(rule.body for rule in rules))
        self.actions.append(SetLifecycle(**self._change(Feature.LIFECYCLE, detail), rules=bodies))


# --- What the audit reads ----------------------------------------------------------


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


def facts_of(bucket: ObservedBucket) -> BucketFacts:
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
        exists=bucket.ownership is not Ownership.MISSING,
        owned_by_another_account=bucket.ownership is Ownership.OTHER_ACCOUNT,
        managed=bucket.managed,
        versioning=bucket.versioning,
        encryption=bucket.encryption[0] if bucket.encryption else None,
        denies_anonymous=matches("Deny", ("StringEquals", "aws:PrincipalType", "anonymous")),
        allows_anonymous=matches("Allow", None),
        denies_insecure_transport=matches("Deny", ("Bool", "aws:SecureTransport", "false")),
        public_access_block=(
            BlockState.NOT_IMPLEMENTED if Feature.PUBLIC_ACCESS_BLOCK in bucket.unsupported else state
        ),
        lifecycle_rule_ids=tuple(rule.id for rule in bucket.lifecycle),
        noncurrent_version_expiration=any("NoncurrentVersionExpiration" in rule for rule in rules),
        abort_incomplete_multipart_upload=any("AbortIncompleteMultipartUpload" in rule for rule in rules),
        not_implemented=tuple(sorted(bucket.unsupported)),
    )
