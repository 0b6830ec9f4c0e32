"""A resource reaches only what its namespace owns: credentials, egress and response size, on the real servers.

Each test runs whole reconcile passes in this process (``local_pass``) against the test
environment's servers and its egress policy (``PAYSCOPE_ALLOWED_EGRESS=127.0.0.1/32``):

- an S3 section without credentials never acts with the operator's own identity (the
  test gives the process working AWS credentials in its environment: no bucket appears
  unless the operator was started with --allow-ambient-credentials);
- a Postgres DSN without a password never borrows PGPASSWORD from the operator;
- endpoints the policy denies (127.0.0.2, which the allowlist does not open, and
  169.254.169.254) get no connection at all, counted by a real listener and by Python's
  ``socket.connect`` audit events;
- an HTTP server streaming an endless body is read up to the cap, and the pass ends
  within its timeout with ResponseTooLarge.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import tracemalloc
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from payscope_operator.api import status
from tests.integration import local_pass

DENIED_HOST = "127.0.0.2"  # loopback, but not opened by the test environment's allowlist (127.0.0.1/32)
METADATA = "169.254.169.254"
Unknown = status.CheckStatus.UNKNOWN
_connects: list[tuple[str, ...]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _connects is not None and event == "socket.connect" and isinstance(args[1], tuple):
        _connects.append(tuple(str(part) for part in args[1]))


sys.addaudithook(_audit)


@contextlib.contextmanager
def recorded_connects() -> Iterator[list[tuple[str, ...]]]:
    """Every address a Python socket of this process connects to while the block runs."""
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


class Listener:
    """A TCP port that counts the connections it accepts (and answers nothing)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class EndlessBody:
    """An HTTP server on 127.0.0.1 whose every answer is a 200 with a body that never ends."""

    def __init__(self) -> None:
        self.port = 0
        self.sent = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
            chunk = b'{"padding": "' + b"x" * 65536
            while True:
                writer.write(chunk)
                await writer.drain()
                self.sent += len(chunk)
        writer.close()

    async def __aenter__(self) -> EndlessBody:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with Listener(DENIED_HOST) as running:
        yield running


# ---- credentials ---------------------------------------------------------------------------------


async def test_s3_without_credentials_never_acts_as_the_operator(
    testenv: dict[str, str], bucket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's own identity: credentials any boto3 client of this process would find by itself.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", testenv["PAYSCOPE_S3_ACCESS_KEY"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", testenv["PAYSCOPE_S3_SECRET_KEY"])
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    raw = boto3.client("s3", endpoint_url=testenv["PAYSCOPE_S3_ENDPOINT"], region_name="us-east-1")
    spec = {
        "objectStorage": {
            "endpoint": testenv["PAYSCOPE_S3_ENDPOINT"],
            "forcePathStyle": True,
            "buckets": [{"name": bucket_name, "versioning": True}],
        }
    }
    try:
        refused = await local_pass.run_passes(spec, {}, passes=2)

        stalled = refused.condition("Stalled")
        assert (stalled.status, stalled.reason) == (status.ConditionStatus.TRUE, "CredentialsRequired")
        assert "spec.objectStorage.credentialsSecretRef" in stalled.message
        assert "--allow-ambient-credentials" in stalled.message
        assert {c.id for c in refused.checks_with("CredentialsRequired")} >= {"A.dependencies.s3"}
        assert all(c.status is Unknown for c in refused.checks_with("CredentialsRequired"))
        with pytest.raises(ClientError, match=r"404|Not Found"):
            raw.head_bucket(Bucket=bucket_name)  # no bucket appeared on the S3 server

        # The same resource, with the operator's identity lent on purpose: now it does act with it.
        lent = await local_pass.run_passes(spec, {}, ambient_credentials=True)
        assert lent.condition("Stalled").status is status.ConditionStatus.FALSE
        raw.head_bucket(Bucket=bucket_name)
    finally:
        with contextlib.suppress(ClientError):
            raw.delete_bucket(Bucket=bucket_name)


async def test_a_postgres_dsn_without_password_never_borrows_the_operators(
    testenv: dict[str, str], pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = urllib.parse.urlsplit(pg_dsn)
    assert parts.password
    monkeypatch.setenv("PGPASSWORD", parts.password)  # what libpq would read from the operator's environment
    no_password = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{parts.port}"))
    spec = {"postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}}}

    outcome = await local_pass.run_passes(spec, {"pg": {"dsn": no_password}})

    reachable = next(c for c in outcome.status.checks if c.id == "A.dependencies.postgres")
    assert reachable.status is status.CheckStatus.FAIL
    assert "asks for a password and the connection string gives none" in reachable.message
    with_password = await local_pass.run_passes(spec, {"pg": {"dsn": pg_dsn}})
    assert next(c for c in with_password.status.checks if c.id == "A.dependencies.postgres").status is (
        status.CheckStatus.PASS
    )


# ---- egress --------------------------------------------------------------------------------------


def _everything_at(host: str, port: int) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """A spec whose every endpoint (and every DSN and URL in its Secrets) points at ``host:port``."""
    where = f"{host}:{port}"
    spec = {
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}},
        "neo4j": {"connection": {"uri": f"bolt://{where}", "secretRef": {"name": "neo4j"}}},
        "pinecone": {
            "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
            "controllerUrl": f"http://{where}",
            "indexes": [{"name": "rag", "dimension": 8, "serverless": {"cloud": "aws", "region": "us-east-1"}}],
        },
        "objectStorage": {
            "endpoint": f"http://{where}",
            "forcePathStyle": True,
            "credentialsSecretRef": {"name": "s3"},
            "buckets": [{"name": "payscope-reach"}],
        },
        "redis": {"connection": {"secretRef": {"name": "redis", "key": "url"}}},
        "api": {"url": f"http://{where}"},
    }
    secrets = {
        "pg": {"dsn": f"postgresql://payscope:pg-password-1@{where}/payscope"},
        "neo4j": {"username": "neo4j", "password": "neo4j-password-1"},
        "pinecone": {"apiKey": "pcsk_reach_0123456789"},
        "s3": {"accessKeyId": "reach-access-key", "secretAccessKey": "reach-secret-key-0123"},
        "redis": {"url": f"redis://:redis-password-1@{where}/0"},
    }
    return spec, secrets


async def test_a_denied_endpoint_is_never_contacted(listener: Listener) -> None:
    spec, secrets = _everything_at(DENIED_HOST, listener.port)

    with recorded_connects() as connects:
        outcome = await local_pass.run_passes(spec, secrets, passes=3)

    assert listener.accepted == 0
    assert not [address for address in connects if address[0] == DENIED_HOST]
    stalled = outcome.condition("Stalled")
    assert (stalled.status, stalled.reason) == (status.ConditionStatus.TRUE, "EgressDenied")
    assert "spec." in stalled.message
    assert "no connection was made" in stalled.message
    denied = {c.id for c in outcome.checks_with("EgressDenied")}
    assert {
        "A.dependencies.postgres", "A.dependencies.neo4j", "A.dependencies.pinecone", "A.dependencies.s3",
        "C.broker.reachable",
    } <= denied  # fmt: skip
    assert all(c.status is Unknown for c in outcome.checks_with("EgressDenied"))
    fields = " ".join(c.message for c in outcome.checks_with("EgressDenied"))
    for field in (
        "spec.postgres.connection.secretRef", "spec.neo4j.connection.uri", "spec.pinecone.controllerUrl",
        "spec.objectStorage.endpoint", "spec.redis.connection.secretRef", "spec.api.url",
    ):  # fmt: skip
        assert field in fields


@pytest.mark.parametrize("host", [METADATA, "metadata.google.internal", f"[::ffff:{METADATA}]"])
async def test_the_cloud_metadata_service_is_never_contacted(host: str) -> None:
    spec, secrets = _everything_at(host, 80)

    with recorded_connects() as connects:
        outcome = await local_pass.run_passes(spec, secrets, passes=2)

    assert not [address for address in connects if METADATA in address[0]]
    assert outcome.condition("Stalled").reason == "EgressDenied"
    assert len(outcome.checks_with("EgressDenied")) >= 6


# ---- bounded responses ---------------------------------------------------------------------------


async def test_an_endless_body_is_capped_and_the_pass_ends_in_time() -> None:
    async with EndlessBody() as server:
        where = f"http://127.0.0.1:{server.port}"
        spec = {
            "api": {"url": where, "timeouts": {"request": "3s"}},
            "pinecone": {
                "apiKeySecretRef": {"name": "pinecone", "key": "apiKey"},
                "controllerUrl": where,
                "indexes": [{"name": "rag", "dimension": 8, "serverless": {"cloud": "aws", "region": "us-east-1"}}],
            },
        }
        tracemalloc.start()
        started = time.monotonic()
        try:
            outcome = await local_pass.run_passes(spec, {"pinecone": {"apiKey": "pcsk_endless_0123456789"}})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        elapsed = time.monotonic() - started

    capped = outcome.checks_with("ResponseTooLarge")
    assert {"A.dependencies.pinecone"} <= {c.id for c in capped}
    assert any(c.id.startswith(("A.", "E.", "F.")) and "spec.api.url" in c.message for c in capped)
    assert all(c.status is Unknown for c in capped)
    provisioned = outcome.condition("Provisioned")
    assert (provisioned.status, provisioned.reason) == (status.ConditionStatus.UNKNOWN, "ResponseTooLarge")
    assert elapsed < 2 * 3 + 2  # within the status source's timeout: the cap ended it, not the clock
    assert peak < 64 * 1024 * 1024  # the endless body was never held in memory
    assert server.sent > 1024 * 1024  # it did stream more than the cap
