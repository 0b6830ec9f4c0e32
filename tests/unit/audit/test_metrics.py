"""Dimension F's metrics checks, table-tested: scrapes around known requests in, findings out.

Each family is judged by what it counts: the request and latency families by two
scrapes (the second counts the first), the error family by the scrapes around the
refused access probes, the agent families by the scrapes around the chat probes.
A family that exists but never moves fails; a counter that went down is Unknown.
"""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import metrics
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS = {c.id: c for c in metrics.CHECKS}


def _families(
    requests: int = 3, latency: int = 3, errors: int = 0, agents: int = 1, kind: str = "invalid_token"
) -> dict[str, tuple[str, str]]:
    return {
        "http_requests_total": (
            "counter",
            f'http_requests_total{{method="GET",route="/healthz",status="200"}} {requests}',
        ),
        "http_request_duration_seconds": (
            "histogram",
            f'http_request_duration_seconds_bucket{{le="+Inf",method="GET",route="/healthz"}} {latency}\n'
            f'http_request_duration_seconds_count{{method="GET",route="/healthz"}} {latency}\n'
            'http_request_duration_seconds_sum{method="GET",route="/healthz"} 0.01',
        ),
        "payscope_errors_total": (
            "counter",
            'payscope_errors_total{component="api",kind="internal"} 0\n'
            f'payscope_errors_total{{component="api",kind="{kind}"}} {errors}',
        ),
        "payscope_agent_requests_total": (
            "counter",
            f'payscope_agent_requests_total{{intent="ANOMALY",outcome="ok"}} {agents}',
        ),
        "payscope_agent_latency_seconds": (
            "histogram",
            f'payscope_agent_latency_seconds_bucket{{intent="ANOMALY",le="+Inf"}} {agents}\n'
            f'payscope_agent_latency_seconds_count{{intent="ANOMALY"}} {agents}\n'
            'payscope_agent_latency_seconds_sum{intent="ANOMALY"} 0.2',
        ),
        **{name: ("gauge", f"{name} 1") for name in metrics.RECOMMENDED_FAMILIES},
    }


def _exposition(families: dict[str, tuple[str, str]]) -> str:
    return "".join(f"# HELP {n} x\n# TYPE {n} {kind}\n{samples}\n" for n, (kind, samples) in families.items())


def _scrape(text: str, code: int | None = 200, content_type: str = "text/plain") -> api_model.Metrics:
    failure = None if code is not None else "no answer within 5s"
    return api_model.parse_metrics(
        api_client.Reply("GET /metrics", code, failure=failure, content_type=content_type, text=text)
    )


def _without(*names: str, agents: int = 1) -> str:
    return _exposition({n: v for n, v in _families(agents=agents).items() if n not in names})


def _status(
    first: str | None = None, again: str | None = None, *, code: int | None = 200, content_type: str = "text/plain"
) -> payscope_api.StatusEvidence:
    ok = api_model.parse_health(ev.reply("GET /healthz", 200, {"status": "ok"}))
    return payscope_api.StatusEvidence(
        healthz=ok,
        readyz=ok,
        metrics=_scrape(_exposition(_families()) if first is None else first, code, content_type),
        metrics_again=_scrape(_exposition(_families(requests=4, latency=4)) if again is None else again),
    )


def _access(before: str, after: str, refused: int = 401, probe: str = "expired") -> payscope_api.AccessEvidence:
    """The scrapes around two probes: ``probe`` (a forged token) answered ``refused``, and the baseline 200."""
    replies = {probe: api_client.Reply("POST /chat/query", refused), "baseline": api_client.Reply("x", 200)}
    return payscope_api.AccessEvidence("bank-a", replies, payscope_api.Scrapes(_scrape(before), _scrape(after)))


def _chat(before: str, after: str) -> payscope_api.ChatEvidence:
    chat = ev.chat()
    return payscope_api.ChatEvidence(
        **{**chat.__dict__, "metrics": payscope_api.Scrapes(_scrape(before), _scrape(after))}
    )


E0, E5 = _exposition(_families(errors=0)), _exposition(_families(errors=5))
A1, A6 = _exposition(_families(agents=1)), _exposition(_families(agents=6))
LABELLESS = _exposition({**_families(), "http_requests_total": ("counter", "http_requests_total 3")})
AGENT_GAUGE = _exposition(
    {**_families(agents=6), "payscope_agent_latency_seconds": ("gauge", "payscope_agent_latency_seconds 1")}
)


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("F.metrics.endpoint", _status(), S.PASS, "families"),
        ("F.metrics.endpoint", _status(code=404), S.FAIL, "answered 404"),
        ("F.metrics.endpoint", _status(content_type="text/html"), S.FAIL, "'text/html'"),
        ("F.metrics.endpoint", _status("# TYPE x counter\nx{ 1\n"), S.FAIL, "not Prometheus text"),
        ("F.metrics.endpoint", _status(""), S.FAIL, "empty"),
        ("F.metrics.endpoint", _status(code=None), S.UNKNOWN, "GET /metrics"),
        ("F.metrics.requests", _status(), S.PASS, "http_requests_total counted the first of two scrapes"),
        ("F.metrics.requests", _status(_without("http_requests_total")), S.FAIL, "is missing"),
        ("F.metrics.requests", _status(LABELLESS), S.FAIL, "lacks label(s) method, route, status"),
        ("F.metrics.requests", _status(again=_exposition(_families())), S.FAIL, "did not move across one scrape"),
        (
            "F.metrics.requests",
            _status(again=_exposition(_families(requests=1))),
            S.UNKNOWN,
            "went down between the scrapes",
        ),
        ("F.metrics.latency", _status(), S.PASS, "http_request_duration_seconds counted the first"),
        ("F.metrics.latency", _status(_without("http_request_duration_seconds")), S.FAIL, "is missing"),
        ("F.metrics.latency", _status(again=_exposition(_families(requests=4))), S.FAIL, "never counts"),
        ("F.metrics.errors", _access(E0, E5), S.PASS, "the forged tokens under kind=invalid_token"),
        ("F.metrics.errors", _access(E0, E0), S.FAIL, "payscope_errors_total did not move across 1 refused"),
        ("F.metrics.errors", _access(E5, E0), S.UNKNOWN, "another replica answered the second scrape"),
        ("F.metrics.errors", _access(E0, _exposition(_families(errors=5, kind="auth"))), S.WARN, "invalid_token"),
        (
            "F.metrics.errors",
            _access(E0, _exposition(_families(errors=5, kind="auth")), probe="missing"),
            S.UNKNOWN,
            "no forged token was answered 401",
        ),
        ("F.metrics.errors", _access(E0, _without("payscope_errors_total")), S.FAIL, "is missing"),
        ("F.metrics.errors", _access(E0, E5, refused=200), S.UNKNOWN, "refused none"),
        ("F.metrics.agents", _chat(A1, A6), S.PASS, "The agent metrics counted the 5 answered chat probes"),
        ("F.metrics.agents", _chat(A1, A1), S.FAIL, "never counts"),
        ("F.metrics.agents", _chat(A1, _without("payscope_agent_requests_total", agents=6)), S.FAIL, "is missing"),
        ("F.metrics.agents", _chat(A1, AGENT_GAUGE), S.FAIL, "is a gauge, not a histogram"),
        ("F.metrics.recommended", _status(), S.PASS, "Every recommended"),
        ("F.metrics.recommended", _status(_without("payscope_build_info")), S.WARN, "payscope_build_info"),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding: registry.Finding = CHECKS[check_id].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_agents_are_unknown_when_no_chat_probe_was_answered() -> None:
    chat = ev.chat(dict.fromkeys(("DESCRIBE", "COMPARE", "ANOMALY", "FORECAST", "WHAT_IF"), ev.answer(500)))
    silent = payscope_api.ChatEvidence(**{**chat.__dict__, "metrics": payscope_api.Scrapes(_scrape(A1), _scrape(A6))})
    assert CHECKS["F.metrics.agents"].judge(silent, ev.SPEC).status == S.UNKNOWN
    unscraped = payscope_api.ChatEvidence(**{**chat.__dict__, "metrics": None})
    assert "not scraped" in CHECKS["F.metrics.agents"].judge(unscraped, ev.SPEC).message


FAMILY_CHECKS = ["F.metrics.requests", "F.metrics.latency", "F.metrics.recommended"]
"""The families judged on the status source's own scrapes; errors and agents read their sources' scrapes."""


@pytest.mark.parametrize("check_id", FAMILY_CHECKS)
@pytest.mark.parametrize(
    ("evidence", "fragment"),
    [
        (_status(code=500), "which is Fail: GET /metrics answered 500"),
        (_status(code=None), "which is Unknown: GET /metrics"),
        (_status(content_type="text/html"), "which is Fail: GET /metrics is served as 'text/html'"),
    ],
    ids=["500", "silent", "html"],
)
def test_families_are_judged_only_once_the_endpoint_passed(
    check_id: str, evidence: payscope_api.StatusEvidence, fragment: str
) -> None:
    sources: dict[registry.Source[Any], object] = {
        payscope_api.STATUS: evidence,
        payscope_api.ACCESS: _access(E0, E5),
        payscope_api.CHAT: _chat(A1, A6),
    }
    result = ev.audit(sources)[check_id]
    assert (result.status, result.reason) == (S.UNKNOWN, status.CheckReason.BLOCKED_BY)
    assert result.message.startswith("Blocked by F.metrics.endpoint, which is ")
    assert fragment in result.message


def test_families_count_per_label_and_histograms_by_their_count() -> None:
    scraped = _scrape(E5).families
    assert scraped["http_requests_total"].type == "counter"
    assert scraped["http_requests_total"].labels == {"method", "route", "status"}
    assert "le" not in scraped["http_request_duration_seconds"].labels
    assert scraped["http_request_duration_seconds"].total == 3
    assert scraped["payscope_errors_total"].counted("kind", "invalid_token") == 5
    assert scraped["payscope_errors_total"].counted("component", "api") == 5
    assert scraped["payscope_errors_total"].counted("kind", "nothing") == 0
