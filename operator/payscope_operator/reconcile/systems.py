"""Which provisioners exist, in the order a pass runs them, and how each gets its client.

Postgres comes first: row-level security and TimescaleDB share one connection,
opened for the block under the pass's Postgres lock and closed at once. The
others reuse the resource's long-lived clients (``clients``). Each factory yields
a provisioner for every section the spec has, so the audit can observe a section
that declares nothing to provision (its reachability, its server); ``provisions``
says when provisioning and teardown use it: only when the section declares objects.

What it must not do: observe, plan or apply (``provision`` and ``observations`` do),
or yield a provisioner for a section the spec does not have.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from payscope_operator.api import spec
from payscope_operator.backends import base, neo4j, pinecone, postgres, s3, timescale
from payscope_operator.reconcile import clients, observations, provision, session

Provisioners = observations.Provisioners


def _postgres_declared(desired: spec.PayScopeSpec) -> bool:
    return desired.postgres is not None and bool(desired.postgres.tables)


@contextlib.asynccontextmanager
async def _postgres(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.postgres
    if section is None or not section.tables:
        yield ()  # with no table there is nothing to observe: the audit reads the rest itself
        return
    async with clients.postgres(run) as conn:
        shared = postgres.client.Session(conn, postgres.client.Timeouts())  # one set of session timeouts
        found: list[base.Provisioner[Any]] = [
            postgres.provisioner.PostgresProvisioner(
                conn, postgres.model.Desired(section, run.spec.tenancy, run.owner), session=shared
            )
        ]
        if any(t.hypertable is not None for t in section.tables):
            found.append(timescale.provisioner.TimescaleProvisioner(conn, section, session=shared))
        yield found


def _neo4j_declared(desired: spec.PayScopeSpec) -> bool:
    return desired.neo4j is not None and bool(desired.neo4j.constraints or desired.neo4j.indexes)


@contextlib.asynccontextmanager
async def _neo4j(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.neo4j
    if section is None:
        yield ()
        return
    yield (neo4j.provisioner.Neo4jProvisioner(await clients.neo4j(run), section, owner=run.owner),)


def _pinecone_declared(desired: spec.PayScopeSpec) -> bool:
    return desired.pinecone is not None and bool(desired.pinecone.indexes)


@contextlib.asynccontextmanager
async def _pinecone(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.pinecone
    if section is None:
        yield ()
        return
    yield (pinecone.provisioner.PineconeProvisioner(section, await clients.pinecone(run), owner=run.owner),)


def _s3_declared(desired: spec.PayScopeSpec) -> bool:
    return desired.object_storage is not None and bool(desired.object_storage.buckets)


@contextlib.asynccontextmanager
async def _s3(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.object_storage
    if section is None:
        yield ()
        return
    yield (s3.provisioner.S3Provisioner(section, await clients.s3(run), owner=run.owner),)


PROVISIONERS: tuple[provision.Factory, ...] = (
    provision.Factory((postgres.model.SYSTEM, timescale.model.SYSTEM), _postgres, _postgres_declared),
    provision.Factory((neo4j.model.SYSTEM,), _neo4j, _neo4j_declared),
    provision.Factory((pinecone.model.SYSTEM,), _pinecone, _pinecone_declared),
    provision.Factory((s3.model.SYSTEM,), _s3, _s3_declared),
)
