"""Which provisioners exist, in the order a pass runs them, and how each gets its client.

Postgres comes first: row-level security and TimescaleDB share one connection,
opened for the block under the pass's Postgres lock and closed at once. The
others reuse the resource's long-lived clients (``clients``). Each factory
yields nothing when its section is absent from the spec.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from payscope_operator.api import status
from payscope_operator.backends import base, neo4j, pinecone, postgres, s3, timescale
from payscope_operator.reconcile import clients, provision, session

Provisioners = Sequence[base.Provisioner[Any]]


@contextlib.asynccontextmanager
async def _postgres(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.postgres
    if section is None or not section.tables:
        yield ()
        return
    async with clients.postgres(run) as conn:
        found: list[base.Provisioner[Any]] = [
            postgres.provisioner.PostgresProvisioner(conn, postgres.model.Desired(section, run.spec.tenancy, run.owner))
        ]
        if any(t.hypertable is not None for t in section.tables):
            found.append(timescale.provisioner.TimescaleProvisioner(conn, section))
        yield found


def _known_graph_objects(run: session.PassSession) -> tuple[str, ...]:
    """Names the status says we provisioned, so a restarted operator still recognises drift."""
    return run.provisioned_neo4j


@contextlib.asynccontextmanager
async def _neo4j(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.neo4j
    if section is None or not (section.constraints or section.indexes):
        yield ()
        return
    driver = await clients.neo4j(run)
    yield (neo4j.provisioner.Neo4jProvisioner(driver, section, owner=run.owner, known=_known_graph_objects(run)),)


@contextlib.asynccontextmanager
async def _pinecone(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.pinecone
    if section is None or not section.indexes:
        yield ()
        return
    http = await clients.pinecone(run)
    yield (pinecone.provisioner.PineconeProvisioner(section, http, owner=run.owner),)


@contextlib.asynccontextmanager
async def _s3(run: session.PassSession) -> AsyncIterator[Provisioners]:
    section = run.spec.object_storage
    if section is None or not section.buckets:
        yield ()
        return
    client = await clients.s3(run)
    yield (s3.provisioner.S3Provisioner(section, client, owner=run.owner),)


PROVISIONERS: tuple[provision.Factory, ...] = (
    provision.Factory("postgres", _postgres),
    provision.Factory("neo4j", _neo4j),
    provision.Factory("pinecone", _pinecone),
    provision.Factory("objectStorage", _s3),
)


def provisioned_names(previous: status.PayScopeStatus | None, system: str) -> tuple[str, ...]:
    """Ready object names of ``system`` in a stored status."""
    if previous is None or previous.provisioned is None:
        return ()
    objs: tuple[status.ProvisionedObject, ...] = getattr(previous.provisioned, system, ())
    return tuple(o.name for o in objs if o.state == status.ProvisionState.READY)
