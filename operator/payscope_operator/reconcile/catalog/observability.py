"""Dimension F, API side: ``/metrics`` families, health and readiness, component health, log settings.

Why this module exists: on-call engineers depend on PayScope exposing request,
error, latency and agent metrics, on honest health and readiness endpoints, and
on logs a machine can parse at a sane level. Evidence: ``payscope.status``
(``/healthz``, ``/readyz``, ``/metrics``) and ``payscope.admin`` (worker and
ingestion health from ``/admin/pipeline``, log settings from ``/admin/runtime``).
The Deployment side of F (probes, grace period, preStop) lives in
``infrastructure``.

What it must not do: read pod logs (it judges the log format and level PayScope
declares; reading the lines themselves would need pods/log access and is left
to a log probe), send requests (sources do), or do I/O in an evaluate function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from payscope_operator.api import spec, status
from payscope_operator.backends import payscope_api
from payscope_operator.reconcile import checks
from payscope_operator.reconcile.catalog import sources

Severity = status.Severity
Finding = checks.Finding
StatusEvidence = sources.StatusEvidence

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


def _metrics_endpoint(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    metrics, reply = evidence.metrics, evidence.metrics.reply
    where = f"{reply.describe()} ({reply.content_type or 'no content type'})"
    if reply.status is None:
        return Finding.unknown(sources.explain(reply))
    if reply.status != 200:
        return Finding.failed(f"GET /metrics answered {reply.status}: expose Prometheus metrics there.", evidence=where)
    if reply.content_type not in METRICS_MEDIA_TYPES:
        return Finding.failed(f"GET /metrics is served as {reply.content_type!r}, not Prometheus text.", evidence=where)
    if metrics.problem is not None or not metrics.families:
        return Finding.failed(f"GET /metrics is {metrics.problem or 'empty'}: fix the exporter.", evidence=where)
    return Finding.passed(f"GET /metrics exposes {len(metrics.families)} metric families.", evidence=where)


def _families(names: tuple[str, ...], what: str) -> checks.Evaluate[StatusEvidence]:
    def evaluate(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
        metrics = evidence.metrics
        if metrics.reply.status is None:
            return Finding.unknown(sources.explain(metrics.reply))
        if metrics.reply.status != 200 or metrics.problem is not None:
            return Finding.unknown("GET /metrics could not be read; see F.metrics.endpoint.")
        problems = []
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

    return evaluate


def _recommended(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    metrics = evidence.metrics
    if metrics.reply.status is None:
        return Finding.unknown(sources.explain(metrics.reply))
    if metrics.reply.status != 200 or metrics.problem is not None:
        return Finding.unknown("GET /metrics could not be read; see F.metrics.endpoint.")
    missing = [name for name in RECOMMENDED_FAMILIES if name not in metrics.families]
    where = f"GET /metrics → 200: {len(RECOMMENDED_FAMILIES) - len(missing)}/{len(RECOMMENDED_FAMILIES)} recommended"
    if missing:
        return Finding.warned(f"Recommended metric families are missing: {', '.join(missing)}.", evidence=where)
    return Finding.passed("Every recommended metric family is exposed.", evidence=where)


def _health(what: str) -> checks.Evaluate[StatusEvidence]:
    def evaluate(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
        health = evidence.healthz if what == "liveness" else evidence.readyz
        reply = health.reply
        where = f"{reply.describe()}: status={health.state!r}"
        if reply.status is None:
            return Finding.unknown(sources.explain(reply))
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

    return evaluate


def _worker(evidence: sources.AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
    facts = sources.facts_of(evidence.pipeline)
    if isinstance(facts, Finding):
        return facts
    where = f"GET /admin/pipeline → 200: health.worker={facts.worker_status!r}, online={facts.workers_online}"
    if facts.worker_status != "ok" or not facts.workers_online:
        return Finding.failed(
            "No healthy Celery worker is online: tasks queue up unprocessed; check the worker Deployment and its "
            "connection to the broker.",
            evidence=where,
        )
    return Finding.passed(f"{facts.workers_online:g} Celery workers are online and healthy.", evidence=where)


def _ingestion(evidence: sources.AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
    facts = sources.facts_of(evidence.pipeline)
    if isinstance(facts, Finding):
        return facts
    where = f"GET /admin/pipeline → 200: health.ingestion={facts.ingestion_status!r}"
    if facts.ingestion_status != "ok":
        return Finding.failed(
            "The ingestion service reports itself unhealthy: uploads are not processed; check its Deployment.",
            evidence=where,
        )
    return Finding.passed("The ingestion service reports itself healthy.", evidence=where)


def _runtime(evidence: sources.AdminEvidence) -> payscope_api.model.Runtime | Finding:
    return sources.facts_of(evidence.runtime)


def _log_format(evidence: sources.AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
    runtime = _runtime(evidence)
    if isinstance(runtime, Finding):
        return runtime
    where = f"GET /admin/runtime → 200: logging.format={runtime.log_format!r}"
    if runtime.log_format != "json":
        return Finding.failed(
            "PayScope does not log one JSON object per line: log aggregation cannot index its fields; switch its "
            "log formatter to JSON.",
            evidence=where,
        )
    return Finding.passed("PayScope logs one JSON object per line.", evidence=where)


def _log_level(evidence: sources.AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
    runtime = _runtime(evidence)
    if isinstance(runtime, Finding):
        return runtime
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


def _metric_check(
    check_id: str, names: tuple[str, ...], what: str, severity: Severity, *covers: str
) -> checks.Check[Any]:
    types = ", ".join(f"{n} a {FAMILIES[n][0]}" for n in names)
    labels = sorted(set().union(*(FAMILIES[n][1] for n in names)))
    carry = f"; once they have samples, these carry the labels {', '.join(labels)}" if labels else ""
    carry += f"; {COUNTING} grows between two scrapes" if COUNTING in names else ""
    return checks.Check(
        id=check_id,
        title=f"The {what} on GET /metrics: {', '.join(names)}.",
        passes_when=f"{types}{carry}.",
        severity=severity,
        source=sources.STATUS,
        evaluate=_families(names, what),
        covers=covers,
    )


CHECKS: tuple[checks.Check[Any], ...] = (
    checks.Check(
        id="F.metrics.endpoint",
        title="GET /metrics on PayScope's API.",
        passes_when="200, Prometheus text (or OpenMetrics) that parses into at least one family.",
        severity=Severity.HIGH,
        source=sources.STATUS,
        evaluate=_metrics_endpoint,
        covers=("F/Metrics/Prometheus /metrics endpoint",),
    ),
    _metric_check(
        "F.metrics.requests", ("http_requests_total",), "request metrics", Severity.MEDIUM, "F/Metrics/Request metrics"
    ),
    _metric_check(
        "F.metrics.errors",
        ("payscope_errors_total",),
        "error metrics",
        Severity.MEDIUM,
        "F/Metrics/Error metrics",
        "F/Logging/Error logging",
    ),
    _metric_check(
        "F.metrics.latency",
        ("http_request_duration_seconds",),
        "latency metrics",
        Severity.MEDIUM,
        "F/Metrics/Latency metrics",
    ),
    _metric_check(
        "F.metrics.agents",
        ("payscope_agent_requests_total", "payscope_agent_latency_seconds"),
        "agent metrics",
        Severity.MEDIUM,
        "F/Metrics/Agent metrics",
        "D/Agent Coverage/Error handling in agents",
    ),
    checks.Check(
        id="F.metrics.recommended",
        title=f"The recommended families {', '.join(RECOMMENDED_FAMILIES)} on GET /metrics.",
        passes_when="All are exposed (a missing one is a Warn, never a Fail).",
        severity=Severity.LOW,
        source=sources.STATUS,
        evaluate=_recommended,
    ),
    checks.Check(
        id="F.health.api",
        title="GET /healthz (liveness of the API process).",
        passes_when='200 with {"status": "ok"}.',
        severity=Severity.CRITICAL,
        source=sources.STATUS,
        evaluate=_health("liveness"),
        covers=("F/Health Checks/API health check", "E/Endpoints/Health endpoints"),
    ),
    checks.Check(
        id="F.health.dependencies",
        title="GET /readyz (PayScope's own check of each dependency).",
        passes_when='200 with {"status": "ok"} and every entry of checks ok or disabled.',
        severity=Severity.HIGH,
        source=sources.STATUS,
        evaluate=_health("readiness"),
        covers=("F/Health Checks/Dependency checks", "E/Endpoints/Health endpoints"),
    ),
    checks.Check(
        id="F.health.worker",
        title="Celery worker health as GET /admin/pipeline reports it (health.worker).",
        passes_when="status ok with at least one worker online.",
        severity=Severity.HIGH,
        source=sources.ADMIN,
        evaluate=_worker,
        covers=("F/Health Checks/Worker health check",),
    ),
    checks.Check(
        id="F.health.ingestion",
        title="Ingestion service health as GET /admin/pipeline reports it (health.ingestion).",
        passes_when="status ok.",
        severity=Severity.HIGH,
        source=sources.ADMIN,
        evaluate=_ingestion,
        covers=("F/Health Checks/Ingestion health check",),
    ),
    checks.Check(
        id="F.logging.structured",
        title="The log format PayScope declares in GET /admin/runtime (logging.format).",
        passes_when="json (one JSON object per line).",
        severity=Severity.MEDIUM,
        source=sources.ADMIN,
        evaluate=_log_format,
        covers=("F/Logging/Structured logging",),
    ),
    checks.Check(
        id="F.logging.level",
        title="The log level PayScope declares in GET /admin/runtime (logging.level).",
        passes_when=f"One of {', '.join(PRODUCTION_LOG_LEVELS)} (DEBUG or TRACE: Warn).",
        severity=Severity.LOW,
        source=sources.ADMIN,
        evaluate=_log_level,
        covers=("F/Logging/Log levels appropriate",),
    ),
)

NOT_OBSERVABLE: tuple[checks.NotObservable, ...] = (
    checks.NotObservable(
        "F/Graceful Shutdown/Resource cleanup",
        "Whether PayScope closes pools and files happens inside the process at exit; from outside the audit sees "
        "only the grace period and preStop hook that make room for it (F.shutdown.*).",
    ),
)
