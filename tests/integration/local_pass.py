"""One reconcile pass in this process, against the real servers, with the cluster kept in memory.

The reach tests need the whole pass (secrets, clients, provisioning, audit, conditions)
but not the API server: ``standalone.LocalCluster`` holds the Secrets, the written status
and the Events. :func:`run_passes` reconciles one resource a few times with the
operator's egress policy of the test environment (``PAYSCOPE_ALLOWED_EGRESS``) unless a
test passes another, and closes its clients at the end; a :class:`Runner` does the same one
pass at a time, for tests that act between passes.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from payscope_operator import telemetry
from payscope_operator.api import status as api_status
from payscope_operator.egress import policy
from payscope_operator.reconcile import reconciler, systems
from payscope_operator.standalone import LocalCluster

NAMESPACE = "payscope"


@dataclass
class Outcome:
    """What the passes left: the last status, every Event, and the cluster they were written to."""

    status: api_status.PayScopeStatus
    cluster: LocalCluster
    seconds: list[float] = field(default_factory=list)

    def condition(self, kind: str) -> api_status.Condition:
        return next(c for c in self.status.conditions if c.type == kind)

    def checks_with(self, reason: str) -> list[api_status.CheckResult]:
        return [c for c in self.status.checks if c.reason == reason]

    def text(self) -> str:
        """Everything written to the cluster, for searching: the status as stored and every Event."""
        return json.dumps(self.cluster.status) + "\n" + "\n".join(" ".join(e) for e in self.cluster.events)


@dataclass
class Runner:
    """Passes over one resource with one set of ``reconciler.Dependencies``, kept between passes as the operator
    keeps them (clients, the audit's memory, objects waiting for a lock); :meth:`close` closes the clients."""

    spec: Mapping[str, Any]
    secrets: Mapping[str, Mapping[str, str]]
    uid: str = "5e5e5e5e-0000-4000-8000-000000000001"
    name: str = "psd"
    egress: policy.Policy | None = None
    ambient_credentials: bool = False
    cluster: LocalCluster = field(init=False)
    deps: reconciler.Dependencies = field(init=False)
    seconds: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cluster = LocalCluster(
            secrets={k: {key: SecretStr(v) for key, v in values.items()} for k, values in self.secrets.items()}
        )
        self.deps = reconciler.Dependencies(
            cluster=self.cluster,
            observer=telemetry.Metrics(),
            provisioners=systems.PROVISIONERS,
            egress=self.egress if self.egress is not None else policy.Policy.from_environment(),
            ambient_credentials=self.ambient_credentials,
        )

    async def once(self) -> Outcome:
        """One pass over generation 1 of the resource, from the status the last pass left."""
        first = not self.seconds
        resource = reconciler.Resource(
            NAMESPACE,
            self.name,
            self.uid,
            1,
            str(self.cluster.version),
            {},
            dict(self.spec),
            None if first else self.cluster.status,
        )
        started = time.monotonic()
        result = await reconciler.reconcile(self.deps, resource, now=datetime.datetime.now(datetime.UTC))
        self.seconds.append(time.monotonic() - started)
        return Outcome(result.status, self.cluster, list(self.seconds))

    async def close(self) -> None:
        for cache in self.deps.clients.values():
            await cache.close()


async def run_passes(
    spec: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, str]],
    *,
    passes: int = 1,
    uid: str = "5e5e5e5e-0000-4000-8000-000000000001",
    name: str = "psd",
    egress: policy.Policy | None = None,
    ambient_credentials: bool = False,
) -> Outcome:
    runner = Runner(spec, secrets, uid, name, egress, ambient_credentials)
    outcome = None
    try:
        for _ in range(passes):
            outcome = await runner.once()
    finally:
        await runner.close()
    assert outcome is not None
    return outcome
