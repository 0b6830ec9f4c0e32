"""The A.workloads and F.shutdown checks against Deployments in the real kube-apiserver.

Each test creates PayScope-like Deployments in its own namespace (their status
written by hand: the test control plane has no controller-manager), reads them
through the operator's own ``kube.gateway.Gateway`` inside a real
``PassSession``, and runs the full catalog. Healthy Deployments pass every
workload and shutdown check; each fault then breaks exactly one check, with the
words an on-call engineer acts on, while every other check stays where it was.

What it must not do: touch objects outside its namespace.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.kube import gateway
from payscope_operator.reconcile import secrets, session
from tests.e2e import cluster

S = status.CheckStatus
TODAY = datetime.date(2026, 11, 28)
NAMES = {"api": "payscope-api", "worker": "payscope-worker", "ingestion": "payscope-ingestion"}
SPEC = spec.PayScopeSpec.model_validate({"workloads": {role: {"name": name} for role, name in NAMES.items()}})
MINE = frozenset(c.id for c in catalog.CATALOG if c.id.startswith(("A.workloads.", "F.shutdown.")))


async def _audit(api: k8s.ApiClient, namespace: str) -> dict[str, status.CheckResult]:
    run = session.PassSession(
        SPEC,
        namespace,
        "psd",
        secrets.Secrets({}),
        missing=(),
        cluster=gateway.Gateway(api),
        clients=session.ClientCache(),
    )
    try:
        report = await runner.run(catalog.CATALOG, run, today=TODAY)
    finally:
        await run.clients.close()
    return {r.id: r for r in report.results}


def _not_passing(results: dict[str, status.CheckResult]) -> dict[str, tuple[status.CheckStatus, str]]:
    """Every check that neither passes nor is outside the spec (NotConfigured)."""
    return {i: (r.status, r.message) for i, r in results.items() if r.status not in (S.PASS, S.NOT_CONFIGURED)}


async def test_healthy_deployments_pass_every_workload_and_shutdown_check(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    for name in NAMES.values():
        cluster.create_deployment(kube_api, namespace, name)
    results = await _audit(kube_api, namespace)
    expected = {f"A.workloads.{r}_available" for r in NAMES}
    expected |= {"A.workloads.probes", "A.workloads.resources", "A.workloads.restart_policy"}
    assert expected | {"F.shutdown.grace_period", "F.shutdown.pre_stop"} == MINE
    assert {i: results[i].status for i in MINE} == dict.fromkeys(MINE, S.PASS)
    assert _not_passing(results) == {}
    assert all(n in (results["A.workloads.probes"].evidence or "") for n in NAMES.values())
    assert "has all 2 replicas available" in results["A.workloads.api_available"].message


@dataclass(frozen=True)
class Fault:
    role: str
    check: str
    words: str
    create: dict[str, Any]
    after: Callable[[k8s.ApiClient, str, str], None] | None = None
    absent: bool = False

    def __str__(self) -> str:
        return f"{self.check}-{self.role}" + ("-absent" if self.absent else "")


def _grace_3s(api: k8s.ApiClient, namespace: str, name: str) -> None:
    patch = {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 3}}}}
    k8s.AppsV1Api(api).patch_namespaced_deployment(name, namespace, patch)


def _one_of_two(api: k8s.ApiClient, namespace: str, name: str) -> None:
    cluster.set_deployment_available(api, namespace, name, 1, 2)


FAULTS = [
    Fault(
        "worker", "A.workloads.probes", "payscope-worker/app: no livenessProbe and no readinessProbe", {"probes": False}
    ),
    Fault(
        "ingestion",
        "A.workloads.resources",
        "payscope-ingestion/app: missing requests.cpu, requests.memory, limits.memory",
        {"resources": False},
    ),
    Fault("api", "F.shutdown.pre_stop", "payscope-api/app: no lifecycle.preStop hook", {"pre_stop": False}),
    Fault(
        "worker", "F.shutdown.grace_period", "payscope-worker: terminationGracePeriodSeconds is 3 (< 10)", {}, _grace_3s
    ),
    *(
        Fault(role, f"A.workloads.{role}_available", f"Deployment {NAMES[role]} has 0 of 2", {"available": False})
        for role in NAMES
    ),
    *(
        Fault(
            role,
            f"A.workloads.{role}_available",
            f"Deployment {NAMES[role]} (spec.workloads.{role}) does not exist",
            {},
            absent=True,
        )
        for role in NAMES
    ),
    Fault("api", "A.workloads.api_available", "Deployment payscope-api has 1 of 2", {}, _one_of_two),
    Fault("ingestion", "A.workloads.ingestion_available", "is scaled to zero", {"replicas": 0}),
]


@pytest.mark.parametrize("fault", FAULTS, ids=str)
async def test_a_fault_fails_exactly_its_check(kube_api: k8s.ApiClient, namespace: str, fault: Fault) -> None:
    for role, name in NAMES.items():
        if role != fault.role:
            cluster.create_deployment(kube_api, namespace, name)
        elif not fault.absent:
            cluster.create_deployment(kube_api, namespace, name, **fault.create)
    if fault.after is not None:
        fault.after(kube_api, namespace, NAMES[fault.role])
    results = await _audit(kube_api, namespace)
    failing = _not_passing(results)
    assert {i: s for i, (s, _) in failing.items()} == {fault.check: S.FAIL}
    assert fault.words in failing[fault.check][1]
    if fault.absent:  # the container and shutdown checks judged the two Deployments that exist
        judged = results["A.workloads.probes"].evidence or ""
        assert NAMES[fault.role] not in judged
        assert all(name in judged for role, name in NAMES.items() if role != fault.role)
