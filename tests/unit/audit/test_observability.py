"""Dimension F's API-side evaluations, table-tested: health, readiness, /metrics and runtime documents in."""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import observability
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS = {c.id: c for c in observability.CHECKS}

FAMILIES = {
    "http_requests_total": ("counter", 'http_requests_total{method="GET",route="/healthz",status="200"} 3'),
    "http_request_duration_seconds": (
        "histogram",
        'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/healthz"} 3\n'
        'http_request_duration_seconds_count{method="GET",route="/healthz"} 3\n'
        'http_request_duration_seconds_sum{method="GET",route="/healthz"} 0.01',
    ),
    "payscope_errors_total": ("counter", 'payscope_errors_total{component="api",kind="internal"} 0'),
    "payscope_agent_requests_total": ("counter", 'payscope_agent_requests_total{intent="ANOMALY",outcome="ok"} 1'),
    "payscope_agent_latency_seconds": (
        "histogram",
        'payscope_agent_latency_seconds_bucket{intent="ANOMALY",le="+Inf"} 1\n'
        'payscope_agent_latency_seconds_count{intent="ANOMALY"} 1\n'
        'payscope_agent_latency_seconds_sum{intent="ANOMALY"} 0.2',
    ),
    **{name: ("gauge", f"{name} 1") for name in observability.RECOMMENDED_FAMILIES},
}


def _exposition(families: dict[str, tuple[str, str]]) -> str:
    return "".join(f"# HELP {n} x\n# TYPE {n} {kind}\n{samples}\n" for n, (kind, samples) in families.items())


def _status(
    *,
    healthz: tuple[int | None, dict[str, Any] | None] = (200, {"status": "ok"}),
    readyz: tuple[int | None, dict[str, Any] | None] = (200, {"status": "ok", "checks": {"postgres": "ok"}}),
    metrics: str | None = None,
    metrics_status: int | None = 200,
    content_type: str = "text/plain",
    again: str | None = None,
) -> payscope_api.StatusEvidence:
    text = _exposition(FAMILIES) if metrics is None else metrics
    failure = "no answer within 5s"
    return payscope_api.StatusEvidence(
        healthz=api_model.parse_health(
            ev.reply("GET /healthz", healthz[0], healthz[1], failure=failure if healthz[0] is None else None)
        ),
        readyz=api_model.parse_health(ev.reply("GET /readyz", readyz[0], readyz[1])),
        metrics=api_model.parse_metrics(
            api_client.Reply("GET /metrics", metrics_status, content_type=content_type, text=text)
        ),
        metrics_again=api_model.parse_metrics(
            api_client.Reply("GET /metrics", 200, content_type=content_type, text=again)
        )
        if again is not None
        else None,
    )


def _without(*names: str) -> str:
    return _exposition({n: v for n, v in FAMILIES.items() if n not in names})


def _pipeline(worker: dict[str, Any], ingestion: dict[str, Any]) -> payscope_api.AdminEvidence:
    return ev.admin(pipeline={"health": {"worker": worker, "ingestion": ingestion}})


def _runtime(fmt: str | None, level: str | None) -> payscope_api.AdminEvidence:
    return ev.admin(runtime={"logging": {"format": fmt, "level": level}})


LABELLESS = _exposition({**FAMILIES, "http_requests_total": ("counter", "http_requests_total 3")})
AGENT_GAUGE = _exposition({**FAMILIES, "payscope_agent_latency_seconds": ("gauge", "payscope_agent_latency_seconds 1")})
EMPTY_COUNTER = _exposition({**FAMILIES, "http_requests_total": ("counter", "")})
OK = {"status": "ok"}
FAIL = {"status": "fail"}


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("F.metrics.endpoint", _status(), S.PASS, "families"),
        ("F.metrics.endpoint", _status(metrics_status=404), S.FAIL, "answered 404"),
        ("F.metrics.endpoint", _status(content_type="text/html"), S.FAIL, "'text/html'"),
        ("F.metrics.endpoint", _status(metrics="# TYPE x counter\nx{ 1\n"), S.FAIL, "not Prometheus text"),
        ("F.metrics.endpoint", _status(metrics=""), S.FAIL, "empty"),
        ("F.metrics.endpoint", _status(metrics_status=None), S.UNKNOWN, "GET /metrics"),
        ("F.metrics.requests", _status(), S.PASS, "http_requests_total"),
        ("F.metrics.requests", _status(metrics=_without("http_requests_total")), S.FAIL, "is missing"),
        ("F.metrics.requests", _status(metrics=LABELLESS), S.FAIL, "lacks label(s) method, route, status"),
        (
            "F.metrics.agents",
            _status(
                metrics=_exposition(
                    {
                        **FAMILIES,
                        "payscope_agent_requests_total": ("counter", 'payscope_agent_requests_total{intent="X"} 1'),
                    }
                )
            ),
            S.FAIL,
            "lacks label(s) outcome",
        ),
        ("F.metrics.requests", _status(metrics=EMPTY_COUNTER), S.PASS, "exposed"),
        ("F.metrics.errors", _status(metrics=_without("payscope_errors_total")), S.FAIL, "payscope_errors_total"),
        ("F.metrics.latency", _status(metrics=_without("http_request_duration_seconds")), S.FAIL, "is missing"),
        ("F.metrics.agents", _status(), S.PASS, "payscope_agent_latency_seconds"),
        ("F.metrics.agents", _status(metrics=_without("payscope_agent_requests_total")), S.FAIL, "is missing"),
        ("F.metrics.agents", _status(metrics=AGENT_GAUGE), S.FAIL, "is a gauge, not a histogram"),
        ("F.metrics.recommended", _status(), S.PASS, "Every recommended"),
        ("F.metrics.recommended", _status(metrics=_without("payscope_build_info")), S.WARN, "payscope_build_info"),
        ("F.health.api", _status(), S.PASS, "liveness ok"),
        ("F.health.api", _status(healthz=(500, FAIL)), S.FAIL, "answered 500"),
        ("F.health.api", _status(healthz=(200, FAIL)), S.FAIL, "status 'fail'"),
        ("F.health.api", _status(healthz=(None, None)), S.UNKNOWN, "no answer within 5s"),
        ("F.health.dependencies", _status(), S.PASS, "1 dependencies ok"),
        (
            "F.health.dependencies",
            _status(readyz=(503, {"status": "degraded", "checks": {"postgres": "fail", "redis": "ok"}})),
            S.FAIL,
            "postgres=fail",
        ),
        (
            "F.health.dependencies",
            _status(readyz=(200, {"status": "ok", "checks": {"neo4j": "disabled"}})),
            S.PASS,
            "ok",
        ),
        (
            "F.health.dependencies",
            _status(readyz=(200, {"status": "ok", "checks": {"neo4j": "fail"}})),
            S.FAIL,
            "neo4j",
        ),
        ("F.health.worker", _pipeline({"status": "ok", "online": 2}, OK), S.PASS, "2 Celery workers"),
        ("F.health.worker", _pipeline({"status": "fail", "online": 0}, OK), S.FAIL, "No healthy Celery worker"),
        ("F.health.worker", _pipeline({"status": "ok", "online": 0}, OK), S.FAIL, "No healthy Celery worker"),
        ("F.health.worker", _pipeline({}, OK), S.FAIL, "No healthy Celery worker"),
        ("F.health.ingestion", _pipeline({"status": "ok", "online": 1}, OK), S.PASS, "healthy"),
        ("F.health.ingestion", _pipeline({"status": "ok", "online": 1}, FAIL), S.FAIL, "unhealthy"),
        ("F.logging.structured", _runtime("json", "INFO"), S.PASS, "JSON object per line"),
        ("F.logging.structured", _runtime("text", "INFO"), S.FAIL, "switch its log formatter"),
        ("F.logging.level", _runtime("json", "WARNING"), S.PASS, "WARNING"),
        ("F.logging.level", _runtime("json", "DEBUG"), S.WARN, "use INFO"),
        ("F.logging.level", _runtime("json", None), S.FAIL, "no known log level"),
        ("F.logging.level", ev.admin(runtime=ev.reply("GET /admin/runtime", 404)), S.UNKNOWN, "404"),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding: registry.Finding = CHECKS[check_id].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


GROWN = _exposition({**FAMILIES, "http_requests_total": ("counter", FAMILIES["http_requests_total"][1][:-1] + "4")})


@pytest.mark.parametrize(
    ("again", "expected"),
    [(GROWN, S.PASS), (_exposition(FAMILIES), S.FAIL), (_without("http_requests_total"), S.FAIL)],
)
def test_request_counter_must_grow_between_two_scrapes(again: str, expected: status.CheckStatus) -> None:
    finding = CHECKS["F.metrics.requests"].judge(_status(again=again), ev.SPEC)
    assert finding.status == expected, finding.message
    if expected == S.FAIL:
        assert "did not grow between two scrapes" in finding.message


FAMILY_CHECKS = [c for c in CHECKS if c.startswith("F.metrics.") and c != "F.metrics.endpoint"]


@pytest.mark.parametrize("check_id", FAMILY_CHECKS)
@pytest.mark.parametrize(
    ("evidence", "fragment"),
    [
        (_status(metrics_status=500), "which is Fail: GET /metrics answered 500"),
        (_status(metrics_status=None), "which is Unknown: GET /metrics"),
        (_status(content_type="text/html"), "which is Fail: GET /metrics is served as 'text/html'"),
    ],
    ids=["500", "silent", "html"],
)
def test_families_are_judged_only_once_the_endpoint_passed(
    check_id: str, evidence: payscope_api.StatusEvidence, fragment: str
) -> None:
    result = ev.audit({payscope_api.STATUS: evidence})[check_id]
    assert (result.status, result.reason) == (S.UNKNOWN, status.CheckReason.BLOCKED_BY)
    assert result.message.startswith("Blocked by F.metrics.endpoint, which is ")
    assert fragment in result.message


def test_counter_families_are_named_as_in_their_type_line() -> None:
    metrics = _status().metrics
    assert metrics.families["http_requests_total"].type == "counter"
    assert metrics.families["http_requests_total"].labels == {"method", "route", "status"}
    assert "le" not in metrics.families["http_request_duration_seconds"].labels
    assert metrics.families["http_requests_total"].total == 3


def test_health_endpoints_cover_both_e_and_f() -> None:
    assert "E/Endpoints/Health endpoints" in CHECKS["F.health.api"].covers
    assert all(item.covers.startswith("F/") for item in observability.NOT_OBSERVABLE)
