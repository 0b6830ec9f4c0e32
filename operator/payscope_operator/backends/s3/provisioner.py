"""S3 buckets: observe, apply and tear down what ``plan`` decides, through ``client``.

Why this module exists: PayScope keeps ingested files in S3 (AWS, MinIO, SeaweedFS).
Per declared bucket the operator creates it (region-aware, tagged
``managed-by=payscope-operator`` so teardown recognises it) and reconciles versioning,
default encryption, PublicAccessBlock, its own bucket-policy statements and its own
lifecycle rules. Every boto3 call goes through ``client.call`` (a worker thread, the
client's timeouts, the operator's errors).

Ownership: every bucket it creates is tagged with its resource's uid and namespace/name
(``ownership.OWNER_UID_TAG``, ``ownership.OWNER_TAG``) beside ``managed-by``; a bucket found
with the managed-by tag but no uid (an earlier operator version's) gets them on the first
pass; any other existing bucket is Foreign and left as found unless declared ``adopt: true``.

What it must not do: change a bucket its resource does not own, delete data or buckets it
did not create (teardown removes only declared buckets whose tags name its resource, whose
created-by tag names these credentials' owner, and that hold no object, version, delete
marker or upload), use a bucket name that fails
``fields.BUCKET_NAME_PATTERN``, or put a credential into an error message.

Endpoint facts it copes with (SeaweedFS 4.48): PublicAccessBlock answers 501
NotImplemented (recorded as unsupported; the plan reports it, the audit warns);
``aws:PrincipalType`` is not set for anonymous requests, so the anonymous deny is inert
there, although SeaweedFS refuses anonymous requests unless a policy allows them;
DeleteBucket removes a non-empty bucket, so the emptiness check is the only guard there
(a write racing the teardown between check and delete can be lost on such endpoints).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from payscope_operator import errors
from payscope_operator.api import conditions, stores_spec
from payscope_operator.backends import base, ownership
from payscope_operator.backends.s3 import client, evidence, model, plan

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_T = TypeVar("_T")
_log = logging.getLogger(__name__)
_MISSING = frozenset({"404", "NoSuchBucket", "NotFound"})


class S3Provisioner:
    """The declared buckets of one resource, through one client from :func:`client.make_client`.

    ``deny_insecure_transport``: None adds the aws:SecureTransport deny only on https
    endpoints and AWS; True asks for it anyway (refused with a Blocker on http).
    """

    system = model.SYSTEM

    def __init__(
        self,
        desired: stores_spec.ObjectStorage,
        s3: S3Client,
        *,
        owner: ownership.Owner,
        deny_insecure_transport: bool | None = None,
    ) -> None:
        for bucket in desired.buckets:
            client.check_name(bucket.name)
        self._desired = desired
        self._owner = owner
        self._client = s3
        self._deny_insecure_transport = deny_insecure_transport
        self._endpoint = desired.endpoint or "AWS S3"
        self._taken: set[str] = set()  # CreateBucket answered BucketAlreadyExists: someone else's
        self._found: set[str] = set()  # CreateBucket answered BucketAlreadyOwnedByYou: not created by us

    async def _call(
        self, operation: str, bucket: str, fn: Callable[[], _T], absent: frozenset[str] = frozenset()
    ) -> _T | None:
        return await client.call(operation, bucket, fn, endpoint=self._endpoint, absent=absent)

    # --- observe ---

    async def observe(self) -> model.ObservedStorage:
        """Read every declared bucket. Raises DependencyUnavailable, PermissionDenied."""
        caller = await self._caller_id()
        found = await asyncio.gather(*(self._observe_bucket(bucket.name, caller) for bucket in self._desired.buckets))
        return model.ObservedStorage(tuple(found))

    async def audit(self) -> tuple[evidence.BucketFacts, ...]:
        """Observe, and reduce every declared bucket to the facts the audit checks (read-only)."""
        return tuple(evidence.facts_of(bucket) for bucket in (await self.observe()).buckets)

    async def _caller_id(self) -> str | None:
        """The credentials' owner id as ListBuckets reports it; None when ListBuckets is not allowed.

        It is compared only with itself (the created-by tag holds the value seen at
        creation): S3-compatible servers disagree with AWS on what ACL owner ids mean.
        It also proves the credentials: a wrong key raises PermissionDenied here rather
        than passing for a refused HeadBucket on someone else's bucket.
        """
        listed = await self._call(
            "ListBuckets", "*", lambda: self._client.list_buckets(MaxBuckets=1), frozenset({"AccessDenied"})
        )
        return listed.get("Owner", {}).get("ID") if listed else None

    async def _tags(self, name: str, unsupported: set[model.Feature] | None = None) -> dict[str, str]:
        """The bucket's tags ({} when it has none, or when the endpoint does not implement tagging)."""
        try:
            found = await self._call(
                f"Get{model.Feature.TAGGING}",
                name,
                lambda: self._client.get_bucket_tagging(Bucket=name),
                frozenset({"NoSuchTagSet"}),
            )
        except client.NotImplementedByEndpoint:
            if unsupported is not None:
                unsupported.add(model.Feature.TAGGING)
            return {}
        return {tag["Key"]: tag["Value"] for tag in (found["TagSet"] if found else [])}

    async def _observe_bucket(self, name: str, caller: str | None) -> model.ObservedBucket:
        s3, held = self._client, model.Ownership
        try:
            head = await self._call("HeadBucket", name, lambda: s3.head_bucket(Bucket=name), _MISSING)
        except errors.PermissionDenied:  # HEAD has no body: 403 is all S3 says about a foreign bucket
            return model.ObservedBucket(name, held.OTHER_ACCOUNT)
        if name in self._taken:
            return model.ObservedBucket(name, held.OTHER_ACCOUNT)
        if head is None:
            return model.ObservedBucket(name, held.MISSING)

        unsupported: set[model.Feature] = set()

        async def read(feature: model.Feature, call: Callable[[], _T], *absent: str) -> _T | None:
            try:
                return await self._call(f"Get{feature}", name, call, frozenset(absent))
            except client.NotImplementedByEndpoint:
                unsupported.add(feature)
                return None

        tag_set = await self._tags(name, unsupported)
        managed = tag_set.get(base.MANAGED_TAG_KEY) == base.MANAGED_TAG_VALUE
        created_by = tag_set.get(model.CREATED_BY_TAG_KEY) if managed else None
        if caller and created_by and created_by != caller:
            # Another identity's operator created it; HeadBucket alone passes on shared endpoints
            # (SeaweedFS admins see every bucket).
            return model.ObservedBucket(name, held.OTHER_ACCOUNT, managed=True, created_by=created_by)
        versioning = await read(model.Feature.VERSIONING, lambda: s3.get_bucket_versioning(Bucket=name))
        encryption = await read(
            model.Feature.ENCRYPTION,
            lambda: s3.get_bucket_encryption(Bucket=name),
            "ServerSideEncryptionConfigurationNotFoundError",
        )
        policy = await read(model.Feature.POLICY, lambda: s3.get_bucket_policy(Bucket=name), "NoSuchBucketPolicy")
        block = await read(
            model.Feature.PUBLIC_ACCESS_BLOCK,
            lambda: s3.get_public_access_block(Bucket=name),
            "NoSuchPublicAccessBlockConfiguration",
        )
        lifecycle = await read(
            model.Feature.LIFECYCLE,
            lambda: s3.get_bucket_lifecycle_configuration(Bucket=name),
            "NoSuchLifecycleConfiguration",
        )
        sse = None
        if encryption and encryption["ServerSideEncryptionConfiguration"].get("Rules"):
            sse = encryption["ServerSideEncryptionConfiguration"]["Rules"][0].get("ApplyServerSideEncryptionByDefault")
        document: dict[str, Any] | None = json.loads(policy["Policy"]) if policy else None
        statements = document.get("Statement", []) if document else []
        pab = block.get("PublicAccessBlockConfiguration") if block else None
        return model.ObservedBucket(
            name,
            held.OURS,
            managed=managed,
            created_by=created_by,
            mark=model.mark_of(tag_set),
            tags=tuple(sorted(tag_set.items())),
            versioning=versioning.get("Status") if versioning else None,
            encryption=(sse["SSEAlgorithm"], sse.get("KMSMasterKeyID")) if sse else None,
            policy=None
            if document is None
            else tuple(
                model.statement_of(raw) for raw in (statements if isinstance(statements, list) else [statements])
            ),
            policy_id=document.get("Id") if document else None,
            public_access_block=None if pab is None else tuple(bool(pab.get(key)) for key in model.BLOCK_KEYS),
            lifecycle=tuple(model.rule_of(rule) for rule in (lifecycle.get("Rules", []) if lifecycle else [])),
            unsupported=frozenset(unsupported),
        )

    # --- plan and apply ---

    def plan(self, observed: model.ObservedStorage) -> base.Plan:
        return plan.plan_s3(
            self._desired, observed, owner=self._owner, deny_insecure_transport=self._deny_insecure_transport
        )

    async def apply(self, action: base.Action) -> None:
        """Carry out one planned action.

        A 501 NotImplemented answer is not an error: the next observe records the feature
        as unsupported and the plan reports it. CreateBucket answered BucketAlreadyExists
        raises SpecUnsatisfiable(reason=BucketOwnedByAnotherAccount); from then on this
        provisioner observes that bucket as another account's and refuses actions on it.
        """
        name, s3, operation = client.check_name(action.target), self._client, type(action).__name__
        if name in self._taken:  # never configure a bucket whose name another account holds
            reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
            raise errors.SpecUnsatisfiable(f"bucket {name} is owned by another account", reason=reason)
        if name in self._found:  # created meanwhile by someone else: the next pass judges its owner
            _log.info("bucket %s appeared before this resource created it; left for the next pass to judge", name)
            return
        call: Callable[[], object]
        if isinstance(action, model.CreateBucket):
            await self._create(name, action.region)
            return
        if isinstance(action, model.SetOwner):
            await self._mark(name, action.tags)
            return
        if isinstance(action, model.SetVersioning):
            versioning: Any = {"Status": action.status}
            call = partial(s3.put_bucket_versioning, Bucket=name, VersioningConfiguration=versioning)
        elif isinstance(action, model.SetEncryption):
            sse = {"SSEAlgorithm": action.algorithm} | (
                {"KMSMasterKeyID": action.kms_key_id} if action.kms_key_id else {}
            )
            settings: Any = {"Rules": [{"ApplyServerSideEncryptionByDefault": sse}]}
            call = partial(s3.put_bucket_encryption, Bucket=name, ServerSideEncryptionConfiguration=settings)
        elif isinstance(action, model.SetPublicAccessBlock):
            blocks: Any = dict.fromkeys(model.BLOCK_KEYS, action.blocked)
            call = partial(s3.put_public_access_block, Bucket=name, PublicAccessBlockConfiguration=blocks)
        elif isinstance(action, model.SetPolicy):
            if action.document is None:
                call = partial(s3.delete_bucket_policy, Bucket=name)
            else:
                call = partial(s3.put_bucket_policy, Bucket=name, Policy=action.document)
        elif isinstance(action, model.SetLifecycle):
            rules: Any = {"Rules": [json.loads(rule) for rule in action.rules]}
            if action.rules:
                call = partial(s3.put_bucket_lifecycle_configuration, Bucket=name, LifecycleConfiguration=rules)
            else:
                call = partial(s3.delete_bucket_lifecycle, Bucket=name)
        else:
            raise TypeError(f"not an object-storage action: {action.describe()}")
        try:
            await self._call(operation, name, call)
        except client.NotImplementedByEndpoint:
            return

    async def _create(self, name: str, region: str) -> None:
        """Create and tag the bucket. One that these credentials already own was not created here: it is
        left untagged and unconfigured, and the next pass finds it Foreign.

        Tags: managed-by=payscope-operator, the owning resource's uid and namespace/name
        (teardown may delete it; another resource sees it is not its own) and
        created-by=<owner id from ListBuckets> (another identity's operator sees the same).
        """
        params: Any = client.create_bucket_params(name, region)
        try:
            created = await self._call(
                "CreateBucket",
                name,
                lambda: self._client.create_bucket(**params),
                frozenset({"BucketAlreadyOwnedByYou"}),
            )
        except errors.SpecUnsatisfiable as error:
            if error.reason == conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT:
                self._taken.add(name)  # the next observe reports it Failed, later actions refuse it
            raise
        if created is None:
            self._found.add(name)  # someone with these credentials was faster: not ours to configure
            return
        await self._mark(name, model.owner_tags(self._owner), current={})

    async def _mark(self, name: str, ours: tuple[tuple[str, str], ...], current: dict[str, str] | None = None) -> None:
        """Put ``ours`` and created-by into the bucket's tags, keeping every other tag (a full replace on S3)."""
        tag_set = dict(await self._tags(name) if current is None else current)
        tag_set.update(ours)
        caller = await self._caller_id()
        if caller and model.CREATED_BY_TAG_KEY not in tag_set:
            tag_set[model.CREATED_BY_TAG_KEY] = caller
        tags: Any = {"TagSet": [{"Key": key, "Value": value} for key, value in sorted(tag_set.items())]}
        try:
            await self._call(
                "PutBucketTagging", name, lambda: self._client.put_bucket_tagging(Bucket=name, Tagging=tags)
            )
        except client.NotImplementedByEndpoint:
            return  # left unmarked: the next pass sees it Foreign and teardown keeps it, the safe side

    # --- teardown ---

    async def teardown(self) -> base.TeardownResult:
        """Delete the declared buckets this operator created and owns, if they hold nothing.

        Every other declared bucket is kept, with the reason (the caller emits a Warning
        Event for each); a bucket that does not exist is neither removed nor kept.
        """
        removed: list[str] = []
        kept: list[str] = []
        caller = await self._caller_id()
        for bucket in self._desired.buckets:
            name = bucket.name
            seen = await self._observe_bucket(name, caller)
            if seen.ownership is model.Ownership.MISSING:
                continue
            if seen.ownership is model.Ownership.OTHER_ACCOUNT:
                kept.append(f"{name}: owned by another account")
            elif seen.mark.uid != self._owner.uid:
                kept.append(f"{name}: {ownership.why_kept(ownership.judge(self._owner, seen.mark, adopt=False))}")
            elif seen.created_by and not caller:
                kept.append(f"{name}: its creator cannot be verified (ListBuckets is not allowed)")
            elif not await self._empty(name):
                kept.append(f"{name}: not empty (objects, versions, delete markers or uploads remain)")
            elif await self._delete(name):
                removed.append(name)
            else:
                kept.append(f"{name}: not empty (the endpoint refused to delete it)")
        return base.TeardownResult(model.SYSTEM, tuple(removed), tuple(kept))

    async def _delete(self, name: str) -> bool:
        refused = frozenset({"BucketNotEmpty"})
        return (
            await self._call("DeleteBucket", name, lambda: self._client.delete_bucket(Bucket=name), refused) is not None
        )

    async def _empty(self, name: str) -> bool:
        """No object version, delete marker or multipart upload in the bucket."""
        s3 = self._client
        try:
            versions = await self._call(
                "ListObjectVersions", name, lambda: s3.list_object_versions(Bucket=name, MaxKeys=1)
            )
            if versions and (versions.get("Versions") or versions.get("DeleteMarkers")):
                return False
        except client.NotImplementedByEndpoint:
            listed = await self._call("ListObjectsV2", name, lambda: s3.list_objects_v2(Bucket=name, MaxKeys=1))
            if listed and listed.get("KeyCount", 0):
                return False
        try:
            uploads = await self._call(
                "ListMultipartUploads", name, lambda: s3.list_multipart_uploads(Bucket=name, MaxUploads=1)
            )
        except client.NotImplementedByEndpoint:
            return True
        return not (uploads and uploads.get("Uploads"))
