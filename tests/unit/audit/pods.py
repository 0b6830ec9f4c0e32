"""Builders of the Kubernetes evidence dimensions A, F and G judge: hardened, guarded Deployments.

Why it exists: the table tests of the workload checks (A, F's shutdown, G's pod
security) all start from the same healthy installation, the api, worker and
ingestion Deployments with every container locked down, the api spread over
nodes under one PodDisruptionBudget, and a NetworkPolicy over the namespace;
each test changes one thing. The facts are the ones ``kube.workloads`` and
``kube.policies`` produce; ``test_kube_facts`` holds those converters to the
client's objects.

What it must not do: talk to a server.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from payscope_operator.audit.sources import kubernetes
from payscope_operator.kube import policies, workloads

NAMES = {"api": "payscope-api", "worker": "payscope-worker", "ingestion": "payscope-ingestion"}
SECURE = workloads.SecurityFacts(
    run_as_non_root=True,
    run_as_user=10001,
    privileged=False,
    allow_privilege_escalation=False,
    read_only_root_filesystem=True,
    capabilities_drop=("ALL",),
    seccomp="RuntimeDefault",
)
CONTAINER = workloads.ContainerFacts(
    name="app",
    liveness_probe=True,
    readiness_probe=True,
    startup_probe=False,
    requests=("cpu", "memory"),
    limits=("memory",),
    pre_stop=True,
    liveness_handler="httpGet /healthz :8000",
    readiness_handler="httpGet /readyz :8000",
    image="registry.example/payscope@sha256:" + "a" * 64,
    security=SECURE,
    env_literals=(("PORT", "number"), ("LOG_LEVEL", "text"), ("DB_PASSWORD_FILE", "path")),
)
INIT = dataclasses.replace(CONTAINER, name="migrate", init=True, liveness_probe=False, readiness_probe=False)


def selector(**labels: str) -> policies.LabelSelector:
    return policies.LabelSelector(tuple(sorted(labels.items())))


def deployment(
    name: str = "payscope-api",
    *,
    container: workloads.ContainerFacts = CONTAINER,
    init: workloads.ContainerFacts = INIT,
    security: dict[str, Any] | None = None,
    **changes: Any,
) -> workloads.DeploymentFacts:
    """A healthy Deployment; ``security`` changes the SecurityFacts of its first app container only."""
    if security:
        container = dataclasses.replace(container, security=dataclasses.replace(container.security, **security))
    facts = workloads.DeploymentFacts(
        name=name,
        replicas=2,
        available_replicas=2,
        ready_replicas=2,
        updated_replicas=2,
        generation=1,
        observed_generation=1,
        termination_grace_period_seconds=30,
        containers=(container, dataclasses.replace(CONTAINER, name="sidecar")),
        available_condition=True,
        init_containers=(init,),
        labels=(("app", name), ("tier", "payscope")),
        automount_service_account_token=False,
        spread=(workloads.SpreadTerm("topologySpreadConstraint", "kubernetes.io/hostname", selector(app=name)),),
    )
    return dataclasses.replace(facts, **changes)


BUDGET = policies.DisruptionBudgetFacts("payscope-api", selector(app="payscope-api"), min_available="1")
POLICY = policies.NetworkPolicyFacts("payscope", selector(tier="payscope"), ingress=True)


def evidence(
    *,
    budgets: tuple[policies.DisruptionBudgetFacts, ...] | str = (BUDGET,),
    network_policies: tuple[policies.NetworkPolicyFacts, ...] | str = (POLICY,),
    **roles: workloads.DeploymentFacts | None,
) -> kubernetes.WorkloadEvidence:
    found: dict[str, workloads.DeploymentFacts | None] = {role: deployment(name) for role, name in NAMES.items()}
    return kubernetes.WorkloadEvidence({**found, **roles}, budgets, network_policies)


def with_role(role: str, facts: workloads.DeploymentFacts | None) -> kubernetes.WorkloadEvidence:
    """The healthy evidence with one role's Deployment replaced (None: it does not exist)."""
    healthy = evidence()
    return dataclasses.replace(healthy, deployments={**healthy.deployments, role: facts})
