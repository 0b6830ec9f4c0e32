"""How the operator talks to S3: a boto3 client with timeouts, calls off the event loop, errors.

Why this module exists: boto3 is synchronous, so every call runs in a worker thread
(:func:`call`) and the operator's event loop never blocks. The threads are a bounded
pool the operator hands in with :func:`using` (for one pass, in its context), never
the pool the Kubernetes client or DNS lookups use, so calls hanging on a dead
endpoint only wait for each other (outside such a block: the loop's default pool); the
client :func:`make_client` builds has connect/read timeouts and three standard-mode
attempts. S3 error answers become the operator's errors (:func:`translate_error`)
whose messages name the operation, bucket and endpoint, never a credential; a 501
NotImplemented answer is its own exception, because it means a missing feature of the
endpoint, not a failure.

:func:`anonymous_status` lists a bucket without any credential, as the public would, for
the audit, through the caller's credential-less HTTP client (``reconcile.clients`` builds
it under the operator's egress policy and response cap).

What it must not do: decide what to change, keep state between calls, build an HTTP
client, or put a credential into a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from payscope_operator import errors
from payscope_operator.api import conditions, fields, stores_spec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "403"})
_TRANSIENT = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"})
_THREADS: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("s3_threads", default=None)


@contextlib.contextmanager
def using(threads: Executor | None) -> Iterator[None]:
    """Run this context's boto3 calls (and those of the tasks it starts) on ``threads``."""
    token = _THREADS.set(threads)
    try:
        yield
    finally:
        _THREADS.reset(token)


async def anonymous_status(http: httpx.AsyncClient, endpoint: str, buckets: Sequence[str]) -> dict[str, int]:
    """The HTTP status of an unauthenticated listing of each bucket, through ``http`` (a client without
    credentials that follows no redirect; the caller builds and closes it).

    The listing asks for one key (``list-type=2&max-keys=1``): a public bucket answers 200 with at most
    one key, whatever it holds, so the audit's cost does not grow with the bucket."""
    base = endpoint.rstrip("/")
    return {name: (await http.get(f"{base}/{name}", params=ANONYMOUS_LISTING)).status_code for name in buckets}


ANONYMOUS_LISTING = {"list-type": "2", "max-keys": "1"}
"""The anonymous probe's query: ListObjectsV2 of at most one key."""


def make_client(
    storage: stores_spec.ObjectStorage,
    access_key_id: str | None,
    secret_access_key: str | None,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 15.0,
    before_send: Callable[..., None] | None = None,
) -> S3Client:
    """A boto3 S3 client for one resource and credentials (None: the ambient AWS chain).

    Create it once per resource and credentials and reuse it: clients are thread-safe,
    sessions are not, so each client gets a session of its own. ``before_send`` is
    registered as botocore's ``before-send`` hook: it sees every request before it is
    sent and may refuse it by raising (the egress policy does).
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
    client = session.client("s3", endpoint_url=storage.endpoint, config=config)
    if before_send is not None:
        client.meta.events.register("before-send.s3", before_send)
    return client


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


class NotImplementedByEndpoint(Exception):
    """The endpoint answered 501 NotImplemented: the feature is missing, not broken."""


def check_name(name: str) -> str:
    """A declared bucket name, re-checked against the CRD's pattern before any call."""
    if not re.fullmatch(fields.BUCKET_NAME_PATTERN, name):
        raise errors.SpecInvalid(f"objectStorage.buckets: invalid bucket name {name!r}")
    return name


async def call(
    operation: str, bucket: str, fn: Callable[[], T], *, endpoint: str, absent: frozenset[str] = frozenset()
) -> T | None:
    """Run one boto3 call in a worker thread; None when S3 answers one of the ``absent`` codes.

    A 501 NotImplemented answer raises :class:`NotImplementedByEndpoint`; any other
    failure becomes the operator's error (see :func:`translate_error`).
    """
    try:
        context = contextvars.copy_context()  # as asyncio.to_thread does: log lines keep the pass's context
        return await asyncio.get_running_loop().run_in_executor(_THREADS.get(), context.run, fn)
    except ClientError as error:
        if error_code(error) in absent:
            return None
        if error_code(error) == "NotImplemented" or _http_status(error) == 501:
            raise NotImplementedByEndpoint(operation) from None
        raise translate_error(error, operation=operation, bucket=bucket, endpoint=endpoint) from None
    except (BotoConnectionError, HTTPClientError) as error:
        message = f"S3 endpoint {endpoint} unreachable during {operation} ({type(error).__name__})"
        raise errors.DependencyUnavailable(message) from None
    except NoCredentialsError:
        raise errors.PermissionDenied("no S3 credentials found: set objectStorage.credentialsSecretRef") from None


def create_bucket_params(name: str, region: str) -> dict[str, Any]:
    """CreateBucket arguments: us-east-1 takes no LocationConstraint, every other region must."""
    if region == "us-east-1":
        return {"Bucket": name}
    return {"Bucket": name, "CreateBucketConfiguration": {"LocationConstraint": region}}
