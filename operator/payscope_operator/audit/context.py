"""What the audit reads from a pass, as Protocols: the seam between ``reconcile`` and ``audit``.

Why this module exists: evidence sources need the pass's spec, its Secrets, a few
Kubernetes reads and the resource's store clients, all of which ``reconcile`` owns
(``reconcile.session.PassSession`` and ``reconcile.clients``). The audit is a layer
below ``reconcile`` and may not import it, so it states here what it needs;
``PassSession`` satisfies :class:`Session` structurally (a unit test holds it to
that), and tests pass their own small sessions.

What it must not do: hold state, build a client, or import ``reconcile``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import httpx

from payscope_operator import errors
from payscope_operator.api import secret_references, spec
from payscope_operator.kube import pods, workloads

Closer = Callable[[], Awaitable[None]]


class Specified(Protocol):
    """All the runner itself reads from a pass; sources read the whole :class:`Session`."""

    @property
    def spec(self) -> spec.PayScopeSpec: ...


class SecretValues(Protocol):
    """The pass's resolved Secret values (``reconcile.secrets.Secrets``)."""

    def reveal(self, secret: str, key: str) -> str:
        """The plain value; raises KeyError when it was not resolved."""
        ...


class MissingSecret(Protocol):
    """A referenced Secret key that could not be read (``reconcile.secrets.Missing``)."""

    @property
    def reference(self) -> secret_references.Reference: ...

    @property
    def secret_exists(self) -> bool: ...


class Cluster(Protocol):
    """The Kubernetes reads sources make (``kube.gateway.Gateway``)."""

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None: ...

    async def list_pods(self, namespace: str, selector: str) -> tuple[pods.PodFacts, ...]: ...

    async def read_pod_log(self, namespace: str, pod: str, container: str) -> str | None: ...


class ClientCache(Protocol):
    """Long-lived clients of one resource, rebuilt when their fingerprint changes."""

    async def get(self, name: str, fingerprint: int, build: Callable[[], tuple[Any, Closer]]) -> Any: ...


class Stores(Protocol):
    """The resource's store clients (``reconcile.clients.Stores``); a missing Secret raises SecretNotFound."""

    def reveal(self, secret: str, key: str) -> str: ...

    def postgres_dsn(self) -> str: ...

    def postgres(self, dsn: str | None = None) -> contextlib.AbstractAsyncContextManager[Any]:
        """A connection for the block, one at a time per pass (PGlite serves one)."""
        ...

    async def neo4j(self) -> Any: ...

    async def pinecone(self) -> httpx.AsyncClient: ...

    async def s3(self) -> Any: ...


class Session(Protocol):
    """What every evidence source of one pass reads."""

    @property
    def spec(self) -> spec.PayScopeSpec: ...

    @property
    def namespace(self) -> str: ...

    @property
    def secrets(self) -> SecretValues: ...

    @property
    def missing(self) -> Sequence[MissingSecret]: ...

    @property
    def cluster(self) -> Cluster: ...

    @property
    def clients(self) -> ClientCache: ...

    @property
    def stores(self) -> Stores: ...

    @property
    def provisioned_neo4j(self) -> tuple[str, ...]:
        """Neo4j objects the last status lists as Ready (their loss is drift, not absence)."""
        ...


def reveal(run: Session, secret: str, key: str, field: str) -> str:
    """A Secret value for building a client or a token; a missing one names the Secret, key and field."""
    try:
        return run.secrets.reveal(secret, key)
    except KeyError:
        raise errors.SecretNotFound(f"Secret {secret!r} key {key!r} ({field}) is not available") from None
