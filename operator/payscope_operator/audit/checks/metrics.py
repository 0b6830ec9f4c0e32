"""Dimension F's metrics: ``/metrics`` families, judged by what they count, not only by their presence.

Why this module exists: on-call engineers read PayScope's request, error, latency
and agent metrics in dashboards and alerts; a family that is exposed but never
moves fools both. So each required family is judged by effect: ``/metrics`` is
scraped around requests whose effect the operator knows (``payscope.status``
scrapes twice, the second scrape counting the first; ``payscope.access`` scrapes
before and after its refused probes, whose 401/403/422 answers must be counted by
``payscope_errors_total``; ``payscope.chat`` before and after its queries, which
must be counted by the agent families). A counter that went down between two
scrapes (a restart, or another replica answering) proves nothing: Unknown. The
two families judged on the access and chat sources read their own scrapes
(dependencies never span sources, which are gathered at different intervals).

What it must not do: send requests (sources do), judge the health endpoints
(``observability``), or do I/O in an evaluate function.
"""

from __future__ import annotations

from collections.abc import Mapping

from payscope_operator.api import spec, status
from payscope_operator.audit import probes, registry
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import model as api_model

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
"""Required families (contract section 9): type and the labels their samples must carry (once samples exist)."""
RECOMMENDED_FAMILIES: tuple[str, ...] = (
    "payscope_auth_failures_total",
    "payscope_intent_fallbacks_total",
    "payscope_db_queries_total",
    "payscope_db_query_duration_seconds",
    "payscope_inflight_requests",
    "payscope_build_info",
)
"""Families the contract recommends: their absence is a warning."""
METRICS_MEDIA_TYPES = ("text/plain", "application/openmetrics-text")
ENDPOINT = "F.metrics.endpoint"
"""The check every judgement of metric families depends on: /metrics answers parseable Prometheus text."""
REFUSED_KIND = ("kind", "invalid_token")
"""The series of payscope_errors_total every 401 of the access probes must move (contract section 0)."""
AGENT_FAMILIES = ("payscope_agent_requests_total", "payscope_agent_latency_seconds")


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


def _shape(metrics: api_model.Metrics, names: tuple[str, ...]) -> list[str]:
    """What is wrong with the families ``names`` in one scrape: missing, another type, labels lacking."""
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
    return problems


def _counted(metrics: api_model.Metrics, name: str, series: tuple[str, str] | None = None) -> float:
    family = metrics.families.get(name)
    if family is None:
        return 0.0
    return family.total if series is None else family.counted(*series)


def _moved(scrapes: payscope_api.Scrapes, names: tuple[str, ...], cause: str) -> Finding | None:
    """None when every family in ``names`` counted more after ``cause`` than before; else why not."""
    before, after = scrapes.before, scrapes.after
    deltas = {n: _counted(after, n) - _counted(before, n) for n in names}
    where = f"GET /metrics before and after {cause}: {', '.join(names)}"  # no figures: they move every pass
    if any(delta < 0 for delta in deltas.values()):
        down = ", ".join(n for n, delta in deltas.items() if delta < 0)
        return Finding.unknown(
            f"{down} went down between the scrapes around {cause}: PayScope restarted, or another replica answered "
            "the second scrape, so what it counted cannot be compared.",
            evidence=where,
        )
    still = [n for n, delta in deltas.items() if delta <= 0]
    if still:
        return Finding.failed(
            f"{', '.join(still)} did not move across {cause}: a family that exists but never counts shows nothing "
            "on a dashboard; count every request where it happens.",
            evidence=where,
        )
    return None


def _unscraped(scrapes: payscope_api.Scrapes | None) -> Finding | None:
    if scrapes is None:
        return Finding.unknown("/metrics was not scraped around the probes.")
    for metrics in (scrapes.before, scrapes.after):
        if metrics.reply.status != 200 or metrics.problem is not None:
            return Finding.unknown(f"/metrics could not be read around the probes: {metrics.reply.describe()}.")
    return None


def _families_pass(names: tuple[str, ...], effect: str) -> str:
    types = ", ".join(f"{n} a {FAMILIES[n][0]}" for n in names)
    labels = sorted(set().union(*(FAMILIES[n][1] for n in names)))
    return f"{types}, with the labels {', '.join(labels)} once they have samples; {effect}."


def _by_two_scrapes(evidence: StatusEvidence, name: str, what: str) -> Finding:
    """The family's shape, and that it counted the first of two scrapes (a request like any other)."""
    where = f"GET /metrics → 200: {name}"
    problems = _shape(evidence.metrics, (name,))
    if problems:
        return Finding.failed(f"Expose {what}: " + "; ".join(problems) + ".", evidence=where)
    again = evidence.metrics_again
    if again is None or again.reply.status != 200:
        return Finding.unknown(f"The second scrape of /metrics was not answered, so {name} was not seen to count.")
    moved = _moved(payscope_api.Scrapes(evidence.metrics, again), (name,), "one scrape of /metrics")
    if moved is not None:
        return moved
    return Finding.passed(f"{what.capitalize()} count requests ({name} counted the first of two scrapes).", where)


@CHECKS.check(
    "F.metrics.requests",
    fix="Export http_requests_total as a counter labelled method, route and status, incremented for every"
    " answered request.",
    source=payscope_api.STATUS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The request metrics on GET /metrics: http_requests_total, scraped twice.",
    passes_when=_families_pass(("http_requests_total",), "it counts the first scrape by the second"),
    covers=("F/Metrics/Request metrics",),
    depends_on=(ENDPOINT,),
)
def request_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _by_two_scrapes(evidence, "http_requests_total", "request metrics")


@CHECKS.check(
    "F.metrics.latency",
    fix="Export http_request_duration_seconds as a histogram labelled method and route, observing every request.",
    source=payscope_api.STATUS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The latency metrics on GET /metrics: http_request_duration_seconds, scraped twice.",
    passes_when=_families_pass(("http_request_duration_seconds",), "it observes the first scrape by the second"),
    covers=("F/Metrics/Latency metrics",),
    depends_on=(ENDPOINT,),
)
def latency_metrics(evidence: StatusEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _by_two_scrapes(evidence, "http_request_duration_seconds", "latency metrics")


@CHECKS.check(
    "F.metrics.errors",
    fix="Count every error answer (4xx and 5xx) in payscope_errors_total, labelled component and kind (the"
    " error code).",
    source=payscope_api.ACCESS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="payscope_errors_total on GET /metrics, scraped before and after the access probes PayScope refuses.",
    passes_when=_families_pass(
        ("payscope_errors_total",), "its kind=invalid_token series grows across the refused forged tokens"
    ),
    covers=("F/Metrics/Error metrics", "F/Logging/Error logging"),
)
def error_metrics(evidence: payscope_api.AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    name = "payscope_errors_total"
    unscraped = _unscraped(evidence.metrics)
    if unscraped is not None or evidence.metrics is None:
        return unscraped or Finding.unknown("/metrics was not scraped around the probes.")
    problems = _shape(evidence.metrics.after, (name,))
    if problems:
        return Finding.failed("Expose error metrics: " + "; ".join(problems) + ".", evidence=f"GET /metrics: {name}")
    refused = sum(1 for r in evidence.replies.values() if r.status in (401, 403, 422))
    if not refused:
        return Finding.unknown("PayScope refused none of the access probes, so no error could be counted.")
    cause = f"{refused} refused probe requests"
    moved = _moved(evidence.metrics, (name,), cause)
    if moved is not None:
        return moved
    before, after = evidence.metrics.before, evidence.metrics.after
    grew = _counted(after, name, REFUSED_KIND) - _counted(before, name, REFUSED_KIND)
    where = f"GET /metrics before and after {cause}: {name}"
    forged = sum(1 for p in probes.ALL if p.forges and p.key in evidence.replies and evidence.reply(p).status == 401)
    if grew <= 0 and not forged:
        return Finding.unknown(
            f"{name} counted the {cause}, but no forged token was answered 401 between the scrapes, so whether"
            ' they are counted under kind="invalid_token" is not known.',
            evidence=where,
        )
    if grew <= 0:
        return Finding.warned(
            f'{name} counted the refusals, but not under kind="invalid_token": label errors with the error code '
            "of the answer (contract section 9).",
            evidence=where,
        )
    return Finding.passed(f"{name} counted the {cause}, the forged tokens under kind=invalid_token.", where)


@CHECKS.check(
    "F.metrics.agents",
    fix="Count every agent call in payscope_agent_requests_total (intent, outcome) and observe its time in"
    " payscope_agent_latency_seconds.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=f"The agent metrics on GET /metrics ({', '.join(AGENT_FAMILIES)}), scraped before and after the chat probes.",
    passes_when=_families_pass(AGENT_FAMILIES, "both grow across the chat probes PayScope answered"),
    covers=("F/Metrics/Agent metrics", "D/Agent Coverage/Error handling in agents"),
)
def agent_metrics(evidence: payscope_api.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    unscraped = _unscraped(evidence.metrics)
    if unscraped is not None or evidence.metrics is None:
        return unscraped or Finding.unknown("/metrics was not scraped around the probes.")
    problems = _shape(evidence.metrics.after, AGENT_FAMILIES)
    if problems:
        where = f"GET /metrics: {', '.join(AGENT_FAMILIES)}"
        return Finding.failed("Expose agent metrics: " + "; ".join(problems) + ".", evidence=where)
    answered = len(evidence.answered())
    if not answered:
        return Finding.unknown("No chat probe was answered 200, so no agent is known to have run.")
    cause = f"{answered} answered chat probes"
    moved = _moved(evidence.metrics, AGENT_FAMILIES, cause)
    if moved is not None:
        return moved
    return Finding.passed(f"The agent metrics counted the {cause}.", evidence=f"GET /metrics before and after {cause}")


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
