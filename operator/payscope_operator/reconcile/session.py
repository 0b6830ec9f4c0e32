"""One pass over one resource: the validated spec, its Secrets, and where to reach things.

Sources and provisioners read everything they need from a :class:`PassSession`,
including who they act for (``owner``: the resource's uid, recorded on every object it
creates) and how far they may reach (the operator's egress policy, and whether it lends
its own cloud identity to sections without credentials); the audit's sources read what
provisioning observed from its ``observations`` ledger (``observations.Ledger``: each
system read once per pass).
Long-lived clients (Neo4j driver, HTTP clients, S3 and Redis clients) are kept
per resource in ``clients`` and survive passes; they are rebuilt when the
Secrets they were built from change, and closed when the resource goes away
or the operator stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from payscope_operator.api import spec
from payscope_operator.backends import ownership
from payscope_operator.egress import policy
from payscope_operator.kube import pods, policies, workloads
from payscope_operator.reconcile import clients as store_clients
from payscope_operator.reconcile import connections, object_backoff
from payscope_operator.reconcile import observations as pass_observations
from payscope_operator.reconcile import secrets as secret_refs


class Cluster(Protocol):
    """The Kubernetes reads a pass needs (``kube.gateway.Gateway`` in production)."""

    async def read_deployment(self, namespace: str, name: str) -> workloads.DeploymentFacts | None: ...

    async def list_disruption_budgets(self, namespace: str) -> tuple[policies.DisruptionBudgetFacts, ...]: ...

    async def list_network_policies(self, namespace: str) -> tuple[policies.NetworkPolicyFacts, ...]: ...

    async def list_pods(self, namespace: str, selector: str) -> tuple[pods.PodFacts, ...]: ...

    async def read_pod_log(self, namespace: str, pod: str, container: str) -> str | None: ...


Closer = store_clients.Closer


@dataclass
class ClientCache:
    """Clients of one resource, keyed by name, each with the fingerprint it was built from."""

    entries: dict[str, tuple[int, Any, Closer]] = field(default_factory=dict)

    async def get(self, name: str, fingerprint: int, build: Callable[[], tuple[Any, Closer]]) -> Any:
        """The cached client, rebuilt (and the old one closed) when the fingerprint changed."""
        cached = self.entries.get(name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        if cached is not None:
            await cached[2]()
        client, closer = build()
        self.entries[name] = (fingerprint, client, closer)
        return client

    async def close(self) -> None:
        entries, self.entries = self.entries, {}
        for _, _, closer in entries.values():
            await closer()


@dataclass
class PassSession:
    """What every source and provisioner of one pass reads."""

    spec: spec.PayScopeSpec
    namespace: str
    name: str
    secrets: secret_refs.Secrets
    missing: tuple[secret_refs.Missing, ...]
    cluster: Cluster
    clients: ClientCache
    observations: pass_observations.Ledger = field(default_factory=pass_observations.Ledger)
    """What this pass observed of each provisioned system (``provision.ledger`` binds the factories)."""
    postgres_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Postgres work of a pass is serialised: TimescaleDB on PGlite serves one connection at a time."""
    uid: str = ""
    """The resource's metadata.uid: recorded on every external object it creates."""
    egress: policy.Policy = field(default_factory=policy.Policy.from_environment)
    """The operator's egress policy (``reconciler.Dependencies`` passes the one it runs with)."""
    ambient_credentials: bool = False
    """``--allow-ambient-credentials``: sections without credentials act as the operator itself."""
    lock_backoff: object_backoff.Memory = field(default_factory=object_backoff.Memory)
    """The resource's objects waiting for a lock (kept across passes by ``reconciler.Dependencies``)."""
    postgres_pool: connections.Pool | None = None
    """The operator's idle Postgres connections by address (None: each block opens and closes its own)."""

    @property
    def owner(self) -> ownership.Owner:
        """The resource, as provisioners record it on what they create."""
        return ownership.Owner(self.uid, self.namespace, self.name)

    @property
    def stores(self) -> store_clients.Stores:
        """This pass's store clients, in the shape the audit's sources ask for."""
        return store_clients.Stores(self)
