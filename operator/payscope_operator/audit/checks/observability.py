"""Dimension F, observability: ``/metrics`` families, health and readiness, component health, logs, shutdown.

Why this module exists: on-call engineers depend on PayScope exposing request,
error, latency and agent metrics, on honest health and readiness endpoints, on
logs a machine can parse at a sane level, and on pods that drain before they
stop. Evidence: ``payscope.status`` (``/healthz``, ``/readyz``, ``/metrics``),
``payscope.admin`` (worker and ingestion health from ``/admin/pipeline``, log
settings from ``/admin/runtime``: Reported) and the Deployments of
``spec.workloads`` (grace period, preStop). Metric families are judged only once
``/metrics`` itself passed (``depends_on``).

What it must not do: read pod logs (it judges the log format and level PayScope
declares; reading the lines themselves would need pods/log access and is left
to a log probe), send requests (sources do), or do I/O in an evaluate function.
"""

from __future__ import annotations

from collections.abc import Mapping

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import kubernetes, payscope_api
from payscope_operator.backends.payscope_api import model as api_model
from payscope_operator.kube import workloads

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
StatusEvidence = payscope_api.StatusEvidence
CHECKS = registry.Registry()

FAMILIES: Mapping[str, tuple[str, frozenset[str]]] = {
    "http_requests_total": ("counter", frozenset({"method", "route", "status"})),
    "http_request_duration_seconds": ("histogram", frozenset({"method", "route"})),
    "payscope_errors_total": ("counter", frozenset({"component", "kind"})),
    "payscope_agent_requests_total": ("counter", frozenset({"intent", "outcome"})),
    "payscope_agent_latency_seconds": ("histogram", frozenset({"intent"})),
}
"""Required families (contract version 1, section 9): type and the labels their samples must carry
(checked once samples exist)."""
COUNTING = "http_requests_total"
"""The counter that must grow between two scrapes (the first scrape is itself a request)."""
RECOMMENDED_FAMILIES: tuple[str, ...] = (
    "payscope_auth_failures_total",
    "payscope_intent_fallbacks_total",
    "payscope_db_queries_total",
    "payscope_db_query_duration_seconds",
    "payscope_inflight_requests",
    "payscope_build_info",
)
"""Families contract version 1 recommends: their absence is a warning."""
METRICS_MEDIA_TYPES = ("text/plain", "application/openmetrics-text")
PRODUCTION_LOG_LEVELS = ("INFO", "WARNING", "ERROR")
VERBOSE_LOG_LEVELS = ("DEBUG", "TRACE")
MIN_GRACE_SECONDS = 10
ENDPOINT = "F.metrics.endpoint"
"""The check every judgement of metric families depends on: /metrics answers parseable Prometheus text."""


@CHECKS.check(
    ENDPOINT,
    fix="Expose Prometheus text on GET /metrics of the API.",
    source=payscope_api.STATUS,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="GET /metrics on PayScope's API.",
    passes_when="200, Prometheus text (or OpenMetrics) that parses into at least one family.",
    covers=("F/Metrics/Prometheus /metrics endpoint",),
)
def metrics_endpoint(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    metrics, reply = evidence.metrics, evidence.metrics.reply
    where = f"{reply.describe()} ({reply.content_type or 'no content type'})"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status != 200:
        return Finding.failed(f"GET /metrics answered {reply.status}: expose Prometheus metrics there.", evidence=where)
    if reply.content_type not in METRICS_MEDIA_TYPES:
        return Finding.failed(f"GET /metrics is served as {reply.content_type!r}, not Prometheus text.", evidence=where)
    if metrics.problem is not None or not metrics.families:
        return Finding.failed(f"GET /metrics is {metrics.problem or 'empty'}: fix the exporter.", evidence=where)
    return Finding.passed(f"GET /metrics exposes {len(metrics.families)} metric families.", evidence=where)


def _families(evidence: StatusEvidence, names: tuple[str, ...], what: str) -> Finding:
    metrics, problems = evidence.metrics, []
    for name in names:
        kind, labels = FAMILIES[name]
        family = metrics.families.get(name)
        if family is None:
            problems.append(f"{name} is missing")
        elif family.type != kind:
            problems.append(f"{name} is a {family.type}, not a {kind}")
        elif family.samples and not labels <= family.labels:
            problems.append(f"{name} lacks label(s) {', '.join(sorted(labels - family.labels))}")
    again = evidence.metrics_again
    if COUNTING in names and not problems and again is not None and again.reply.status == 200:
        before, after = metrics.families[COUNTING].total, again.families.get(COUNTING)
        if after is None or after.total <= before:
            problems.append(
                f"{COUNTING} did not grow between two scrapes ({before:g} → "
                f"{after.total if after else 'missing'}), so it does not count requests"
            )
    where = f"GET /metrics → 200: {', '.join(names)}"
    if problems:
        return Finding.failed(f"Expose {what}: " + "; ".join(problems) + ".", evidence=where)
    return Finding.passed(f"{what.capitalize()} are exposed ({', '.join(names)}).", evidence=where)


def _families_pass(names: tuple[str, ...]) -> str:
    types = ", ".join(f"{n} a {FAMILIES[n][0]}" for n in names)
    labels = sorted(set().union(*(FAMILIES[n][1] for n in names)))
    carry = f"; once they have samples, these carry the labels {', '.join(labels)}" if labels else ""
    carry += f"; {COUNTING} grows between two scrapes" if COUNTING in names else ""
    return f"{types}{carry}."


@CHECKS.check(
    "F.metrics.requests",
    fix="Export http_requests_total as a counter labelled method, route and status.",
    source=payscope_api.STATUS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The request metrics on GET /metrics: http_requests_total.",
    passes_when=_families_pass(("http_requests_total",)),
    covers=("F/Metrics/Request metrics",),
    depends_on=(ENDPOINT,),
)
def request_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _families(evidence, ("http_requests_total",), "request metrics")


@CHECKS.check(
    "F.metrics.errors",
    fix="Export payscope_errors_total as a counter labelled component and kind, incremented on every error answer.",
    source=payscope_api.STATUS,
    severity=Severity.MEDIUM,
    grade=Grade.INFERRED,
    title="The error metrics on GET /metrics: payscope_errors_total.",
    passes_when=_families_pass(("payscope_errors_total",)),
    covers=("F/Metrics/Error metrics", "F/Logging/Error logging"),
    depends_on=(ENDPOINT,),
)
def error_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _families(evidence, ("payscope_errors_total",), "error metrics")


@CHECKS.check(
    "F.metrics.latency",
    fix="Export http_request_duration_seconds as a histogram labelled method and route.",
    source=payscope_api.STATUS,
    severity=Severity.MEDIUM,
    grade=Grade.INFERRED,
    title="The latency metrics on GET /metrics: http_request_duration_seconds.",
    passes_when=_families_pass(("http_request_duration_seconds",)),
    covers=("F/Metrics/Latency metrics",),
    depends_on=(ENDPOINT,),
)
def latency_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _families(evidence, ("http_request_duration_seconds",), "latency metrics")


AGENT_FAMILIES = ("payscope_agent_requests_total", "payscope_agent_latency_seconds")


@CHECKS.check(
    "F.metrics.agents",
    fix="Export payscope_agent_requests_total (counter) and payscope_agent_latency_seconds (histogram),"
    " labelled intent and outcome.",
    source=payscope_api.STATUS,
    severity=Severity.MEDIUM,
    grade=Grade.INFERRED,
    title=f"The agent metrics on GET /metrics: {', '.join(AGENT_FAMILIES)}.",
    passes_when=_families_pass(AGENT_FAMILIES),
    covers=("F/Metrics/Agent metrics", "D/Agent Coverage/Error handling in agents"),
    depends_on=(ENDPOINT,),
)
def agent_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _families(evidence, AGENT_FAMILIES, "agent metrics")


@CHECKS.check(
    "F.metrics.recommended",
    fix="Export the recommended families listed in the finding (optional: a missing one only warns).",
    source=payscope_api.STATUS,
    severity=Severity.LOW,
    grade=Grade.INFERRED,
    title=f"The recommended families {', '.join(RECOMMENDED_FAMILIES)} on GET /metrics.",
    passes_when="All are exposed (a missing one is a Warn, never a Fail).",
    depends_on=(ENDPOINT,),
)
def recommended_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    missing = [name for name in RECOMMENDED_FAMILIES if name not in evidence.metrics.families]
    where = f"GET /metrics → 200: {len(RECOMMENDED_FAMILIES) - len(missing)}/{len(RECOMMENDED_FAMILIES)} recommended"
    if missing:
        return Finding.warned(f"Recommended metric families are missing: {', '.join(missing)}.", evidence=where)
    return Finding.passed("Every recommended metric family is exposed.", evidence=where)


def _health(health: api_model.Health, what: str) -> Finding:
    reply = health.reply
    where = f"{reply.describe()}: status={health.state!r}"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    failing = sorted(name for name, state in health.checks.items() if state not in ("ok", "disabled"))
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
    grade=Grade.REPORTED,
    title="GET /readyz (PayScope's own check of each dependency).",
    passes_when='200 with {"status": "ok"} and every entry of checks ok or disabled.',
    covers=("F/Health Checks/Dependency checks", "E/Endpoints/Health endpoints"),
)
def health_dependencies(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _health(evidence.readyz, "readiness")


@CHECKS.check(
    "F.health.worker",
    fix="Start at least one Celery worker and make it answer the health check (health.worker in /admin/pipeline).",
    source=payscope_api.PIPELINE,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="Celery worker health as GET /admin/pipeline reports it (health.worker).",
    passes_when="status ok with at least one worker online.",
    covers=("F/Health Checks/Worker health check",),
)
def health_worker(facts: api_model.Pipeline, desired: spec.PayScopeSpec) -> Finding:
    where = f"GET /admin/pipeline → 200: health.worker={facts.worker_status!r}, online={facts.workers_online}"
    if facts.worker_status != "ok" or not facts.workers_online:
        return Finding.failed(
            "No healthy Celery worker is online: tasks queue up unprocessed; check the worker Deployment and its "
            "connection to the broker.",
            evidence=where,
        )
    return Finding.passed(f"{facts.workers_online:g} Celery workers are online and healthy.", evidence=where)


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


@CHECKS.check(
    "F.logging.structured",
    fix="Log as JSON, one object per line (logging.format json).",
    source=payscope_api.RUNTIME,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="The log format PayScope declares in GET /admin/runtime (logging.format).",
    passes_when="json (one JSON object per line).",
    covers=("F/Logging/Structured logging",),
)
def log_format(runtime: api_model.Runtime, desired: spec.PayScopeSpec) -> Finding:
    where = f"GET /admin/runtime → 200: logging.format={runtime.log_format!r}"
    if runtime.log_format != "json":
        return Finding.failed(
            "PayScope does not log one JSON object per line: log aggregation cannot index its fields; switch its "
            "log formatter to JSON.",
            evidence=where,
        )
    return Finding.passed("PayScope logs one JSON object per line.", evidence=where)


@CHECKS.check(
    "F.logging.level",
    fix="Run with log level INFO or higher in production.",
    source=payscope_api.RUNTIME,
    severity=Severity.LOW,
    grade=Grade.REPORTED,
    title="The log level PayScope declares in GET /admin/runtime (logging.level).",
    passes_when=f"One of {', '.join(PRODUCTION_LOG_LEVELS)} (DEBUG or TRACE: Warn).",
    covers=("F/Logging/Log levels appropriate",),
)
def log_level(runtime: api_model.Runtime, desired: spec.PayScopeSpec) -> Finding:
    level = (runtime.log_level or "").upper()
    where = f"GET /admin/runtime → 200: logging.level={runtime.log_level!r}"
    if level in PRODUCTION_LOG_LEVELS:
        return Finding.passed(f"PayScope logs at {level}.", evidence=where)
    if level in VERBOSE_LOG_LEVELS:
        return Finding.warned(
            f"PayScope logs at {level} in production: verbose logs cost money and may carry tenant data; use INFO.",
            evidence=where,
        )
    return Finding.failed(f"PayScope declares no known log level ({runtime.log_level!r}).", evidence=where)


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
