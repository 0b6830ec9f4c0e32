"""S3 buckets: observe, apply and tear down what ``objects_plan`` decides, through boto3.

Why this module exists: PayScope keeps ingested files in S3 (AWS, MinIO, SeaweedFS).
Per declared bucket the operator creates it (region-aware, tagged
``managed-by=payscope-operator`` so teardown recognises it) and reconciles versioning,
default encryption, PublicAccessBlock, its own bucket-policy statements and its own
lifecycle rules. boto3 is synchronous: every call runs in a worker thread
(``asyncio.to_thread``) so the operator's event loop never blocks, with the client's
connect/read timeouts and three standard-mode attempts (see :func:`make_client`).

What it must not do: delete data or buckets it did not create (teardown removes only
declared buckets that carry the managed tag, whose created-by tag names these credentials'
owner, and that hold no object, version, delete marker or upload), use a bucket name that fails
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
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from payscope_operator import errors
from payscope_operator.api import conditions, fields, stores_spec
from payscope_operator.backends import base
from payscope_operator.backends.s3 import plan as objects_plan  # renamed in the next commit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_T = TypeVar("_T")
_MISSING = frozenset({"404", "NoSuchBucket", "NotFound"})
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "403"})
_TRANSIENT = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"})


def make_client(
    storage: stores_spec.ObjectStorage,
    access_key_id: str | None,
    secret_access_key: str | None,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 15.0,
) -> S3Client:
    """A boto3 S3 client for one resource and credentials (None: the ambient AWS chain).

    Create it once per resource and credentials and reuse it: clients are thread-safe,
    sessions are not, so each client gets a session of its own.
    """
    config = Config(
        region_name=storage.region,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path" if storage.force_path_style else "auto"},
        # S3-compatible servers often reject the CRC checksums boto3 adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
    return session.client("s3", endpoint_url=storage.endpoint, config=config)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def translate_error(error: ClientError, *, operation: str, bucket: str, endpoint: str) -> errors.PayScopeError:
    """The operator's error for an S3 error answer; its message names no credential."""
    code, http_status = error_code(error), _http_status(error)
    where = f"S3 {operation} on bucket {bucket} at {endpoint}"
    if operation == "CreateBucket" and code == "BucketAlreadyExists":
        reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
        return errors.SpecUnsatisfiable(f"bucket {bucket} is owned by another account", reason=reason)
    if code in _DENIED:
        return errors.PermissionDenied(f"{where} was refused ({code})")
    if code in _TRANSIENT or (http_status >= 500 and http_status != 501):
        return errors.DependencyUnavailable(f"{where} failed ({code or http_status}); retrying")
    reason = conditions.Reason.PROVISIONING_FAILED
    return errors.SpecUnsatisfiable(f"{where} failed ({code or http_status})", reason=reason)


class _NotImplementedByEndpoint(Exception):
    """The endpoint answered 501 NotImplemented: the feature is missing, not broken."""


def _check_name(name: str) -> str:
    if not re.fullmatch(fields.BUCKET_NAME_PATTERN, name):
        raise errors.SpecInvalid(f"objectStorage.buckets: invalid bucket name {name!r}")
    return name


class ObjectsProvisioner:
    """The declared buckets of one resource, through one client from :func:`make_client`.

    ``deny_insecure_transport``: None adds the aws:SecureTransport deny only on https
    endpoints and AWS; True asks for it anyway (refused with a Blocker on http).
    """

    system = objects_plan.SYSTEM

    def __init__(
        self, desired: stores_spec.ObjectStorage, client: S3Client, *, deny_insecure_transport: bool | None = None
    ) -> None:
        for bucket in desired.buckets:
            _check_name(bucket.name)
        self._desired = desired
        self._client = client
        self._deny_insecure_transport = deny_insecure_transport
        self._endpoint = desired.endpoint or "AWS S3"
        self._taken: set[str] = set()  # CreateBucket answered BucketAlreadyExists: someone else's

    async def _call(
        self, operation: str, bucket: str, call: Callable[[], _T], absent: frozenset[str] = frozenset()
    ) -> _T | None:
        """Run one boto3 call in a worker thread; None when S3 answers one of the ``absent`` codes."""
        try:
            return await asyncio.to_thread(call)
        except ClientError as error:
            if error_code(error) in absent:
                return None
            if error_code(error) == "NotImplemented" or _http_status(error) == 501:
                raise _NotImplementedByEndpoint(operation) from None
            raise translate_error(error, operation=operation, bucket=bucket, endpoint=self._endpoint) from None
        except (BotoConnectionError, HTTPClientError) as error:
            message = f"S3 endpoint {self._endpoint} unreachable during {operation} ({type(error).__name__})"
            raise errors.DependencyUnavailable(message) from None
        except NoCredentialsError:
            raise errors.PermissionDenied("no S3 credentials found: set objectStorage.credentialsSecretRef") from None

    # --- observe ---

    async def observe(self) -> objects_plan.ObservedStorage:
        """Read every declared bucket. Raises DependencyUnavailable, PermissionDenied."""
        caller = await self._caller_id()
        found = await asyncio.gather(*(self._observe_bucket(bucket.name, caller) for bucket in self._desired.buckets))
        return objects_plan.ObservedStorage(tuple(found))

    async def audit(self) -> tuple[objects_plan.BucketFacts, ...]:
        """Observe, and reduce every declared bucket to the facts the audit checks (read-only)."""
        return tuple(objects_plan.facts_of(bucket) for bucket in (await self.observe()).buckets)

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

    async def _observe_bucket(self, name: str, caller: str | None) -> objects_plan.ObservedBucket:
        client, ownership = self._client, objects_plan.Ownership
        try:
            head = await self._call("HeadBucket", name, lambda: client.head_bucket(Bucket=name), _MISSING)
        except errors.PermissionDenied:  # HEAD has no body: 403 is all S3 says about a foreign bucket
            return objects_plan.ObservedBucket(name, ownership.OTHER_ACCOUNT)
        if name in self._taken:
            return objects_plan.ObservedBucket(name, ownership.OTHER_ACCOUNT)
        if head is None:
            return objects_plan.ObservedBucket(name, ownership.MISSING)

        unsupported: set[objects_plan.Feature] = set()

        async def read(feature: objects_plan.Feature, call: Callable[[], _T], *absent: str) -> _T | None:
            try:
                return await self._call(f"Get{feature}", name, call, frozenset(absent))
            except _NotImplementedByEndpoint:
                unsupported.add(feature)
                return None

        tags = await read(objects_plan.Feature.TAGGING, lambda: client.get_bucket_tagging(Bucket=name), "NoSuchTagSet")
        tag_set = {tag["Key"]: tag["Value"] for tag in (tags["TagSet"] if tags else [])}
        managed = tag_set.get(base.MANAGED_TAG_KEY) == base.MANAGED_TAG_VALUE
        created_by = tag_set.get(objects_plan.CREATED_BY_TAG_KEY) if managed else None
        if caller and created_by and created_by != caller:
            # Another identity's operator created it; HeadBucket alone passes on shared endpoints
            # (SeaweedFS admins see every bucket).
            return objects_plan.ObservedBucket(name, ownership.OTHER_ACCOUNT, managed=True, created_by=created_by)
        versioning = await read(objects_plan.Feature.VERSIONING, lambda: client.get_bucket_versioning(Bucket=name))
        encryption = await read(
            objects_plan.Feature.ENCRYPTION,
            lambda: client.get_bucket_encryption(Bucket=name),
            "ServerSideEncryptionConfigurationNotFoundError",
        )
        policy = await read(
            objects_plan.Feature.POLICY, lambda: client.get_bucket_policy(Bucket=name), "NoSuchBucketPolicy"
        )
        block = await read(
            objects_plan.Feature.PUBLIC_ACCESS_BLOCK,
            lambda: client.get_public_access_block(Bucket=name),
            "NoSuchPublicAccessBlockConfiguration",
        )
        lifecycle = await read(
            objects_plan.Feature.LIFECYCLE,
            lambda: client.get_bucket_lifecycle_configuration(Bucket=name),
            "NoSuchLifecycleConfiguration",
        )
        sse = None
        if encryption and encryption["ServerSideEncryptionConfiguration"].get("Rules"):
            sse = encryption["ServerSideEncryptionConfiguration"]["Rules"][0].get("ApplyServerSideEncryptionByDefault")
        document: dict[str, Any] | None = json.loads(policy["Policy"]) if policy else None
        statements = document.get("Statement", []) if document else []
        pab = block.get("PublicAccessBlockConfiguration") if block else None
        return objects_plan.ObservedBucket(
            name,
            ownership.OURS,
            managed=managed,
            created_by=created_by,
            versioning=versioning.get("Status") if versioning else None,
            encryption=(sse["SSEAlgorithm"], sse.get("KMSMasterKeyID")) if sse else None,
            policy=None
            if document is None
            else tuple(
                objects_plan.statement_of(raw) for raw in (statements if isinstance(statements, list) else [statements])
            ),
            policy_id=document.get("Id") if document else None,
            public_access_block=None if pab is None else tuple(bool(pab.get(key)) for key in objects_plan.BLOCK_KEYS),
            lifecycle=tuple(objects_plan.rule_of(rule) for rule in (lifecycle.get("Rules", []) if lifecycle else [])),
            unsupported=frozenset(unsupported),
        )

    # --- plan and apply ---

    def plan(self, observed: objects_plan.ObservedStorage) -> base.Plan:
        return objects_plan.plan_objects(self._desired, observed, deny_insecure_transport=self._deny_insecure_transport)

    async def apply(self, action: base.Action) -> None:
        """Carry out one planned action.

        A 501 NotImplemented answer is not an error: the next observe records the feature
        as unsupported and the plan reports it. CreateBucket answered BucketAlreadyExists
        raises SpecUnsatisfiable(reason=BucketOwnedByAnotherAccount); from then on this
        provisioner observes that bucket as another account's and refuses actions on it.
        """
        name, client, operation = _check_name(action.target), self._client, type(action).__name__
        if name in self._taken:  # never configure a bucket whose name another account holds
            reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
            raise errors.SpecUnsatisfiable(f"bucket {name} is owned by another account", reason=reason)
        call: Callable[[], object]
        if isinstance(action, objects_plan.CreateBucket):
            await self._create(name, action.region)
            return
        if isinstance(action, objects_plan.SetVersioning):
            versioning: Any = {"Status": action.status}
            call = partial(client.put_bucket_versioning, Bucket=name, VersioningConfiguration=versioning)
        elif isinstance(action, objects_plan.SetEncryption):
            sse = {"SSEAlgorithm": action.algorithm} | (
                {"KMSMasterKeyID": action.kms_key_id} if action.kms_key_id else {}
            )
            settings: Any = {"Rules": [{"ApplyServerSideEncryptionByDefault": sse}]}
            call = partial(client.put_bucket_encryption, Bucket=name, ServerSideEncryptionConfiguration=settings)
        elif isinstance(action, objects_plan.SetPublicAccessBlock):
            blocks: Any = dict.fromkeys(objects_plan.BLOCK_KEYS, action.blocked)
            call = partial(client.put_public_access_block, Bucket=name, PublicAccessBlockConfiguration=blocks)
        elif isinstance(action, objects_plan.SetPolicy):
            if action.document is None:
                call = partial(client.delete_bucket_policy, Bucket=name)
            else:
                call = partial(client.put_bucket_policy, Bucket=name, Policy=action.document)
        elif isinstance(action, objects_plan.SetLifecycle):
            rules: Any = {"Rules": [json.loads(rule) for rule in action.rules]}
            if action.rules:
                call = partial(client.put_bucket_lifecycle_configuration, Bucket=name, LifecycleConfiguration=rules)
            else:
                call = partial(client.delete_bucket_lifecycle, Bucket=name)
        else:
            raise TypeError(f"not an object-storage action: {action.describe()}")
        try:
            await self._call(operation, name, call)
        except _NotImplementedByEndpoint:
            return

    async def _create(self, name: str, region: str) -> None:
        """Create and tag the bucket. A bucket we already own is adopted untagged: we did not create it.

        Tags: managed-by=payscope-operator (teardown may delete it) and created-by=<owner id
        from ListBuckets> (another identity's operator sees the bucket is not its own).
        """
        params: Any = objects_plan.create_bucket_params(name, region)
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
            return
        tag_set = [{"Key": base.MANAGED_TAG_KEY, "Value": base.MANAGED_TAG_VALUE}]
        caller = await self._caller_id()
        if caller:
            tag_set.append({"Key": objects_plan.CREATED_BY_TAG_KEY, "Value": caller})
        tags: Any = {"TagSet": tag_set}
        try:
            await self._call(
                "PutBucketTagging", name, lambda: self._client.put_bucket_tagging(Bucket=name, Tagging=tags)
            )
        except _NotImplementedByEndpoint:
            return  # left unmarked: teardown will keep it, which is the safe side

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
            if seen.ownership is objects_plan.Ownership.MISSING:
                continue
            if seen.ownership is objects_plan.Ownership.OTHER_ACCOUNT:
                kept.append(f"{name}: owned by another account")
            elif not seen.managed:
                kept.append(f"{name}: not created by the operator (no {base.MANAGED_TAG_KEY} tag)")
            elif seen.created_by and not caller:
                kept.append(f"{name}: its creator cannot be verified (ListBuckets is not allowed)")
            elif not await self._empty(name):
                kept.append(f"{name}: not empty (objects, versions, delete markers or uploads remain)")
            elif await self._delete(name):
                removed.append(name)
            else:
                kept.append(f"{name}: not empty (the endpoint refused to delete it)")
        return base.TeardownResult(objects_plan.SYSTEM, tuple(removed), tuple(kept))

    async def _delete(self, name: str) -> bool:
        refused = frozenset({"BucketNotEmpty"})
        return (
            await self._call("DeleteBucket", name, lambda: self._client.delete_bucket(Bucket=name), refused) is not None
        )

    async def _empty(self, name: str) -> bool:
        """No object version, delete marker or multipart upload in the bucket."""
        client = self._client
        try:
            versions = await self._call(
                "ListObjectVersions", name, lambda: client.list_object_versions(Bucket=name, MaxKeys=1)
            )
            if versions and (versions.get("Versions") or versions.get("DeleteMarkers")):
                return False
        except _NotImplementedByEndpoint:
            listed = await self._call("ListObjectsV2", name, lambda: client.list_objects_v2(Bucket=name, MaxKeys=1))
            if listed and listed.get("KeyCount", 0):
                return False
        try:
            uploads = await self._call(
                "ListMultipartUploads", name, lambda: client.list_multipart_uploads(Bucket=name, MaxUploads=1)
            )
        except _NotImplementedByEndpoint:
            return True
        return not (uploads and uploads.get("Uploads"))
