"""One reconcile pass in this process, against the real servers, with the cluster kept in memory.

The reach tests need the whole pass (secrets, clients, provisioning, audit, conditions)
but not the API server: ``standalone.LocalCluster`` holds the Secrets, the written status
and the Events. :func:`run_passes` reconciles one resource a few times with the
operator's egress policy of the test environment (``PAYSCOPE_ALLOWED_EGRESS``) unless a
test passes another, and closes its clients at the end.
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
    cluster = LocalCluster(
        secrets={k: {key: SecretStr(v) for key, v in values.items()} for k, values in secrets.items()}
    )
    deps = reconciler.Dependencies(
        cluster=cluster,
        observer=telemetry.Metrics(),
        provisioners=systems.PROVISIONERS,
        egress=egress if egress is not None else policy.Policy.from_environment(),
        ambient_credentials=ambient_credentials,
    )
    seconds: list[float] = []
    result = None
    try:
        for generation in range(passes):
            resource = reconciler.Resource(
                NAMESPACE, name, uid, 1, str(cluster.version), {}, dict(spec), cluster.status if generation else None
            )
            started = time.monotonic()
            result = await reconciler.reconcile(deps, resource, now=datetime.datetime.now(datetime.UTC))
            seconds.append(time.monotonic() - started)
    finally:
        for cache in deps.clients.values():
            await cache.close()
    assert result is not None
    return Outcome(result.status, cluster, seconds)
