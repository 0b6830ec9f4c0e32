"""The pure planner of S3: what each declared bucket needs, from the spec and what was observed.

Why this module exists: deciding what a bucket needs is a pure function of the spec and
of what ``provisioner`` observed, so it is table-tested without a server. The operator
owns the bucket-policy statements whose Sid starts with ``PayScope`` (deny anonymous
access; deny insecure transport on https endpoints) and the lifecycle rules whose ID
starts with ``payscope-``; everything else in a policy or lifecycle configuration is
kept as found. A spec setting that is absent is neither planned nor audited; a feature
the endpoint answers 501 NotImplemented for is reported with reason
``NotImplementedByEndpoint`` (the audit warns) instead of being planned.

What it must not do: talk to S3, read the clock, or plan any deletion of a bucket (only
``provisioner.S3Provisioner.teardown`` deletes, and only tagged, empty buckets).
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, ownership, planning
from payscope_operator.backends.s3 import model


def desired_statements(
    bucket: str, *, deny_anonymous: bool, deny_insecure_transport: bool
) -> tuple[model.Statement, ...]:
    """The operator's own policy statements for ``bucket``."""
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    scope: dict[str, Any] = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": resources}
    raw: list[dict[str, Any]] = []
    if deny_anonymous:
        condition = {"StringEquals": {"aws:PrincipalType": "Anonymous"}}
        raw.append({"Sid": model.DENY_ANONYMOUS_SID, **scope, "Condition": condition})
    if deny_insecure_transport:
        condition = {"Bool": {"aws:SecureTransport": "false"}}
        raw.append({"Sid": model.DENY_INSECURE_TRANSPORT_SID, **scope, "Condition": condition})
    return tuple(model.statement_of(item) for item in raw)


def desired_rules(lifecycle: stores_spec.Lifecycle) -> tuple[model.Rule, ...]:
    """The operator's own lifecycle rules, one per set field, each over the whole bucket."""
    wanted = (
        ("noncurrent-version-expiration", "NoncurrentVersionExpiration", "NoncurrentDays",
         lifecycle.noncurrent_version_expiration_days),
        ("expiration", "Expiration", "Days", lifecycle.expiration_days),
        ("abort-incomplete-multipart-upload", "AbortIncompleteMultipartUpload", "DaysAfterInitiation",
         lifecycle.abort_incomplete_multipart_upload_days),
    )  # fmt: skip
    return tuple(
        model.rule_of(
            {"ID": model.RULE_ID_PREFIX + suffix, "Filter": {"Prefix": ""}, "Status": "Enabled", element: {key: days}}
        )
        for suffix, element, key, days in wanted
        if days is not None
    )


def secure_endpoint(desired: stores_spec.ObjectStorage) -> bool:
    """AWS (no endpoint) and https endpoints; on http, an insecure-transport deny locks the owner out."""
    return desired.endpoint is None or desired.endpoint.startswith("https://")


def plan_s3(
    desired: stores_spec.ObjectStorage,
    observed: model.ObservedStorage,
    *,
    owner: ownership.Owner,
    deny_insecure_transport: bool | None = None,
) -> base.Plan:
    """Actions that make every declared bucket ``owner`` may manage match the spec, in the order to apply them.

    ``deny_insecure_transport`` None means: only on https endpoints (and AWS); True on
    an http endpoint is refused with a permanent Blocker. An action on a bucket that
    already exists is marked ``drift=True``: without memory the plan cannot tell an
    out-of-band change from a spec edit, and treats both as drift to correct. A bucket
    that exists and is not ``owner``'s (``ownership.judge``) is Foreign: nothing is
    planned for it, and its state says what Full management would have changed.
    """
    out = planning.PlanBuilder(model.SYSTEM)
    deny_tls = secure_endpoint(desired) if deny_insecure_transport is None else deny_insecure_transport
    if deny_tls and not secure_endpoint(desired):
        message = "denying insecure transport on an http endpoint would lock the operator out of its buckets"
        out.block(conditions.Reason.SPEC_INVALID, message, permanent=True)
        deny_tls = False
    for bucket in desired.buckets:
        seen = observed.bucket(bucket.name) or model.ObservedBucket(bucket.name, model.Ownership.MISSING)
        if seen.ownership is model.Ownership.OTHER_ACCOUNT:
            message = (
                f"bucket {bucket.name} belongs to another account: it refuses these credentials,"
                " or the operator of another identity created it"
            )
            reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
            out.fail([("Bucket", bucket.name)], reason, message, permanent=True)
            continue
        planner = _BucketPlanner(bucket, seen)
        actions = planner.plan(desired.region, deny_insecure_transport=deny_tls)
        if seen.ownership is model.Ownership.MISSING:
            for action in actions:
                out.act(action)
            out.state("Bucket", bucket.name, status.ProvisionState.MISSING)
            out.objects.extend(planner.notes)
            continue
        verdict = ownership.judge(owner, seen.mark, adopt=bucket.adopt)
        if not verdict.manage:
            out.foreign("Bucket", bucket.name, verdict, [action.detail for action in actions])
            continue
        if verdict.mark and model.Feature.TAGGING not in seen.unsupported:
            out.act(
                model.SetOwner(
                    system=model.SYSTEM,
                    verb=base.Verb.UPDATE,
                    kind="BucketOwnership",
                    target=bucket.name,
                    detail=f"owner {owner.resource}: {verdict.message}",
                    tags=model.owner_tags(owner),
                )
            )
        for action in actions:
            out.act(action)
        state = status.ProvisionState.DRIFTED if actions else status.ProvisionState.READY
        out.state("Bucket", bucket.name, state, verdict.message)
        out.objects.extend(planner.notes)
    return out.build()


class _Change(TypedDict):
    system: str
    verb: base.Verb
    kind: str
    target: str
    detail: str
    drift: bool


class _BucketPlanner:
    """The actions one bucket needs; ``notes`` are features the endpoint does not implement."""

    def __init__(self, bucket: stores_spec.Bucket, seen: model.ObservedBucket) -> None:
        self.bucket, self.seen = bucket, seen
        self.actions: list[base.Action] = []
        self.notes: list[base.ObjectState] = []

    def _wanted(self, feature: model.Feature) -> bool:
        if feature not in self.seen.unsupported:
            return True
        name = self.bucket.name
        message = f"the endpoint answers 501 NotImplemented for {feature} on bucket {name}; not provisioned"
        state = status.ProvisionState.READY  # not a provisioning failure: the audit reports it as a warning
        self.notes.append(base.ObjectState(feature, name, state, model.NOT_IMPLEMENTED_BY_ENDPOINT, message))
        return False

    def _change(self, kind: model.Feature, detail: str) -> _Change:
        drift = self.seen.ownership is model.Ownership.OURS
        name = self.bucket.name
        return _Change(system=model.SYSTEM, verb=base.Verb.UPDATE, kind=kind, target=name, detail=detail, drift=drift)

    def plan(self, region: str, *, deny_insecure_transport: bool) -> list[base.Action]:
        bucket, seen, add = self.bucket, self.seen, self.actions.append
        if seen.ownership is model.Ownership.MISSING:
            create = _Change(
                system=model.SYSTEM,
                verb=base.Verb.CREATE,
                kind="Bucket",
                target=bucket.name,
                detail=f"region {region}",
                drift=False,
            )
            add(model.CreateBucket(**create, region=region))

        if bucket.versioning is not None and self._wanted(model.Feature.VERSIONING):
            want: Literal["Enabled", "Suspended"] = "Enabled" if bucket.versioning else "Suspended"
            if (seen.versioning or "Suspended") != want:  # never enabled reads as suspended
                add(model.SetVersioning(**self._change(model.Feature.VERSIONING, f"versioning {want}"), status=want))

        if bucket.encryption is not None and self._wanted(model.Feature.ENCRYPTION):
            algorithm, key = str(bucket.encryption), bucket.kms_key_id
            have = seen.encryption
            if have is None or have[0] != algorithm or (key is not None and have[1] != key):
                detail = f"default encryption {algorithm}" + (f" with key {key}" if key else "")
                add(
                    model.SetEncryption(
                        **self._change(model.Feature.ENCRYPTION, detail), algorithm=algorithm, kms_key_id=key
                    )
                )

        block = bucket.block_public_access
        have_block = seen.public_access_block or (False,) * 4  # never configured reads as all off
        if block is not None and self._wanted(model.Feature.PUBLIC_ACCESS_BLOCK) and have_block != (block,) * 4:
            detail = "all four blocks " + ("on" if block else "off")
            add(model.SetPublicAccessBlock(**self._change(model.Feature.PUBLIC_ACCESS_BLOCK, detail), blocked=block))

        if self._wanted(model.Feature.POLICY):
            self._plan_policy(deny_anonymous=block is not False, deny_insecure_transport=deny_insecure_transport)
        if bucket.lifecycle is not None and self._wanted(model.Feature.LIFECYCLE):
            self._plan_lifecycle(bucket.lifecycle)
        return self.actions

    def _plan_policy(self, *, deny_anonymous: bool, deny_insecure_transport: bool) -> None:
        """Replace our statements when they differ; keep every foreign statement as found."""
        ours = desired_statements(
            self.bucket.name, deny_anonymous=deny_anonymous, deny_insecure_transport=deny_insecure_transport
        )
        current = self.seen.policy or ()
        have = sorted(item.body for item in current if item.sid.startswith(model.OUR_SID_PREFIX))
        if have == sorted(item.body for item in ours):
            return
        foreign = [item for item in current if not item.sid.startswith(model.OUR_SID_PREFIX)]
        statements = [json.loads(item.body) for item in (*foreign, *ours)]
        document = None  # nothing left: delete the bucket policy
        if statements:
            head = {"Version": "2012-10-17"} | ({"Id": self.seen.policy_id} if self.seen.policy_id else {})
            document = model.dump(head | {"Statement": statements})
        detail = "statements " + (", ".join(item.sid for item in ours) or "none of ours")
        self.actions.append(model.SetPolicy(**self._change(model.Feature.POLICY, detail), document=document))

    def _plan_lifecycle(self, lifecycle: stores_spec.Lifecycle) -> None:
        """Replace our rules (ID payscope-*) when they differ; keep every foreign rule as found."""
        rules = desired_rules(lifecycle)
        have = sorted(rule.key for rule in self.seen.lifecycle if rule.id.startswith(model.RULE_ID_PREFIX))
        if have == sorted(rule.key for rule in rules):
            return
        kept = [rule.body for rule in self.seen.lifecycle if not rule.id.startswith(model.RULE_ID_PREFIX)]
        detail = "rules " + (", ".join(rule.id for rule in rules) or "none of ours")
        bodies = (*kept, *(rule.body for rule in rules))
        self.actions.append(model.SetLifecycle(**self._change(model.Feature.LIFECYCLE, detail), rules=bodies))
