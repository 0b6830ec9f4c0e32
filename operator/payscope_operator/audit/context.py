"""What the audit reads from a pass, as Protocols: the seam between ``reconcile`` and ``audit``.

Why this module exists: evidence sources need the pass's spec, its Secrets, a few
Kubernetes reads, the resource's store clients and what provisioning observed of each
system, all of which ``reconcile`` owns (``reconcile.session.PassSession``,
``reconcile.clients``, ``reconcile.observations``). The audit is a layer
below ``reconcile`` and may not import it, so it states here what it needs;
``PassSession`` satisfies :class:`Session` structurally (a unit test holds it to
that), and tests pass their own small sessions.

What it must not do: hold state, build a client, or import ``reconcile``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from payscope_operator import errors
from payscope_operator.api import secret_references, spec
from payscope_operator.backends import base
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.kube import pods, policies, workloads

Closer = Callable[[], Awaitable[None]]
T = TypeVar("T")


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

    async def list_disruption_budgets(self, namespace: str) -> tuple[policies.DisruptionBudgetFacts, ...]: ...

    async def list_network_policies(self, namespace: str) -> tuple[policies.NetworkPolicyFacts, ...]: ...

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

    async def pinecone(self) -> Any: ...

    async def s3(self) -> Any: ...

    async def redis(self, timeout: float) -> Any:
        """The broker client of ``spec.redis`` (its URL checked against the egress policy)."""
        ...

    async def payscope_api(self) -> api_client.Client:
        """The client of ``spec.api.url``: egress-checked, bodies read with the size cap, requests in flight bounded."""
        ...

    def anonymous_http(self, field: str, timeout: float) -> contextlib.AbstractAsyncContextManager[Any]:
        """An HTTP client without credentials under the same policy and cap, for the block (``async with``)."""
        ...


class Observations(Protocol):
    """What the pass observed of each provisioned system (``reconcile.observations.Ledger``)."""

    async def observe(self, system: str) -> base.Observation[Any]:
        """``system`` (``postgres``, ``timescaledb``, ``neo4j``, ``pinecone``, ``objectStorage``) as this pass saw it.

        What provisioning observed and planned (after applied changes, the verifying
        re-observation); when provisioning did not observe it, observed now through the
        same provisioner, read-only, once for every source that asks. Raises the error
        the system's observation met in this pass: it is not tried twice.
        """
        ...


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
    def observations(self) -> Observations: ...


def reveal(run: Session, secret: str, key: str, field: str) -> str:
    """A Secret value for building a client or a token; a missing one names the Secret, key and field."""
    try:
        return run.secrets.reveal(secret, key)
    except KeyError:
        raise errors.SecretNotFound(f"Secret {secret!r} key {key!r} ({field}) is not available") from None


async def observed(run: Session, system: str, kind: type[T]) -> T:
    """What the pass observed of ``system``, as its backend's ``model`` type ``kind``."""
    found = (await run.observations.observe(system)).observed
    if not isinstance(found, kind):
        raise TypeError(f"{system} was observed as {type(found).__name__}, not {kind.__name__}")
    return found


async def planned(run: Session, system: str) -> base.Plan:
    """The plan of ``system`` against the spec, as the pass made it (raises what planning raised)."""
    return (await run.observations.observe(system)).planned()
