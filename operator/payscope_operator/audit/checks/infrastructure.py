"""Dimension A, infrastructure: Secrets, PayScope's Deployments, and every store answering in time.

Evidence comes from the Kubernetes API (the referenced Secrets, resolved once per
pass, the Deployments named in ``spec.workloads`` and the namespace's
PodDisruptionBudgets) and from each store's own source: a store that does not
answer within its timeout fails its ``A.dependencies.*`` check instead of turning
it Unknown. The api must also survive a node's loss and a drain: two replicas at
least, kept apart, under one disruption budget.

What it must not do: judge the stores' contents (dimension B does), the
Deployments' shutdown settings (dimension F does) or their pod security
(dimension G, ``workload_security``), or do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from payscope_operator.api import secret_references, spec, status
from payscope_operator.audit import context, registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import kubernetes, neo4j, pinecone, postgres, s3
from payscope_operator.kube import policies, workloads

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()
_ALL_SERVICES = "A/Docker Compose/All services defined (postgres, redis, minio, neo4j, api, worker, ingestion)"
_RESTARTS = "A/Docker Compose/Restart policies"
RETIRED = {
    "A.workloads.restart_policy": "A Deployment's pod template accepts only restartPolicy Always (the API server"
    " refuses any other value), so the check could never fail. A declared Deployment that exists restarts its"
    " containers (A.workloads.*_available); a hung one is restarted by its liveness probe (A.workloads.probes).",
}
"""Ids of checks removed from the catalog, and why: never reused; waivers naming them are accepted and inert."""


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
    if facts.observed_generation < facts.generation:
        return Finding.failed(
            f"Deployment {name}'s rollout has not been observed yet (observedGeneration {facts.observed_generation} "
            f"< generation {facts.generation}): its replica counts describe an older spec.",
            evidence=f"{where}, generation {facts.generation}, observedGeneration {facts.observed_generation}",
        )
    if facts.updated_replicas < facts.replicas:
        return Finding.failed(
            f"Deployment {name} is rolling out: {facts.updated_replicas} of {facts.replicas} replicas run the "
            "current template.",
            evidence=f"{where}, {facts.updated_replicas} updated",
        )
    if not facts.available:
        return Finding.failed(
            f"Deployment {name} has {facts.available_replicas} of {facts.replicas} replicas available.", evidence=where
        )
    return Finding.passed(f"Deployment {name} has all {facts.replicas} replicas available.", evidence=where)


_PASSES = "availableReplicas >= spec.replicas > 0, once observedGeneration and updatedReplicas caught up with the spec."


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
    passes_when=_PASSES,
    covers=(_ALL_SERVICES, _RESTARTS, "F/Health Checks/API health check"),
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
    passes_when=_PASSES,
    covers=(_ALL_SERVICES, _RESTARTS, "F/Health Checks/Worker health check"),
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
    passes_when=_PASSES,
    covers=(_ALL_SERVICES, _RESTARTS, "F/Health Checks/Ingestion health check"),
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
        registry.Cover("A/Startup & Dependencies/Graceful startup behavior", Grade.INFERRED),
        registry.Cover("A/Docker Compose/Dependency ordering (depends_on)", Grade.INFERRED),
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


# The api survives a node's loss and a drain: replicas, spread over nodes, a disruption budget. -----

_NODE_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")


def _api(deployments: dict[str, workloads.DeploymentFacts | None]) -> workloads.DeploymentFacts | Finding:
    facts = deployments.get("api")
    if facts is None:
        return Finding.unknown("The api Deployment does not exist, so there is nothing to judge.")
    return facts


@CHECKS.check(
    "A.workloads.api_replicas",
    fix="Set the api Deployment's spec.replicas to 2 or more (or let an autoscaler keep at least 2).",
    source=kubernetes.WORKLOADS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The api Deployment asks for at least two replicas.",
    passes_when="spec.replicas >= 2, so one pod's restart, eviction or node loss leaves the API serving.",
    applies=lambda s: "api" in kubernetes.declared(s),
)
def api_replicas(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    api = _api(evidence.deployments)
    if isinstance(api, Finding):
        return api
    where = f"deployment/{api.name}: spec.replicas {api.replicas}"
    if api.replicas < 2:
        return Finding.failed(
            f"Deployment {api.name} runs {api.replicas} replica(s): run at least 2, so a restart or a drain does not"
            " take the API down.",
            where,
        )
    return Finding.passed(f"Deployment {api.name} runs {api.replicas} replicas.", where)


@CHECKS.check(
    "A.workloads.api_spread",
    fix="Add a topologySpreadConstraint (maxSkew 1, topologyKey kubernetes.io/hostname) or a podAntiAffinity"
    " term selecting the api's own pod labels.",
    source=kubernetes.WORKLOADS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The api's pods are kept apart: pod anti-affinity or a topology spread over nodes or zones.",
    passes_when="A podAntiAffinity term (required or preferred) or a topologySpreadConstraint on"
    " kubernetes.io/hostname or topology.kubernetes.io/zone whose selector matches the api's own pod labels.",
    applies=lambda s: "api" in kubernetes.declared(s),
)
def api_spread(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    api = _api(evidence.deployments)
    if isinstance(api, Finding):
        return api
    labels = api.pod_labels
    spreading = [
        t for t in api.spread if t.topology_key in _NODE_KEYS and t.selector is not None and t.selector.matches(labels)
    ]
    where = f"deployment/{api.name} pod template (labels {', '.join(f'{k}={v}' for k, v in api.labels) or 'none'})"
    if spreading:
        shown = "; ".join(f"{t.kind} on {t.topology_key}" for t in spreading)
        return Finding.passed(f"The api's replicas are spread: {shown}.", where)
    ignored = [f"{t.kind} on {t.topology_key} selecting {t.selector}" for t in api.spread]
    why = f" (these do not select its own pods over nodes: {'; '.join(ignored)})" if ignored else ""
    return Finding.failed(
        f"Nothing keeps the api's replicas off one node{why}: add a topologySpreadConstraint or a"
        " podAntiAffinity on kubernetes.io/hostname selecting the api's pod labels.",
        where,
    )


def _budget_problem(budget: policies.DisruptionBudgetFacts, replicas: int) -> tuple[str, bool] | None:
    """What is wrong with a budget for ``replicas`` pods, and whether it is only a warning; None: it protects."""
    allowed = budget.allowed_disruptions(replicas)
    if allowed is None:
        return f"{budget.name} sets neither minAvailable nor maxUnavailable", False
    if allowed >= replicas:
        return f"{budget.name} lets all {replicas} pods go at once", False
    if allowed <= 0:
        return f"{budget.name} lets no pod go: node drains wait on it forever", True
    return None


@CHECKS.check(
    "A.workloads.api_pdb",
    fix="Create one PodDisruptionBudget selecting the api's pod labels with minAvailable: 1 (or maxUnavailable:"
    " 1), and delete any other that selects them.",
    source=kubernetes.BUDGETS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Exactly one PodDisruptionBudget selects the api's pods and keeps some of them through a drain.",
    passes_when="One PodDisruptionBudget in the namespace selects the api's pod labels and allows between 1 and"
    " replicas-1 disruptions (none at all: Warn, drains hang).",
    applies=lambda s: "api" in kubernetes.declared(s),
)
def api_pdb(evidence: kubernetes.BudgetEvidence, desired: spec.PayScopeSpec) -> Finding:
    api = _api(evidence.deployments)
    if isinstance(api, Finding):
        return api
    covering = [b for b in evidence.budgets if b.selects(api.pod_labels)]
    where = f"{len(evidence.budgets)} PodDisruptionBudget(s) matched against deployment/{api.name}'s pod labels"
    if not covering:
        return Finding.failed(
            f"No PodDisruptionBudget selects the api's pods: a node drain may evict all {api.replicas} at once."
            " Add one with minAvailable: 1 (or maxUnavailable: 1) selecting the api's pod labels.",
            where,
        )
    if len(covering) > 1:
        names = ", ".join(b.name for b in covering)
        return Finding.failed(
            f"{len(covering)} PodDisruptionBudgets select the api's pods ({names}): the eviction API refuses to"
            " evict a pod with more than one, so drains hang. Keep one.",
            where,
        )
    problem = _budget_problem(covering[0], api.replicas)
    if problem is None:
        return Finding.passed(
            f"PodDisruptionBudget {covering[0].name} keeps part of the api up through a drain.", where
        )
    text, warning = problem
    return (Finding.warned if warning else Finding.failed)(f"PodDisruptionBudget {text}.", where)


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
