"""Clients of one resource's stores, built from its resolved Secrets and reused across passes.

Provisioner factories and audit sources both ask here, so one resource has one
Neo4j driver, one Pinecone HTTP client, one S3 client, one Redis client and one
client of PayScope's API, rebuilt only when what they were built from changes.
Postgres is different: a pass takes a connection when it needs one and gives it
back at once, under the pass's Postgres lock, because TimescaleDB on PGlite serves
one connection at a time; the operator's ``connections.Pool`` lends an idle one
for the same address when there is one (without a pool, it is opened and closed).
A missing Secret surfaces as ``errors.SecretNotFound`` naming it, never as a bare
KeyError, so a check that cannot run says why.

Every client passes ``reach`` first: its endpoint is checked against the operator's
egress policy before any connection (``errors.EgressDenied`` naming the field), and a
section without credentials is ``errors.CredentialsRequired`` unless the operator lends
its own identity (``--allow-ambient-credentials``). HTTP clients check every request
and read every body with the response cap (``egress.transport``). :class:`Stores` is
the same clients seen from one pass, in the shape the audit's sources ask for
(``audit.context.Stores``). This module's functions are named after the systems
(``clients.neo4j(run)``), so it imports each backend's ``client`` module as
``<system>_client``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from payscope_operator import errors
from payscope_operator.api import fields, spec
from payscope_operator.backends import ownership
from payscope_operator.backends.neo4j import client as neo4j_client
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.pinecone import client as pinecone_client
from payscope_operator.backends.postgres import client as postgres_client
from payscope_operator.backends.redis import client as redis_client
from payscope_operator.backends.s3 import client as s3_client
from payscope_operator.egress import policy, transport
from payscope_operator.reconcile import connections, reach, secrets

Closer = Callable[[], Awaitable[None]]
POSTGRES_FIELD = "spec.postgres.connection.secretRef"
POSTGRES_APP_FIELD = "spec.postgres.appConnection.secretRef"


class Cache(Protocol):
    """Where built clients are kept (``session.ClientCache``)."""

    async def get(self, name: str, fingerprint: int, build: Callable[[], tuple[Any, Closer]]) -> Any: ...


class Pass(Protocol):
    """What building a client reads from a pass (``session.PassSession``)."""

    @property
    def spec(self) -> spec.PayScopeSpec: ...

    @property
    def secrets(self) -> secrets.Secrets: ...

    @property
    def clients(self) -> Cache: ...

    @property
    def postgres_lock(self) -> asyncio.Lock: ...

    @property
    def egress(self) -> policy.Policy: ...

    @property
    def ambient_credentials(self) -> bool: ...

    @property
    def owner(self) -> ownership.Owner: ...

    @property
    def postgres_pool(self) -> connections.Pool | None: ...


def reveal(run: Pass, secret: str, key: str) -> str:
    """A Secret value, or SecretNotFound naming the Secret and key."""
    try:
        return run.secrets.reveal(secret, key)
    except KeyError:
        raise errors.SecretNotFound(f"Secret {secret!r} key {key!r} is not available") from None


def postgres_dsn(run: Pass) -> str:
    section = run.spec.postgres
    if section is None:
        raise errors.SpecInvalid("spec.postgres is absent")
    ref = section.connection.secret_ref
    return reveal(run, ref.name, ref.key)


@contextlib.asynccontextmanager
async def postgres(run: Pass, dsn: str | None = None) -> AsyncIterator[Any]:
    """A Postgres connection for the block, one at a time per pass, to the address the egress policy checked."""
    main = postgres_dsn(run)
    target = dsn if dsn is not None else main
    field = POSTGRES_FIELD if target == main else POSTGRES_APP_FIELD
    extra = await reach.postgres_params(run.egress, target, field, ambient=run.ambient_credentials)
    bound = fields.parse_duration(run.spec.audit.probe_timeout).total_seconds()  # as every other observation
    async with run.postgres_lock:
        if run.postgres_pool is None:
            conn = await postgres_client.open_postgres(target, extra=extra, connect_timeout=bound)
            try:
                yield conn
            finally:
                await conn.close()
            return
        key = f"{target}\x00{sorted(extra.items()) if extra else ''}"  # the address the egress check resolved
        async with run.postgres_pool.connection(
            key, lambda: postgres_client.open_postgres(target, extra=extra, connect_timeout=bound)
        ) as conn:
            yield conn


async def neo4j(run: Pass) -> Any:
    section = run.spec.neo4j
    if section is None:
        raise errors.SpecInvalid("spec.neo4j is absent")
    ref = section.connection.secret_ref
    user, password = reveal(run, ref.name, ref.username_key), reveal(run, ref.name, ref.password_key)
    uri = section.connection.uri
    endpoint, _ = reach.neo4j_endpoint(uri)
    await policy.check(run.egress, endpoint)  # every pass, before the driver is handed out
    egress = run.egress

    def build() -> tuple[Any, Closer]:
        driver = neo4j_client.driver(uri, user, password, check=reach.neo4j_check(egress, uri))
        return driver, driver.close

    return await run.clients.get("neo4j", hash((uri, user, password)), build)


async def pinecone(run: Pass) -> httpx.AsyncClient:
    section = run.spec.pinecone
    if section is None:
        raise errors.SpecInvalid("spec.pinecone is absent")
    ref = section.api_key_secret_ref
    key = reveal(run, ref.name, ref.key)
    url = section.controller_url
    egress = run.egress

    def build() -> tuple[Any, Closer]:
        client = pinecone_client.connect(url, key, egress=egress)
        return client, client.aclose

    client: httpx.AsyncClient = await run.clients.get("pinecone", hash((url, key)), build)
    return client


async def s3(run: Pass) -> Any:
    section = run.spec.object_storage
    if section is None:
        raise errors.SpecInvalid("spec.objectStorage is absent")
    reach.require_s3_credentials(section, ambient=run.ambient_credentials)
    await policy.check(run.egress, reach.s3_endpoint(section))
    ref = section.credentials_secret_ref
    access = reveal(run, ref.name, ref.access_key_id_key) if ref else None
    secret = reveal(run, ref.name, ref.secret_access_key_key) if ref else None
    guard = reach.s3_guard(run.egress)

    def build() -> tuple[Any, Closer]:
        client = s3_client.make_client(section, access, secret, before_send=guard)

        async def close() -> None:
            client.close()

        return client, close

    fingerprint = hash((section.endpoint, section.region, section.force_path_style, access, secret))
    return await run.clients.get("s3", fingerprint, build)


async def redis(run: Pass, timeout: float) -> Any:
    """The broker's client, connected to the address the egress policy checked."""
    section = run.spec.redis
    if section is None:
        raise errors.SpecInvalid("spec.redis is absent")
    ref = section.connection.secret_ref
    url = await reach.redis_url(
        run.egress, reveal(run, ref.name, ref.key), "spec.redis.connection.secretRef", ambient=run.ambient_credentials
    )
    return await run.clients.get("redis.broker", hash((url, timeout)), lambda: redis_client.build_client(url, timeout))


async def payscope_api(run: Pass) -> api_client.Client:
    """The client of PayScope's HTTP API (``spec.api.url``), ``spec.api.maxRequestsInFlight`` requests at a time.

    Each request is checked by its transport.
    """
    if run.spec.api is None:
        raise errors.SpecInvalid("spec.api is absent")
    url, egress, limit = run.spec.api.url, run.egress, run.spec.api.max_requests_in_flight
    client: api_client.Client = await run.clients.get(
        "payscope.api", hash((url, limit)), lambda: api_client.build_client(url, egress, limit)
    )
    return client


@dataclass(frozen=True)
class Stores:
    """One pass's store clients, as the audit's sources reach them (``audit.context.Stores``)."""

    run: Pass

    def reveal(self, secret: str, key: str) -> str:
        return reveal(self.run, secret, key)

    def postgres_dsn(self) -> str:
        return postgres_dsn(self.run)

    def postgres(self, dsn: str | None = None) -> contextlib.AbstractAsyncContextManager[Any]:
        return postgres(self.run, dsn)

    async def neo4j(self) -> Any:
        return await neo4j(self.run)

    async def pinecone(self) -> httpx.AsyncClient:
        return await pinecone(self.run)

    async def s3(self) -> Any:
        return await s3(self.run)

    async def redis(self, timeout: float) -> Any:
        return await redis(self.run, timeout)

    async def payscope_api(self) -> api_client.Client:
        return await payscope_api(self.run)

    def anonymous_http(self, field: str, timeout: float) -> httpx.AsyncClient:
        return transport.client(self.run.egress, field, timeout=timeout)
