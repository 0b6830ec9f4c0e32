"""The S3 provisioner against a real SeaweedFS: create, idempotence, drift, ownership, teardown.

Requests are counted client-side, with botocore's ``before-send`` event: every HTTP
request the client actually puts on the wire passes through it (retries included), so
"zero PUT/POST/DELETE in a pass" is what SeaweedFS received. SeaweedFS has no request
log to count server-side. Every property the provisioner sets is read back with an
independent boto3 client, and anonymous access is probed with plain httpx.

BucketOwnedByAnotherAccount needs two identities: the shared test environment has one,
so that test starts its own ``weed mini`` with two admin identities from an ``-s3.config``
file; SeaweedFS records the creator of a bucket and answers the other identity's
CreateBucket with a real BucketAlreadyExists (the error mapping is also table-tested
in tests/unit/test_client_s3.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from payscope_operator import errors
from payscope_operator.api import conditions, status, stores_spec
from payscope_operator.backends import base, ownership, s3
from tests.testenv import process
from tests.testenv import s3 as testenv_s3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FULL: dict[str, Any] = {
    "versioning": True,
    "encryption": "AES256",
    "blockPublicAccess": True,
    "lifecycle": {"noncurrentVersionExpirationDays": 30, "abortIncompleteMultipartUploadDays": 7},
}
READS = frozenset({"GET", "HEAD"})
OWNER = ownership.Owner("3c1d2e4f-0000-4000-8000-00000000aaaa", "payscope", "prod")


@dataclass
class Requests:
    """Every request a client sends, as (operation, method), from botocore's before-send event."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def __call__(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        self.sent.append((operation, request.method))
        body = request.body
        self.bodies[operation] = body if isinstance(body, bytes) else str(body or "").encode()

    @property
    def changes(self) -> list[str]:
        return [operation for operation, method in self.sent if method not in READS]

    def clear(self) -> None:
        self.sent.clear()


@dataclass(frozen=True)
class S3:
    endpoint: str
    access_key: str
    secret_key: str

    def storage(self, *buckets: dict[str, Any], **settings: Any) -> stores_spec.ObjectStorage:
        return stores_spec.ObjectStorage.model_validate(
            {"endpoint": self.endpoint, "forcePathStyle": True, "buckets": list(buckets)} | settings
        )

    def raw_client(self) -> S3Client:
        """An independent client, not the provisioner's, to read back and to change things by hand."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2}),
        )

    def provisioner(
        self, storage: stores_spec.ObjectStorage, owner: ownership.Owner = OWNER
    ) -> tuple[s3.provisioner.S3Provisioner, Requests]:
        client = s3.client.make_client(storage, self.access_key, self.secret_key)
        requests = Requests()
        client.meta.events.register("before-send.s3.*", requests)
        return s3.provisioner.S3Provisioner(storage, client, owner=owner), requests


@pytest.fixture
def s3_server(testenv: dict[str, str]) -> S3:
    return S3(testenv["PAYSCOPE_S3_ENDPOINT"], testenv["PAYSCOPE_S3_ACCESS_KEY"], testenv["PAYSCOPE_S3_SECRET_KEY"])


@pytest.fixture
def cleanup(s3_server: S3) -> Iterator[list[str]]:
    """Bucket names to remove after the test (SeaweedFS deletes a bucket with its objects)."""
    names: list[str] = []
    yield names
    raw = s3_server.raw_client()
    for name in names:
        with contextlib.suppress(ClientError):
            raw.delete_bucket(Bucket=name)


async def reconcile(provisioner: s3.provisioner.S3Provisioner) -> base.Plan:
    """One pass as the reconcile loop runs it: observe, plan, apply every action."""
    plan = provisioner.plan(await provisioner.observe())
    for action in plan.actions:
        await provisioner.apply(action)
    return plan


async def anonymous_get(url: str) -> int:
    """The status of an unsigned GET, as any anonymous client on the network would send it."""
    async with httpx.AsyncClient(timeout=10) as client:
        return (await client.get(url)).status_code


def policy_sids(raw: S3Client, bucket: str) -> list[str]:
    return [
        statement.get("Sid", "")
        for statement in json.loads(raw.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    ]


def lifecycle_ids(raw: S3Client, bucket: str) -> list[str]:
    return [rule["ID"] for rule in raw.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]]


async def test_create_from_nothing_sets_every_property(s3_server: S3, bucket_name: str, cleanup: list[str]) -> None:
    cleanup.append(bucket_name)
    provisioner, requests = s3_server.provisioner(s3_server.storage({"name": bucket_name, **FULL}))

    first = await reconcile(provisioner)

    assert [type(action).__name__ for action in first.actions] == [
        "CreateBucket", "SetVersioning", "SetEncryption", "SetPublicAccessBlock", "SetPolicy", "SetLifecycle",
    ]  # fmt: skip
    assert "CreateBucket" in requests.changes
    assert "PutBucketTagging" in requests.changes
    raw = s3_server.raw_client()
    assert raw.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"
    sse = raw.get_bucket_encryption(Bucket=bucket_name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert policy_sids(raw, bucket_name) == [s3.model.DENY_ANONYMOUS_SID]  # http: no SecureTransport deny
    assert sorted(lifecycle_ids(raw, bucket_name)) == [
        "payscope-abort-incomplete-multipart-upload",
        "payscope-noncurrent-version-expiration",
    ]
    tags = {tag["Key"]: tag["Value"] for tag in raw.get_bucket_tagging(Bucket=bucket_name)["TagSet"]}
    assert tags["managed-by"] == "payscope-operator"
    assert (tags[ownership.OWNER_UID_TAG], tags[ownership.OWNER_TAG]) == (OWNER.uid, OWNER.resource)

    raw.put_object(Bucket=bucket_name, Key="statement.csv", Body=b"bank_a,42")
    # SeaweedFS refuses anonymous requests by default as well: this proves the bucket is
    # closed and the owner not locked out, not that our statement does the refusing (see
    # test_a_foreign_public_statement_is_kept_and_the_audit_sees_it).
    assert await anonymous_get(f"{s3_server.endpoint}/{bucket_name}/statement.csv") == 403
    assert await anonymous_get(f"{s3_server.endpoint}/{bucket_name}") == 403  # anonymous list
    assert raw.get_object(Bucket=bucket_name, Key="statement.csv")["Body"].read() == b"bank_a,42"  # owner still in

    second = provisioner.plan(await provisioner.observe())
    assert second.actions == ()
    assert second.converged
    bucket_state = next(o for o in second.objects if o.kind == "Bucket")
    assert bucket_state.state is status.ProvisionState.READY
    (facts,) = await provisioner.audit()
    assert (facts.exists, facts.managed, facts.versioning, facts.encryption) == (True, True, "Enabled", "AES256")
    assert facts.denies_anonymous
    assert not facts.allows_anonymous
    assert facts.noncurrent_version_expiration
    assert facts.abort_incomplete_multipart_upload


async def test_public_access_block_not_implemented_is_reported_not_failed(
    s3_server: S3, bucket_name: str, cleanup: list[str]
) -> None:
    cleanup.append(bucket_name)
    provisioner, requests = s3_server.provisioner(s3_server.storage({"name": bucket_name, "blockPublicAccess": True}))
    await reconcile(provisioner)  # SeaweedFS answers PutPublicAccessBlock with 501: no crash
    assert "PutPublicAccessBlock" in requests.changes

    plan = provisioner.plan(await provisioner.observe())

    assert plan.actions == ()
    assert plan.blockers == ()
    note = next(o for o in plan.objects if o.kind == s3.model.Feature.PUBLIC_ACCESS_BLOCK)
    assert (note.state, note.reason) == (status.ProvisionState.READY, s3.model.NOT_IMPLEMENTED_BY_ENDPOINT)
    (facts,) = await provisioner.audit()
    assert facts.public_access_block is s3.evidence.BlockState.NOT_IMPLEMENTED


@pytest.mark.parametrize(
    "spec",
    [
        FULL,
        {"versioning": False, "encryption": "aws:kms", "kmsKeyId": "arn:aws:kms:us-east-1:111122223333:key/payscope",
         "blockPublicAccess": False, "lifecycle": {"expirationDays": 400, "abortIncompleteMultipartUploadDays": 1}},
    ],
    ids=["full", "kms-suspended-public"],
)  # fmt: skip
async def test_an_unchanged_second_pass_sends_no_change(
    s3_server: S3, bucket_name: str, cleanup: list[str], spec: dict[str, Any]
) -> None:
    cleanup.append(bucket_name)
    provisioner, requests = s3_server.provisioner(s3_server.storage({"name": bucket_name, **spec}))
    await reconcile(provisioner)
    assert {"CreateBucket", "PutBucketEncryption", "PutBucketLifecycleConfiguration"} <= set(requests.changes)

    requests.clear()
    plan = await reconcile(provisioner)

    assert plan.actions == ()
    assert requests.changes == []
    assert len(requests.sent) >= 8  # it did read: HeadBucket, ACL, tags, versioning, ... (the counter works)


async def test_out_of_band_drift_is_found_and_corrected(s3_server: S3, bucket_name: str, cleanup: list[str]) -> None:
    cleanup.append(bucket_name)
    provisioner, requests = s3_server.provisioner(s3_server.storage({"name": bucket_name, **FULL}))
    await reconcile(provisioner)
    raw = s3_server.raw_client()
    foreign_statement = {
        "Sid": "AnalyticsRead", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::123456789012:user/analytics"]},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket_name}/*",
    }  # fmt: skip
    foreign_rule: Any = {"ID": "tmp-cleanup", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
                         "Expiration": {"Days": 1}}  # fmt: skip
    # By hand: versioning suspended, encryption deleted, our statement and our rules replaced by foreign ones.
    raw.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Suspended"})
    raw.delete_bucket_encryption(Bucket=bucket_name)
    raw.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps({"Version": "2012-10-17",
                                                                 "Statement": [foreign_statement]}))  # fmt: skip
    raw.put_bucket_lifecycle_configuration(Bucket=bucket_name, LifecycleConfiguration={"Rules": [foreign_rule]})

    requests.clear()
    plan = await reconcile(provisioner)

    assert sorted(type(action).__name__ for action in plan.actions) == [
        "SetEncryption", "SetLifecycle", "SetPolicy", "SetVersioning",
    ]  # fmt: skip
    assert all(action.drift for action in plan.actions)
    assert next(o for o in plan.objects if o.kind == "Bucket").state is status.ProvisionState.DRIFTED
    assert sorted(requests.changes) == [
        "PutBucketEncryption", "PutBucketLifecycleConfiguration", "PutBucketPolicy", "PutBucketVersioning",
    ]  # fmt: skip
    assert raw.get_bucket_versioning(Bucket=bucket_name)["Status"] == "Enabled"
    assert "ServerSideEncryptionConfiguration" in raw.get_bucket_encryption(Bucket=bucket_name)
    assert policy_sids(raw, bucket_name) == ["AnalyticsRead", s3.model.DENY_ANONYMOUS_SID]  # foreign kept
    assert lifecycle_ids(raw, bucket_name)[0] == "tmp-cleanup"  # foreign rule kept, ours back
    assert sorted(lifecycle_ids(raw, bucket_name)[1:]) == [
        "payscope-abort-incomplete-multipart-upload",
        "payscope-noncurrent-version-expiration",
    ]

    # Only the policy statement of ours removed by hand: one drift action, the foreign statement stays.
    raw.put_bucket_policy(Bucket=bucket_name, Policy=json.dumps({"Version": "2012-10-17",
                                                                 "Statement": [foreign_statement]}))  # fmt: skip
    requests.clear()
    again = await reconcile(provisioner)
    assert [(type(a).__name__, a.drift) for a in again.actions] == [("SetPolicy", True)]
    assert requests.changes == ["PutBucketPolicy"]

    requests.clear()
    assert (await reconcile(provisioner)).actions == ()
    assert requests.changes == []


async def test_a_foreign_public_statement_is_kept_and_the_audit_sees_it(
    s3_server: S3, bucket_name: str, cleanup: list[str]
) -> None:
    cleanup.append(bucket_name)
    provisioner, requests = s3_server.provisioner(s3_server.storage({"name": bucket_name, "blockPublicAccess": True}))
    await reconcile(provisioner)
    raw = s3_server.raw_client()
    raw.put_object(Bucket=bucket_name, Key="public.txt", Body=b"hello")
    ours = json.loads(raw.get_bucket_policy(Bucket=bucket_name)["Policy"])["Statement"]
    public = {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
              "Resource": f"arn:aws:s3:::{bucket_name}/*"}  # fmt: skip
    raw.put_bucket_policy(
        Bucket=bucket_name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [public, *ours]})
    )

    requests.clear()
    plan = await reconcile(provisioner)
    (facts,) = await provisioner.audit()

    assert plan.actions == ()  # a foreign statement is not ours to remove
    assert requests.changes == []
    assert (facts.denies_anonymous, facts.allows_anonymous) == (True, True)
    # Why the audit needs allows_anonymous: SeaweedFS sets no aws:PrincipalType for anonymous
    # requests, so our Deny does not match them there and the foreign Allow wins.
    assert await anonymous_get(f"{s3_server.endpoint}/{bucket_name}/public.txt") == 200


async def test_creation_is_region_aware(s3_server: S3, bucket_name: str, cleanup: list[str]) -> None:
    cleanup.append(bucket_name)
    provisioner, requests = s3_server.provisioner(s3_server.storage({"name": bucket_name}, region="eu-west-1"))
    await reconcile(provisioner)
    assert b"<LocationConstraint>eu-west-1</LocationConstraint>" in requests.bodies["CreateBucket"]
    s3_server.raw_client().head_bucket(Bucket=bucket_name)


async def test_a_bucket_created_meanwhile_with_our_credentials_is_left_alone(
    s3_server: S3, bucket_name: str, cleanup: list[str]
) -> None:
    cleanup.append(bucket_name)
    provisioner, _ = s3_server.provisioner(s3_server.storage({"name": bucket_name, "versioning": True}))
    plan = provisioner.plan(await provisioner.observe())  # missing now ...
    s3_server.raw_client().create_bucket(Bucket=bucket_name)  # ... created by someone else of ours meanwhile
    for action in plan.actions:
        await provisioner.apply(action)  # BucketAlreadyOwnedByYou: not ours, so nothing more is sent
    assert "Status" not in s3_server.raw_client().get_bucket_versioning(Bucket=bucket_name)
    with pytest.raises(ClientError, match="NoSuchTagSet"):
        s3_server.raw_client().get_bucket_tagging(Bucket=bucket_name)
    again = provisioner.plan(await provisioner.observe())
    assert [(o.state, o.matches) for o in again.objects] == [(status.ProvisionState.FOREIGN, False)]
    assert again.actions == ()
    assert (await provisioner.teardown()).kept == (f"{bucket_name}: not created by this resource",)


class Forwarder:
    """A TCP port that forwards to the S3 server once started: the endpoint coming back."""

    def __init__(self, port: int, target: str) -> None:
        self.port = port
        host, _, target_port = target.removeprefix("http://").partition(":")
        self._target = (host, int(target_port))
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, process.HOST, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_an_unreachable_endpoint_is_transient_and_a_clean_pass_follows(
    s3_server: S3, bucket_name: str, cleanup: list[str]
) -> None:
    cleanup.append(bucket_name)
    port = process.free_port()  # nothing listens here yet
    closed = S3(f"http://{process.HOST}:{port}", s3_server.access_key, s3_server.secret_key)
    provisioner, _ = closed.provisioner(closed.storage({"name": bucket_name, **FULL}))

    started = time.monotonic()
    with pytest.raises(errors.DependencyUnavailable) as caught:
        await provisioner.observe()
    assert time.monotonic() - started < 10
    assert caught.value.reason == conditions.Reason.DEPENDENCY_UNAVAILABLE
    assert str(port) in caught.value.message
    assert s3_server.secret_key not in caught.value.message
    assert s3_server.access_key not in caught.value.message

    forwarder = Forwarder(port, s3_server.endpoint)
    await forwarder.start()
    try:
        plan = provisioner.plan(await provisioner.observe())
        await provisioner.apply(plan.actions[0])  # the bucket is created ...
        await forwarder.stop()  # ... and the endpoint goes away mid-pass
        with pytest.raises(errors.DependencyUnavailable):
            await provisioner.apply(plan.actions[1])
        await forwarder.start()
        resumed = await reconcile(provisioner)  # back: the next pass finishes the job
        assert "CreateBucket" not in [type(action).__name__ for action in resumed.actions]
        assert resumed.actions
        assert (await reconcile(provisioner)).actions == ()
    finally:
        await forwarder.stop()


async def test_teardown_deletes_only_empty_buckets_the_operator_created(
    s3_server: S3, bucket_name: str, cleanup: list[str]
) -> None:
    empty, holding, versions_only, foreign, never = (f"{bucket_name}-{n}" for n in ("e", "h", "v", "f", "n"))
    cleanup.extend([empty, holding, versions_only, foreign])
    raw = s3_server.raw_client()
    raw.create_bucket(Bucket=foreign)  # exists, declared, but not created by the operator
    declared = [{"name": name, "versioning": True} for name in (empty, holding, versions_only, foreign, never)]
    provisioner, _ = s3_server.provisioner(s3_server.storage(*declared[:4]))
    await reconcile(provisioner)
    raw.put_object(Bucket=holding, Key="ledger.csv", Body=b"data")
    raw.put_object(Bucket=versions_only, Key="old.csv", Body=b"data")
    raw.delete_object(Bucket=versions_only, Key="old.csv")  # a delete marker hides a version that is still data

    provisioner, requests = s3_server.provisioner(s3_server.storage(*declared))
    result = await provisioner.teardown()

    assert result.removed == (empty,)
    assert result.kept == (
        f"{holding}: not empty (objects, versions, delete markers or uploads remain)",
        f"{versions_only}: not empty (objects, versions, delete markers or uploads remain)",
        f"{foreign}: not created by this resource",
    )
    assert requests.changes == ["DeleteBucket"]
    with pytest.raises(ClientError):
        raw.head_bucket(Bucket=empty)
    assert raw.get_object(Bucket=holding, Key="ledger.csv")["Body"].read() == b"data"
    assert len(raw.list_object_versions(Bucket=versions_only)["Versions"]) == 1
    raw.head_bucket(Bucket=foreign)


# --- Another account: a SeaweedFS of its own, with two identities ------------------------


@dataclass(frozen=True)
class TwoAccounts:
    alice: S3
    bob: S3


@pytest.fixture(scope="module")
def two_accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoAccounts]:
    workdir = tmp_path_factory.mktemp("seaweedfs-two-accounts")
    identities = {
        name: {"name": name, "credentials": [{"accessKey": f"{name}key", "secretKey": f"{name}-secret-0123456789"}],
               "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
        for name in ("alice", "bob")
    }  # fmt: skip
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": list(identities.values())}))
    ports = {flag: process.free_port() for flag in _PORT_FLAGS}
    argv = [
        str(testenv_s3.obtain()), "mini", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-admin.ui=false", "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-metricsIp=127.0.0.1", f"-s3.config={config}", *(f"-{flag}={port}" for flag, port in ports.items()),
    ]  # fmt: skip
    (workdir / "data").mkdir()
    log = workdir / "weed.log"
    pid = process.spawn(argv, log=log, cwd=workdir)
    endpoint = f"http://{process.HOST}:{ports['s3.port']}"
    accounts = TwoAccounts(*(S3(endpoint, f"{name}key", f"{name}-secret-0123456789") for name in ("alice", "bob")))
    try:
        process.wait_until(lambda: bool(accounts.alice.raw_client().list_buckets()), what="seaweedfs (two accounts)",
                           timeout=90, pid=pid, log=log)  # fmt: skip
        yield accounts
    finally:
        process.stop(pid)


_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "filer.port", "filer.port.grpc", "volume.port",
    "volume.port.grpc", "admin.port", "admin.port.grpc", "debug.port", "metricsPort",
)  # fmt: skip


async def test_a_bucket_owned_by_another_account_is_failed_and_never_touched(
    two_accounts: TwoAccounts, bucket_name: str
) -> None:
    alice_provisioner, _ = two_accounts.alice.provisioner(two_accounts.alice.storage({"name": bucket_name, **FULL}))
    await reconcile(alice_provisioner)  # alice's operator creates and tags it
    storage = two_accounts.bob.storage({"name": bucket_name, **FULL})
    bob, requests = two_accounts.bob.provisioner(storage)

    plan = bob.plan(await bob.observe())

    reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
    assert plan.actions == ()
    assert [(o.name, o.state, o.reason) for o in plan.objects] == [(bucket_name, status.ProvisionState.FAILED, reason)]
    assert [(b.reason, b.permanent) for b in plan.blockers] == [(reason, True)]
    (facts,) = await bob.audit()
    assert facts.owned_by_another_account

    # Had the plan still tried to create it, SeaweedFS's BucketAlreadyExists says the same.
    create = s3.model.CreateBucket(
        system=s3.model.SYSTEM, verb=base.Verb.CREATE, kind="Bucket", target=bucket_name, region="us-east-1"
    )
    with pytest.raises(errors.SpecUnsatisfiable) as caught:
        await bob.apply(create)
    assert caught.value.reason == reason

    teardown = await bob.teardown()  # tagged managed-by, but not bob's: kept
    assert teardown == base.TeardownResult(s3.model.SYSTEM, (), (f"{bucket_name}: owned by another account",))
    assert requests.changes == ["CreateBucket"]  # the refused create above, nothing else
    two_accounts.alice.raw_client().head_bucket(Bucket=bucket_name)


async def test_a_name_taken_between_observe_and_create_stops_that_bucket(
    two_accounts: TwoAccounts, bucket_name: str
) -> None:
    bob, requests = two_accounts.bob.provisioner(two_accounts.bob.storage({"name": bucket_name, **FULL}))
    plan = bob.plan(await bob.observe())  # missing: create and configure
    two_accounts.alice.raw_client().create_bucket(Bucket=bucket_name)  # alice is faster, and tags nothing

    reason = conditions.Reason.BUCKET_OWNED_BY_ANOTHER_ACCOUNT
    for action in plan.actions:  # the reconcile loop may go on after a failed action: each one refuses
        with pytest.raises(errors.SpecUnsatisfiable) as caught:
            await bob.apply(action)
        assert caught.value.reason == reason
    assert requests.changes == ["CreateBucket"]  # alice's bucket got no PUT from bob

    again = bob.plan(await bob.observe())
    assert again.actions == ()
    assert [(o.state, o.reason) for o in again.objects] == [(status.ProvisionState.FAILED, reason)]
    assert [(b.reason, b.permanent) for b in again.blockers] == [(reason, True)]
    assert (await bob.teardown()).kept == (f"{bucket_name}: owned by another account",)
    two_accounts.alice.raw_client().head_bucket(Bucket=bucket_name)
