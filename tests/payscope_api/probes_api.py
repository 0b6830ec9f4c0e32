"""Conformance probes for health, readiness, metrics and chat answers (contract version 1).

Why it exists: each probe is one behaviour the audit's E and F checks (and
parts of D) rely on: ``/healthz``, ``/readyz``, every metric family, counters
that count, each intent answered with the structured response, the confidence
range, explanation and trace id, tenant-only sources, fallback, finite and
stable forecasts, deterministic simulations, 422 on invalid bodies, JSON errors.

What it must not do: probe tokens, roles or admin documents (``probes_access``
does), or reach into the fixture: HTTP only.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.payscope_api import contract
from tests.payscope_api.contract import Intent
from tests.payscope_api.probing import (
    VALID_BODY,
    ContractError,
    Probe,
    Target,
    check,
    expect,
    is_number,
    registrar,
    strict_json,
)

ANY = Intent.ANOMALY  # the intent of the generic chat probes

PROBES: list[Probe] = []
probe = registrar(PROBES)


# ---- health, readiness, metrics ------------------------------------------------------------------


@probe("healthz", ("/healthz",))
async def _healthz(t: Target) -> None:
    body = strict_json(await expect(t.client.get("/healthz"), 200, "GET /healthz"))
    check(body.get("status") == "ok" and body.get("contract_version") == 1, f"/healthz body {body}")


@probe("readyz", ("/readyz",))
async def _readyz(t: Target) -> None:
    body = strict_json(await expect(t.client.get("/readyz"), 200, "GET /readyz"))
    checks = body.get("checks")
    check(body.get("status") == "ok" and isinstance(checks, dict) and bool(checks), f"/readyz body {body}")
    assert isinstance(checks, dict)
    check(set(checks) <= set(contract.READINESS_CHECKS), f"unknown readiness checks {sorted(checks)}")
    check(all(state in ("ok", "disabled") for state in checks.values()), f"checks not ok: {checks}")


async def _scrape(t: Target) -> str:
    """The exposition text (its media type is the ``metrics_endpoint`` probe's business)."""
    return (await expect(t.client.get("/metrics"), 200, "GET /metrics")).text


def _sample_sum(text: str, sample: str, labels: Mapping[str, str]) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == sample and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


def _family_probe(family: str) -> None:
    @probe(f"metrics_family:{family}", ("/metrics",))
    async def _family(t: Target) -> None:
        text = await _scrape(t)
        declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        check(family in declared, f"family {family} missing from /metrics")


for _family_name in contract.METRIC_FAMILIES:
    _family_probe(_family_name)


@probe("metrics_endpoint", ("/metrics",))
async def _metrics_endpoint(t: Target) -> None:
    response = await expect(t.client.get("/metrics"), 200, "GET /metrics")
    media_type = response.headers.get("content-type", "")
    check(media_type.startswith("text/plain"), f"metrics are served as {media_type!r}, not text/plain")
    try:
        list(text_string_to_metric_families(response.text))
    except ValueError as exc:
        raise ContractError(f"/metrics does not parse: {exc}") from None


@probe("metrics_counting", ("/metrics",))
async def _metrics_counting(t: Target) -> None:
    labels = {"method": "GET", "route": "/metrics", "status": "200"}
    before = _sample_sum(await _scrape(t), "http_requests_total", labels)
    after = _sample_sum(await _scrape(t), "http_requests_total", labels)
    check(after > before, f"http_requests_total for /metrics did not grow ({before} -> {after})")


@probe("agent_metrics_counting", ("/metrics", "/chat/query"))
async def _agent_metrics_counting(t: Target) -> None:
    labels = {"intent": ANY.value}
    before = _sample_sum(await _scrape(t), "payscope_agent_requests_total", labels)
    await t.chat({"query": "unusual payments", "intent": ANY.value})
    after = _sample_sum(await _scrape(t), "payscope_agent_requests_total", labels)
    check(after > before, f"payscope_agent_requests_total{{intent={ANY.value}}} did not grow")


# ---- chat answers ---------------------------------------------------------------------------------


async def _answer(t: Target, intent: Intent | None, query: str) -> httpx.Response:
    body: dict[str, object] = {"query": query} if intent is None else {"query": query, "intent": intent.value}
    response = await expect(t.chat(body), 200, f"POST /chat/query {intent or 'unclassified'}")
    check(response.headers.get("content-type", "").startswith("application/json"), "chat answer is not JSON")
    return response


def _intent_probe(intent: Intent) -> None:
    @probe(f"chat_intent:{intent.value}", ("/chat/query",), (intent,), chat_json=True)
    async def _chat_intent(t: Target) -> None:
        body = strict_json(await _answer(t, intent, f"{intent.value.lower()} audit probe"))
        check(body.get("intent") == intent.value and body.get("fallback") is False, f"answered {body.get('intent')}")


for _intent in contract.INTENTS:
    _intent_probe(_intent)


@probe("chat_shape", ("/chat/query",), (ANY,), chat_json=True)
async def _chat_shape(t: Target) -> None:
    body = strict_json(await _answer(t, ANY, "unusual payments"))
    check(body.get("intent") in contract.INTENTS and isinstance(body.get("fallback"), bool), "intent/fallback")
    check(isinstance(body.get("answer"), str) and bool(body.get("answer")), "answer must be a non-empty string")
    check(body.get("bank_id") == t.bank, f"bank_id {body.get('bank_id')!r} is not the caller's")
    sources = body.get("sources")
    check(isinstance(sources, list), "sources must be a list")
    assert isinstance(sources, list)
    for source in sources:
        check(
            isinstance(source, dict) and all(isinstance(source.get(k), str) for k in ("kind", "ref", "bank_id")),
            f"malformed source {source}",
        )


@probe("chat_confidence", ("/chat/query",), (ANY,), chat_json=True)
async def _chat_confidence(t: Target) -> None:
    confidence = strict_json(await _answer(t, ANY, "unusual payments")).get("confidence")
    check(is_number(confidence) and 0.0 <= confidence <= 1.0, f"confidence {confidence!r} not in [0, 1]")


@probe("chat_explanation", ("/chat/query",), (ANY,), chat_json=True)
async def _chat_explanation(t: Target) -> None:
    explanation = strict_json(await _answer(t, ANY, "unusual payments")).get("explanation")
    check(isinstance(explanation, str) and bool(explanation.strip()), "explanation missing or empty")


@probe("chat_trace", ("/chat/query",), (ANY,), chat_json=True)
async def _chat_trace(t: Target) -> None:
    response = await _answer(t, ANY, "unusual payments")
    trace_id = strict_json(response).get("trace_id")
    check(isinstance(trace_id, str) and bool(trace_id), "trace_id missing")
    check(response.headers.get(contract.TRACE_HEADER) == trace_id, "X-Trace-Id header differs from trace_id")


@probe("chat_sources_isolated", ("/chat/query",), (ANY,), chat_json=True)
async def _chat_sources_isolated(t: Target) -> None:
    sources = strict_json(await _answer(t, ANY, "unusual payments")).get("sources")
    check(isinstance(sources, list) and bool(sources), "no sources")
    assert isinstance(sources, list)
    foreign = [s for s in sources if not isinstance(s, dict) or s.get("bank_id") != t.bank]
    check(not foreign, f"sources of another bank: {foreign}")


@probe("chat_classifies", ("/chat/query",), (Intent.FORECAST,), chat_json=True)
async def _chat_classifies(t: Target) -> None:
    body = strict_json(await _answer(t, None, "forecast the next quarter"))
    check(body.get("intent") == Intent.FORECAST and body.get("fallback") is False, f"classified as {body}")


@probe("chat_fallback", ("/chat/query",), (Intent.DESCRIBE,), chat_json=True)
async def _chat_fallback(t: Target) -> None:
    for query in ("zq xv kw", "forecast please"):  # nothing recognisable; one weak keyword
        body = strict_json(await _answer(t, None, query))
        check(body.get("fallback") is True, f"{query!r}: no fallback")
        check(body.get("intent") == t.fallback_intent, f"{query!r}: fell back to {body.get('intent')}")


@probe("forecast_finite", ("/chat/query",), (Intent.FORECAST,), chat_json=True)
async def _forecast_finite(t: Target) -> None:
    data = strict_json(await _answer(t, Intent.FORECAST, "forecast volumes")).get("data")
    points = data.get("points") if isinstance(data, dict) else None
    check(isinstance(points, list) and bool(points), "FORECAST data.points missing")
    assert isinstance(points, list)
    for point in points:
        check(isinstance(point, dict), f"malformed point {point}")
        lower, value, upper = (point.get(key) for key in ("lower", "value", "upper"))
        finite = is_number(lower) and is_number(value) and is_number(upper)
        check(finite, f"non-finite point {point}")
        check(finite and lower <= value <= upper, f"value outside its bounds: {point}")


async def _same_twice(t: Target, intent: Intent, query: str) -> None:
    first = strict_json(await _answer(t, intent, query))
    second = strict_json(await _answer(t, intent, query))
    check(first.get("data") is not None, f"{intent} answer carries no data")
    same = all(first.get(key) == second.get(key) for key in ("answer", "data"))
    check(same, f"identical {intent} requests answered differently")


@probe("what_if_deterministic", ("/chat/query",), (Intent.WHAT_IF,), chat_json=True)
async def _what_if_deterministic(t: Target) -> None:
    await _same_twice(t, Intent.WHAT_IF, "what if fees rise 10%")


@probe("forecast_stable", ("/chat/query",), (Intent.FORECAST,), chat_json=True)
async def _forecast_stable(t: Target) -> None:
    await _same_twice(t, Intent.FORECAST, "forecast volumes")


@probe("body_validation", ("/chat/query",))
async def _body_validation(t: Target) -> None:
    invalid: list[object] = [
        b"not json",
        [1, 2],
        {"intent": "DESCRIBE"},
        {"query": ""},
        {"query": 42},
        {"query": "x", "intent": "SMALLTALK"},
        {"query": "x" * 4001},
    ]
    for body in invalid:
        await expect(t.chat(body), 422, f"invalid body {body!r:.40}")


@probe("errors_structured", ("/chat/query", "unmatched"))
async def _errors_structured(t: Target) -> None:
    for response in (
        await t.chat(b"not json"),
        await t.chat(VALID_BODY, headers={}),
        await t.client.get("/no-such-route"),
    ):
        check(response.status_code >= 400, f"{response.request.url.path}: expected an error")
        body = strict_json(response)
        error = body.get("error")
        check(
            isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str),
            f"error body {body}",
        )
        check(isinstance(body.get("trace_id"), str), "error body without trace_id")
