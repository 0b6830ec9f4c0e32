"""Dimension F, observability: health and readiness, component health, shutdown.

Why this module exists: on-call engineers depend on honest health and readiness
endpoints, on workers and an ingestion service that are alive, and on pods that
drain before they stop. Evidence: ``payscope.status`` (``/healthz``, ``/readyz``
and its named entries), ``celery.workers`` (the workers answering over the
broker), ``payscope.admin`` (the ingestion service's health from
``/admin/pipeline``: Reported, nothing better reaches it) and the Deployments of
``spec.workloads`` (grace period, preStop). The metrics are judged in
``metrics``, the logs in ``pods``.

What it must not do: send requests (sources do), or do I/O in an evaluate function.
"""

from __future__ import annotations

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import celery, kubernetes, payscope_api
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.kube import workloads

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
StatusEvidence = payscope_api.StatusEvidence
CHECKS = registry.Registry()

MIN_GRACE_SECONDS = 10
READINESS_OK = ("ok", "disabled")


def _health(health: api_model.Health, what: str) -> Finding:
    reply = health.reply
    where = f"{reply.describe()}: status={health.state!r}"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    failing = sorted(name for name, state in health.checks.items() if state not in READINESS_OK)
    if what == "readiness" and reply.status == 200 and health.state == "ok" and not health.checks:
        return Finding.unknown(
            "GET /readyz answered ok but names no dependency in checks: a readiness that checks nothing cannot "
            "be told from one that checks everything (contract section 2.2).",
            evidence=where,
        )
    if reply.status == 200 and health.state == "ok" and not failing:
        detail = f" ({len(health.checks)} dependencies ok)" if health.checks else ""
        return Finding.passed(f"PayScope's API reports {what} ok{detail}.", evidence=where)
    if what == "liveness":
        return Finding.failed(
            f"GET /healthz answered {reply.status} (status {health.state!r}): the API process is unhealthy; "
            "check its logs and restart it.",
            evidence=where,
        )
    named = f": {', '.join(f'{n}={health.checks[n]}' for n in failing)}" if failing else ""
    return Finding.failed(
        f"PayScope is not ready (GET /readyz answered {reply.status}){named}: restore those dependencies.",
        evidence=where + (f", {', '.join(failing)} failing" if failing else ""),
    )


@CHECKS.check(
    "F.health.api",
    fix='Serve GET /healthz with 200 {"status": "ok"} while the process lives.',
    source=payscope_api.STATUS,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="GET /healthz (liveness of the API process).",
    passes_when='200 with {"status": "ok"}.',
    covers=("F/Health Checks/API health check", "E/Endpoints/Health endpoints"),
)
def health_api(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _health(evidence.healthz, "liveness")


@CHECKS.check(
    "F.health.dependencies",
    fix="Make GET /readyz report every dependency ok (the finding names the one that is not), or fix that dependency.",
    source=payscope_api.STATUS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="GET /readyz: the readiness gate the API's pods are routed by (A.workloads.probe_paths), as it answers now.",
    passes_when='200 with {"status": "ok"}, at least one entry in checks, and every entry ok or disabled (no entry: '
    "Unknown).",
    covers=("F/Health Checks/Dependency checks", "E/Endpoints/Health endpoints"),
)
def health_dependencies(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _health(evidence.readyz, "readiness")


def expected_entries(desired: spec.PayScopeSpec) -> dict[str, str]:
    """The /readyz entries the spec's stores call for, each with the spec section that calls for it."""
    wanted: dict[str, str] = {}
    if desired.postgres is not None:
        wanted["postgres"] = "spec.postgres"
        if desired.postgres.migrations is not None:
            wanted["migrations"] = "spec.postgres.migrations"
    if desired.redis is not None:
        wanted["redis"] = "spec.redis"
    if desired.neo4j is not None:
        wanted |= {"neo4j": "spec.neo4j", "neo4j_schema": "spec.neo4j (schema validated at start-up)"}
    if desired.pinecone is not None:
        wanted |= {"pinecone": "spec.pinecone", "pinecone_index": "spec.pinecone (index validated at start-up)"}
    if desired.object_storage is not None:
        wanted["object_storage"] = "spec.objectStorage"
    return wanted


@CHECKS.check(
    "F.health.readiness_entries",
    fix="List one /readyz entry for every store the resource declares (neo4j_schema and pinecone_index for"
    " the validated schema and index), and make each ok.",
    source=payscope_api.STATUS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The named entries of GET /readyz against the stores the spec declares: each store, its migrations, "
    "and the Neo4j schema and Pinecone index PayScope validates at start-up (neo4j_schema, pinecone_index).",
    passes_when="Every entry the spec calls for is listed and ok (missing: Fail; disabled: Warn). Needs a store "
    "section in the spec.",
    covers=(
        "B/Neo4j/Schema validation on startup",
        "B/Pinecone/Index validation on startup",
        "A/Startup & Dependencies/Dependency readiness checks",
        "F/Health Checks/Dependency checks",
    ),
    applies=lambda s: bool(expected_entries(s)),
)
def readiness_entries(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    readyz = evidence.readyz
    if readyz.reply.status not in (200, 503) or readyz.reply.body is None:
        return Finding.unknown(f"GET /readyz gave no readiness document ({readyz.reply.describe()}).")
    wanted = expected_entries(desired)
    listed = {name: readyz.checks[name] for name in wanted if name in readyz.checks}
    where = f"{readyz.reply.describe()}: " + ", ".join(f"{n}={s}" for n, s in sorted(readyz.checks.items()))
    missing = [f"{name} ({why})" for name, why in wanted.items() if name not in readyz.checks]
    if missing:
        return Finding.failed(
            f"GET /readyz does not gate on {', '.join(missing)}: a pod reports ready while these are unchecked; add "
            "one readiness entry per dependency in use (contract section 2.2).",
            evidence=where,
        )
    failing = [f"{n}={s}" for n, s in listed.items() if s not in READINESS_OK]
    if failing:
        return Finding.failed(f"Readiness entries report {', '.join(failing)}: restore them.", evidence=where)
    disabled = [n for n, s in listed.items() if s == "disabled"]
    if disabled:
        return Finding.warned(
            f"GET /readyz lists {', '.join(disabled)} as disabled although the spec declares them: PayScope does not "
            "check them before taking traffic.",
            evidence=where,
        )
    return Finding.passed(f"GET /readyz gates on all {len(listed)} entries the spec calls for.", evidence=where)


@CHECKS.check(
    "F.health.worker",
    fix="Start at least one Celery worker on the broker, with remote control enabled (Celery's default), and"
    " make it answer.",
    source=celery.WORKERS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The Celery workers on PayScope's broker, asked over Celery's remote control (the mechanism of celery "
    "inspect).",
    passes_when="At least one worker listens, and every worker listening answered.",
    covers=("F/Health Checks/Worker health check",),
)
def health_worker(evidence: celery.CeleryEvidence, desired: spec.PayScopeSpec) -> Finding:
    fleet, address = evidence.fleet, evidence.broker.address
    if fleet is None:
        return Finding.unknown(f"The workers could not be asked: {evidence.problem}.")
    hosts = ", ".join(w.hostname for w in fleet.workers) or "none"
    where = f"celery remote control on {address}: {fleet.listening} listening, answered: {hosts}"
    if not fleet.listening:
        return Finding.failed(
            f"No Celery worker listens on the broker at {address}: tasks queue up unprocessed; check the worker "
            "Deployment and its connection to the broker (and that remote control is enabled).",
            evidence=where,
        )
    if len(fleet.workers) < fleet.listening:
        return Finding.warned(
            f"{fleet.listening} workers listen but only {len(fleet.workers)} answered within "
            f"{celery.window(desired):g}s: the others are stuck or overloaded.",
            evidence=where,
        )
    return Finding.passed(f"{len(fleet.workers)} Celery worker(s) answer over the broker: {hosts}.", evidence=where)


@CHECKS.check(
    "F.health.ingestion",
    fix="Restore the ingestion service so its health (health.ingestion in /admin/pipeline) is ok.",
    source=payscope_api.PIPELINE,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="Ingestion service health as GET /admin/pipeline reports it (health.ingestion).",
    passes_when="status ok.",
    covers=("F/Health Checks/Ingestion health check",),
)
def health_ingestion(facts: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"GET /admin/pipeline → 200: health.ingestion={facts.ingestion_status!r}"
    if facts.ingestion_status != "ok":
        return Finding.failed(
            "The ingestion service reports itself unhealthy: uploads are not processed; check its Deployment.",
            evidence=where,
        )
    return Finding.passed("The ingestion service reports itself healthy.", evidence=where)


def _grace(d: workloads.DeploymentFacts) -> str | None:
    seconds = d.termination_grace_period_seconds
    if seconds is None or seconds >= MIN_GRACE_SECONDS:
        return None  # unset is the Kubernetes default, 30s
    return f"terminationGracePeriodSeconds is {seconds} (< {MIN_GRACE_SECONDS})"


@CHECKS.check(
    "F.shutdown.grace_period",
    fix="Leave terminationGracePeriodSeconds unset (30 s) or set it to at least 10.",
    source=kubernetes.WORKLOADS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The declared Deployments give their pods time to finish in-flight work on shutdown.",
    passes_when=f"terminationGracePeriodSeconds is unset (30s) or at least {MIN_GRACE_SECONDS}.",
    covers=("F/Graceful Shutdown/In-flight request completion", "F/Graceful Shutdown/Signal handling"),
)
def grace_period(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return per_object.deployments(evidence, _grace, "the termination grace period")


@CHECKS.check(
    "F.shutdown.pre_stop",
    fix="Add a lifecycle.preStop hook (e.g. sleep 5) to every container so endpoints drain before SIGTERM.",
    source=kubernetes.WORKLOADS,
    severity=Severity.LOW,
    grade=Grade.OBSERVED,
    title="Every container of the declared Deployments has a preStop hook, so endpoints drain before SIGTERM.",
    passes_when="lifecycle.preStop is set on every container.",
    covers=("F/Graceful Shutdown/Connection cleanup",),
)
def pre_stop(evidence: kubernetes.WorkloadEvidence, desired: spec.PayScopeSpec) -> Finding:
    return per_object.containers(
        evidence, lambda c: None if c.pre_stop else "no lifecycle.preStop hook", "a preStop hook"
    )


NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    registry.NotObservable(
        "F/Graceful Shutdown/Resource cleanup",
        "Whether PayScope closes pools and files happens inside the process at exit; from outside the audit sees "
        "only the grace period and preStop hook that make room for it (F.shutdown.*).",
    ),
)
