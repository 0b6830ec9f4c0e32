"""Builders of the evidence the D, E, F and G checks evaluate, for the catalog's table tests.

Why it exists: the table tests of agents, apis, observability and security feed
the same shapes (chat answers, admin documents, access replies); building them
through the backend's own parsers from contract-shaped JSON keeps the tests
honest about what the checks really receive. Healthy by default; each test
changes one thing.

What it must not do: talk to a server, or build evidence the backend's parsers
could not produce.
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Mapping
from typing import Any

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, registry, runner
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model

SPEC = spec.PayScopeSpec.model_validate(
    {
        "api": {
            "url": "http://payscope-api:8000",
            "auth": {"jwtSecretRef": {"name": "jwt", "key": "k"}, "issuer": "payscope", "audience": "payscope-api"},
        },
        "audit": {"probeTenants": ["bank-a", "bank-b"]},
    }
)
AGENT = {"agent": "x-agent", "temperature": 0.1, "max_tokens": 1024, "timeout_s": 20.0, "structured_output": True}
AGENTS: dict[str, Any] = {
    "intents": {intent: {**AGENT, "agent": f"{intent.lower()}-agent"} for intent in api_model.INTENTS},
    "fallback_intent": "DESCRIBE",
    "confidence_threshold": 0.6,
}
RUNTIME: dict[str, Any] = {"logging": {"format": "json", "level": "INFO"}, "auth": {"key_ids": ["primary"]}}
DROP = object()
"""A value in ``answer_body(**changes)`` that removes the field."""
_TRACES = itertools.count(1)
POINTS = [{"date": "2026-01-02", "value": 10.0, "lower": 9.0, "upper": 11.0}]


def reply(endpoint: str, status: int | None, body: dict[str, Any] | None = None, **extra: Any) -> api_client.Reply:
    content_type = "application/json" if body is not None else extra.pop("content_type", "text/plain")
    return api_client.Reply(endpoint, status, content_type=content_type, body=body, **extra)


def answer_body(intent: str = "ANOMALY", /, *, bank: str = "bank-a", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "intent": intent,
        "confidence": 1.0,
        "fallback": False,
        "answer": f"{intent} of bank {bank}",
        "explanation": "computed from 1 source",
        "trace_id": f"t-{next(_TRACES)}",  # every answer computed for its own request
        "bank_id": bank,
        "sources": [{"kind": "postgres", "ref": "public.transactions", "bank_id": bank}],
    }
    if intent == "FORECAST":
        body["data"] = {"horizon_days": 1, "points": copy.deepcopy(POINTS)}
    if intent == "WHAT_IF":
        body["data"] = {"baseline": 1.0, "simulated": 2.0, "steps": 100, "max_steps": 1000, "seed": 7}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


def answer(
    status: int | None = 200, body: dict[str, Any] | None = None, *, trace: object = DROP, **extra: Any
) -> api_model.Answer:
    """A chat answer; its X-Trace-Id header is the body's trace_id unless ``trace`` says otherwise."""
    header = (body or {}).get("trace_id") if trace is DROP else trace
    return api_model.parse_answer(
        reply("POST /chat/query", status, body, trace_header=header if isinstance(header, str) else None, **extra)
    )


def chat(
    overrides: dict[str, api_model.Answer] | None = None,
    *,
    repeat: api_model.Answer | None = None,
    repeat_forecast: api_model.Answer | None = None,
    classified: api_model.Answer | None = None,
    unclassified: api_model.Answer | None = None,
    invalid: api_model.Answer | None = None,
    other: api_model.Answer | None = None,
) -> payscope_api.ChatEvidence:
    intents = {i: answer(body=answer_body(i)) for i in api_model.INTENTS}
    intents.update(overrides or {})
    return payscope_api.ChatEvidence(
        bank="bank-a",
        intents=intents,
        repeat=repeat or answer(body=answer_body("WHAT_IF")),
        repeat_forecast=repeat_forecast or answer(body=answer_body("FORECAST")),
        classified=classified or answer(body=answer_body("FORECAST", confidence=0.8)),
        unclassified=unclassified or answer(body=answer_body("DESCRIBE", fallback=True, confidence=0.0)),
        invalid_body=invalid
        or answer(422, {"error": {"code": "invalid_body", "message": "query required"}, "trace_id": "t-9"}),
        other_tenant=other or answer(body=answer_body("DESCRIBE", bank="bank-b")),
    )


def admin(
    agents: dict[str, Any] | api_client.Reply | None = None,
    pipeline: dict[str, Any] | api_client.Reply | None = None,
    runtime: dict[str, Any] | api_client.Reply | None = None,
) -> payscope_api.AdminEvidence:
    def as_reply(
        path: str, value: dict[str, Any] | api_client.Reply | None, default: dict[str, Any]
    ) -> api_client.Reply:
        return value if isinstance(value, api_client.Reply) else reply(f"GET {path}", 200, value or default)

    return payscope_api.AdminEvidence(
        agents=api_model.read_document(as_reply("/admin/agents", agents, AGENTS), api_model.parse_agents),
        pipeline=api_model.read_document(as_reply("/admin/pipeline", pipeline, {}), api_model.parse_pipeline),
        runtime=api_model.read_document(as_reply("/admin/runtime", runtime, RUNTIME), api_model.parse_runtime),
    )


def agents_with(**changes: Any) -> dict[str, Any]:
    """AGENTS with ``changes`` applied to every agent (or to the top level, for fallback/threshold)."""
    body = copy.deepcopy(AGENTS)
    for key, value in changes.items():
        if key in ("fallback_intent", "confidence_threshold", "intents"):
            body[key] = value
        else:
            for agent in body["intents"].values():
                agent[key] = value
    return body


def audit(
    evidence: Mapping[registry.Source[Any], object], desired: spec.PayScopeSpec = SPEC
) -> dict[str, status.CheckResult]:
    """The whole catalog judged by the runner on ``evidence`` per source; other sources are NotConfigured."""
    gathered = {source.name: runner.Gathered(evidence=value) for source, value in evidence.items()}
    report = runner.judge(catalog.CATALOG, gathered, desired, today=datetime.date(2026, 11, 28))
    return {r.id: r for r in report.results}
