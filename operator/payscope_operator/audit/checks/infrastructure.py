"""Dimension A (and the Deployment side of F): Secrets, PayScope's Deployments.

Evidence comes from the Kubernetes API: the referenced Secrets (resolved once
per pass by the pipeline) and the Deployments named in ``spec.workloads``.
Each check is a pure function of that evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.kube import workloads
from payscope_operator.reconcile import secrets, session

Severity = status.Severity
Finding = registry.Finding
ROLES = ("api", "worker", "ingestion")
_ROLE_TITLES = {"api": "API", "worker": "Worker", "ingestion": "Ingestion"}


@dataclass(frozen=True)
class WorkloadEvidence:
    """Each declared role's Deployment (None when it does not exist)."""

    deployments: dict[str, workloads.DeploymentFacts | None]


def _declared(desired: spec.PayScopeSpec) -> dict[str, str]:
    if desired.workloads is None:
        return {}
    found = {role: getattr(desired.workloads, role) for role in ROLES}
    return {role: w.name for role, w in found.items() if w is not None}


async def _gather_workloads(run: session.PassSession) -> WorkloadEvidence:
    names = _declared(run.spec)
    found = {role: await run.cluster.read_deployment(run.namespace, name) for role, name in names.items()}
    return WorkloadEvidence(found)


async def _gather_secrets(run: session.PassSession) -> tuple[secrets.Missing, ...]:
    return run.missing


WORKLOADS = registry.Source[WorkloadEvidence](
    name="kubernetes.workloads",
    gather=_gather_workloads,
    configured=lambda s: bool(_declared(s)),
    absent="spec.workloads names no Deployment.",
)
SECRETS = registry.Source[tuple[secrets.Missing, ...]](
    name="kubernetes.secrets",
    gather=_gather_secrets,
    configured=lambda s: bool(secrets.references(s)),
    absent="The spec references no Secret.",
)


def _secrets_present(missing: tuple[secrets.Missing, ...], desired: spec.PayScopeSpec) -> Finding:
    total = len(secrets.references(desired))
    if not missing:
        return Finding.passed(f"All {total} referenced Secret keys exist.")
    shown = "; ".join(
        f"{m.reference.secret}/{m.reference.key} ({'key missing' if m.secret_exists else 'Secret missing'},"
        f" {m.reference.field})"
        for m in missing[:5]
    )
    return Finding.failed(f"Create the missing Secret keys in the resource's namespace: {shown}", evidence=shown)


def _role_available(role: str) -> registry.Evaluate[WorkloadEvidence]:
    def evaluate(evidence: WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
        facts = evidence.deployments.get(role)
        name = _declared(desired)[role]
        if facts is None:
            return Finding.failed(
                f"Deployment {name} (spec.workloads.{role}) does not exist.", evidence=f"deployment/{name}"
            )
        where = f"deployment/{name}: {facts.available_replicas}/{facts.replicas} available"
        if facts.replicas == 0:
            return Finding.failed(f"Deployment {name} is scaled to zero.", evidence=where)
        if not facts.available:
            return Finding.failed(
                f"Deployment {name} has {facts.available_replicas} of {facts.replicas} replicas available.",
                evidence=where,
            )
        return Finding.passed(f"Deployment {name} has all {facts.replicas} replicas available.", evidence=where)

    return evaluate


def _per_container(
    test: Callable[[workloads.ContainerFacts], str | None], what: str
) -> registry.Evaluate[WorkloadEvidence]:
    """Pass when every container of every existing declared Deployment satisfies ``test`` (None = ok)."""

    def evaluate(evidence: WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
        existing = {r: f for r, f in evidence.deployments.items() if f is not None}
        if not existing:
            return Finding.unknown("None of the declared Deployments exists; see A.workloads.*_available.")
        problems = [
            f"{facts.name}/{c.name}: {problem}"
            for facts in existing.values()
            for c in facts.containers
            if (problem := test(c)) is not None
        ]
        checked = ", ".join(f.name for f in existing.values())
        if problems:
            return Finding.failed(f"Add {what}: " + "; ".join(problems[:6]), evidence=checked)
        return Finding.passed(f"Every container has {what}.", evidence=checked)

    return evaluate


def _probes(c: workloads.ContainerFacts) -> str | None:
    missing = [n for n, ok in (("livenessProbe", c.liveness_probe), ("readinessProbe", c.readiness_probe)) if not ok]
    return "no " + " and no ".join(missing) if missing else None


def _resources(c: workloads.ContainerFacts) -> str | None:
    gaps = [f"requests.{r}" for r in ("cpu", "memory") if r not in c.requests]
    gaps += ["limits.memory"] if "memory" not in c.limits else []
    return "missing " + ", ".join(gaps) if gaps else None


def _pre_stop(c: workloads.ContainerFacts) -> str | None:
    return None if c.pre_stop else "no lifecycle.preStop hook"


def _per_deployment(
    test: Callable[[workloads.DeploymentFacts], str | None], what: str
) -> registry.Evaluate[WorkloadEvidence]:
    def evaluate(evidence: WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
        existing = [f for f in evidence.deployments.values() if f is not None]
        if not existing:
            return Finding.unknown("None of the declared Deployments exists; see A.workloads.*_available.")
        problems = [f"{f.name}: {p}" for f in existing if (p := test(f)) is not None]
        checked = ", ".join(f.name for f in existing)
        if problems:
            return Finding.failed(f"Fix {what}: " + "; ".join(problems), evidence=checked)
        return Finding.passed(f"Every Deployment has {what}.", evidence=checked)

    return evaluate


def _restart_policy(d: workloads.DeploymentFacts) -> str | None:
    return None if d.restart_policy == "Always" else f"restartPolicy is {d.restart_policy}"


MIN_GRACE_SECONDS = 10


def _grace(d: workloads.DeploymentFacts) -> str | None:
    seconds = d.termination_grace_period_seconds
    if seconds is None:
        return None  # the Kubernetes default, 30s
    return (
        None if seconds >= MIN_GRACE_SECONDS else f"terminationGracePeriodSeconds is {seconds} (< {MIN_GRACE_SECONDS})"
    )


def _available_check(role: str) -> registry.Check[WorkloadEvidence]:
    return registry.Check(
        id=f"A.workloads.{role}_available",
        title=f"The {role} Deployment named in spec.workloads.{role} exists and all its replicas are available.",
        passes_when="availableReplicas >= spec.replicas > 0.",
        severity=Severity.CRITICAL,
        source=WORKLOADS,
        evaluate=_role_available(role),
        covers=(
            "A/Docker Compose/All services defined (postgres, redis, minio, neo4j, api, worker, ingestion)",
            f"F/Health Checks/{_ROLE_TITLES[role]} health check",
        ),
        applies=lambda s, role=role: role in _declared(s),  # type: ignore[misc]
    )


CHECKS: tuple[registry.Check[Any], ...] = (
    registry.Check(
        id="A.secrets.present",
        title="Every Secret key the spec references exists in the resource's namespace.",
        passes_when="Each referenced Secret exists and holds the referenced key.",
        severity=Severity.CRITICAL,
        source=SECRETS,
        evaluate=_secrets_present,
        covers=("A/Environment Variables/Secrets handling (JWT keys, API keys)",),
    ),
    *(_available_check(role) for role in ROLES),
    registry.Check(
        id="A.workloads.probes",
        title="Every container of the declared Deployments has a liveness and a readiness probe.",
        passes_when="livenessProbe and readinessProbe are set on every container.",
        severity=Severity.HIGH,
        source=WORKLOADS,
        evaluate=_per_container(_probes, "liveness and readiness probes"),
        covers=(
            "A/Docker Compose/Health checks configured",
            "F/Health Checks/Liveness/readiness probes",
            "A/Startup & Dependencies/Graceful startup behavior",
            "A/Docker Compose/Dependency ordering (depends_on)",
        ),
    ),
    registry.Check(
        id="A.workloads.resources",
        title="Every container of the declared Deployments requests CPU and memory and limits memory.",
        passes_when="resources.requests.cpu, resources.requests.memory and resources.limits.memory are set.",
        severity=Severity.MEDIUM,
        source=WORKLOADS,
        evaluate=_per_container(_resources, "resource requests and a memory limit"),
        covers=("D/GNN/Simulation/Memory limits",),
    ),
    registry.Check(
        id="A.workloads.restart_policy",
        title="The declared Deployments restart their containers (restartPolicy Always).",
        passes_when="The pod template's restartPolicy is Always.",
        severity=Severity.MEDIUM,
        source=WORKLOADS,
        evaluate=_per_deployment(_restart_policy, "the restart policy"),
        covers=("A/Docker Compose/Restart policies",),
    ),
    registry.Check(
        id="F.shutdown.grace_period",
        title="The declared Deployments give their pods time to finish in-flight work on shutdown.",
        passes_when=f"terminationGracePeriodSeconds is unset (30s) or at least {MIN_GRACE_SECONDS}.",
        severity=Severity.MEDIUM,
        source=WORKLOADS,
        evaluate=_per_deployment(_grace, "the termination grace period"),
        covers=("F/Graceful Shutdown/In-flight request completion", "F/Graceful Shutdown/Signal handling"),
    ),
    registry.Check(
        id="F.shutdown.pre_stop",
        title="Every container of the declared Deployments has a preStop hook, so endpoints drain before SIGTERM.",
        passes_when="lifecycle.preStop is set on every container.",
        severity=Severity.LOW,
        source=WORKLOADS,
        evaluate=_per_container(_pre_stop, "a preStop hook"),
        covers=("F/Graceful Shutdown/Connection cleanup",),
    ),
)


NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    registry.NotObservable(
        "A/Docker Compose/docker-compose.yml file exists",
        "A file in PayScope's source repository, not part of a running installation; on Kubernetes the services"
        " it would define are the Deployments checked by A.workloads.*_available and the stores in spec.",
    ),
    registry.NotObservable(
        "A/Environment Variables/.env.example or .env.template exists",
        "A file in PayScope's source repository; a running installation has no trace of it.",
    ),
    registry.NotObservable(
        "A/Environment Variables/All required env vars documented",
        "Documentation lives in the source repository; the operator sees only the values a Deployment sets, and"
        " whether they are complete shows as the API's /readyz and the A.dependencies.* checks.",
    ),
    registry.NotObservable(
        "A/Environment Variables/Environment-specific configs",
        "Which configuration belongs to which environment is a deployment-pipeline decision; each"
        " PayScopeDeployment audits the one environment it describes.",
    ),
)
