"""One audit against the real API server, for the integration tests of the Kubernetes checks.

Why it exists: the pod checks and the workload checks both judge what the test
control plane holds through the real gateway; this runs the given checks once, as a
pass would (a session over an empty Secret set), and returns their results by id.

What it must not do: provision, write status, or choose the checks (the tests do).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from kubernetes import client as k8s

from payscope_operator.api import spec, status
from payscope_operator.audit import registry, runner
from payscope_operator.kube import gateway
from payscope_operator.reconcile import secrets, session


async def audit(
    api: k8s.ApiClient,
    namespace: str,
    desired: spec.PayScopeSpec,
    checks: Iterable[registry.Check[Any]],
    today: datetime.date,
) -> dict[str, status.CheckResult]:
    run = session.PassSession(
        desired,
        namespace,
        "psd",
        secrets.Secrets({}),
        missing=(),
        cluster=gateway.Gateway(api),
        clients=session.ClientCache(),
    )
    try:
        report = await runner.run(list(checks), run, today=today)
    finally:
        await run.clients.close()
    return {r.id: r for r in report.results}
