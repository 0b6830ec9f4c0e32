"""Dimension A, infrastructure: Secrets, PayScope's Deployments, and every store answering in time.

Evidence comes from the Kubernetes API (the referenced Secrets, resolved once per
pass, and the Deployments named in ``spec.workloads``) and from each store's own
source: a store that does not answer within its timeout fails its
``A.dependencies.*`` check instead of turning it Unknown.

What it must not do: judge the stores' contents (dimension B does) or the
Deployments' shutdown settings (dimension F does), or do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from payscope_operator.api import secret_references, spec, status
from payscope_operator.audit import context, registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import kubernetes, neo4j, pinecone, postgres, s3
from payscope_operator.kube import workloads

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()
_ALL_SERVICES = "A/Docker Compose/All services defined (postgres, redis, minio, neo4j, api, worker, ingestion)"


@CHECKS.check(
    "A.secrets.present",
    fix="Create each missing Secret key in the resource's namespace (kubectl create secret generic NAME"
    " --from-literal=KEY=...), or correct the secretRef in the spec.",
    source=kubernetes.SECRETS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Every Secret key the spec references exists in the resource's namespace.",
    passes_when="Each referenced Secret exists and holds the referenced key.",
    covers=("A/Environment Variables/Secrets handling (JWT keys, API keys)",),
)
def secrets_present(missing: Sequence[context.MissingSecret], desired: spec.PayScopeSpec) -> Finding:
    total = len(secret_references.references(desired))
    if not missing:
        return Finding.passed(f"All {total} referenced Secret keys exist.")
    shown = "; ".join(
        f"{m.reference.secret}/{m.reference.key} ({'key missing' if m.secret_exists else 'Secret missing'},"
        f" {m.reference.field})"
        for m in missing[:5]
    )
    return Finding.failed(f"Create the missing Secret keys in the resource's namespace: {shown}", evidence=shown)


def _available(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec, role: str) -> Finding:
    facts = evidence.deployments.get(role)
    name = kubernetes.declared(desired)[role]
    if facts is None:
        return Finding.failed(
            f"Deployment {name} (spec.workloads.{role}) does not exist.", evidence=f"deployment/{name}"
        )
    where = f"deployment/{name}: {facts.available_replicas}/{facts.replicas} available"
    if facts.replicas == 0:
        return Finding.failed(f"Deployment {name} is scaled to zero.", evidence=where)
    if not facts.available:
        return Finding.failed(
            f"Deployment {name} has {facts.available_replicas} of {facts.replicas} replicas available.", evidence=where
        )
    return Finding.passed(f"Deployment {name} has all {facts.replicas} replicas available.", evidence=where)


def _title(role: str) -> str:
    return f"The {role} Deployment named in spec.workloads.{role} exists and all its replicas are available."


@CHECKS.check(
    "A.workloads.api_available",
    fix="Check the api Deployment's rollout (kubectl rollout status deployment/NAME) and its pods' events;"
    " scale it above zero.",
    source=kubernetes.WORKLOADS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=_title("api"),
    passes_when="availableReplicas >= spec.replicas > 0.",
    covers=(_ALL_SERVICES, "F/Health Checks/API health check"),
    applies=lambda s: "api" in kubernetes.declared(s),
)
def api_available(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _available(evidence, desired, "api")


@CHECKS.check(
    "A.workloads.worker_available",
    fix="Check the worker Deployment's rollout (kubectl rollout status deployment/NAME) and its pods' events;"
    " scale it above zero.",
    source=kubernetes.WORKLOADS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=_title("worker"),
    passes_when="availableReplicas >= spec.replicas > 0.",
    covers=(_ALL_SERVICES, "F/Health Checks/Worker health check"),
    applies=lambda s: "worker" in kubernetes.declared(s),
)
def worker_available(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _available(evidence, desired, "worker")


@CHECKS.check(
    "A.workloads.ingestion_available",
    fix="Check the ingestion Deployment's rollout (kubectl rollout status deployment/NAME) and its pods'"
    " events; scale it above zero.",
    source=kubernetes.WORKLOADS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=_title("ingestion"),
    passes_when="availableReplicas >= spec.replicas > 0.",
    covers=(_ALL_SERVICES, "F/Health Checks/Ingestion health check"),
    applies=lambda s: "ingestion" in kubernetes.declared(s),
)
def ingestion_available(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _available(evidence, desired, "ingestion")


def _probes(c: workloads.ContainerFacts) -> str | None:
    missing = [n for n, ok in (("livenessProbe", c.liveness_probe), ("readinessProbe", c.readiness_probe)) if not ok]
    return "no " + " and no ".join(missing) if missing else None


@CHECKS.check(
    "A.workloads.probes",
    fix="Add a livenessProbe (GET /healthz) and a readinessProbe (GET /readyz) to every container of the Deployment.",
    source=kubernetes.WORKLOADS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Every container of the declared Deployments has a liveness and a readiness probe.",
    passes_when="livenessProbe and readinessProbe are set on every container.",
    covers=(
        "A/Docker Compose/Health checks configured",
        "F/Health Checks/Liveness/readiness probes",
        "A/Startup & Dependencies/Graceful startup behavior",
        "A/Docker Compose/Dependency ordering (depends_on)",
    ),
)
def probes(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return per_object.containers(evidence, _probes, "liveness and readiness probes")


def _resources(c: workloads.ContainerFacts) -> str | None:
    gaps = [f"requests.{r}" for r in ("cpu", "memory") if r not in c.requests]
    gaps += ["limits.memory"] if "memory" not in c.limits else []
    return "missing " + ", ".join(gaps) if gaps else None


@CHECKS.check(
    "A.workloads.resources",
    fix="Set resources.requests.cpu, resources.requests.memory and resources.limits.memory on every container.",
    source=kubernetes.WORKLOADS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Every container of the declared Deployments requests CPU and memory and limits memory.",
    passes_when="resources.requests.cpu, resources.requests.memory and resources.limits.memory are set.",
    covers=("D/GNN/Simulation/Memory limits",),
)
def resources(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return per_object.containers(evidence, _resources, "resource requests and a memory limit")


def _restart_policy(d: workloads.DeploymentFacts) -> str | None:
    return None if d.restart_policy == "Always" else f"restartPolicy is {d.restart_policy}"


@CHECKS.check(
    "A.workloads.restart_policy",
    fix="Set the pod template's restartPolicy to Always (the only value a Deployment should use).",
    source=kubernetes.WORKLOADS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The declared Deployments restart their containers (restartPolicy Always).",
    passes_when="The pod template's restartPolicy is Always.",
    covers=("A/Docker Compose/Restart policies",),
)
def restart_policy(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return per_object.deployments(evidence, _restart_policy, "the restart policy")


# Every store answers within its timeout: a source error fails these checks (fails_when_unreachable).


@CHECKS.check(
    "A.dependencies.postgres",
    fix="Make Postgres reachable from the operator: check spec.postgres.connection, the DSN Secret, network"
    " policy and PAYSCOPE_ALLOWED_EGRESS.",
    source=postgres.CATALOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="Postgres answers within its timeout.",
    passes_when="A connection and the catalog queries succeed.",
    covers=("A/Startup & Dependencies/Dependency readiness checks", "F/Health Checks/Dependency checks"),
    fails_when_unreachable=True,
)
def postgres_reachable(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed(f"Postgres at {evidence.host} answered.", evidence=f"postgres {evidence.host}")


@CHECKS.check(
    "A.dependencies.neo4j",
    fix="Make Neo4j reachable from the operator: check spec.neo4j.connection.uri, the credentials Secret and"
    " the egress policy.",
    source=neo4j.SCHEMA,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Neo4j answers within its timeout.",
    passes_when="SHOW CONSTRAINTS and SHOW INDEXES succeed.",
    covers=("A/Startup & Dependencies/Connection retry logic",),
    fails_when_unreachable=True,
)
def neo4j_reachable(evidence: neo4j.GraphEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed(f"Neo4j {evidence.version} {evidence.edition} answered.", evidence=evidence.uri)


@CHECKS.check(
    "A.dependencies.pinecone",
    fix="Make Pinecone's control plane reachable: check spec.pinecone.controllerUrl, the API key Secret and"
    " the egress policy.",
    source=pinecone.INDEXES,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Pinecone's control plane answers within its timeout.",
    passes_when="GET /indexes succeeds.",
    fails_when_unreachable=True,
)
def pinecone_reachable(evidence: pinecone.VectorEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed("Pinecone's control plane answered.", evidence=evidence.controller)


@CHECKS.check(
    "A.dependencies.s3",
    fix="Make the S3 endpoint reachable: check spec.objectStorage.endpoint, the credentials Secret and the"
    " egress policy.",
    source=s3.BUCKETS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The S3 endpoint answers within its timeout.",
    passes_when="Bucket reads succeed.",
    covers=("A/Startup & Dependencies/Wait-for scripts for Postgres, Redis, Neo4j",),
    fails_when_unreachable=True,
)
def s3_reachable(evidence: s3.BucketEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed("The S3 endpoint answered.", evidence=evidence.endpoint)


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
