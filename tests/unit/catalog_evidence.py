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
from typing import Any

from payscope_operator.api import spec
from payscope_operator.backends import payscope_api
from payscope_operator.reconcile.catalog import sources

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
    "intents": {intent: {**AGENT, "agent": f"{intent.lower()}-agent"} for intent in payscope_api.model.INTENTS},
    "fallback_intent": "DESCRIBE",
    "confidence_threshold": 0.6,
}
RUNTIME: dict[str, Any] = {"logging": {"format": "json", "level": "INFO"}, "auth": {"key_ids": ["primary"]}}
DROP = object()
"""A value in ``answer_body(**changes)`` that removes the field."""
POINTS = [{"date": "2026-01-02", "value": 10.0, "lower": 9.0, "upper": 11.0}]


def reply(
    endpoint: str, status: int | None, body: dict[str, Any] | None = None, **extra: Any
) -> payscope_api.client.Reply:
    content_type = "application/json" if body is not None else extra.pop("content_type", "text/plain")
    return payscope_api.client.Reply(endpoint, status, content_type=content_type, body=body, **extra)


def answer_body(intent: str = "ANOMALY", /, *, bank: str = "bank-a", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "intent": intent,
        "confidence": 1.0,
        "fallback": False,
        "answer": f"{intent} of bank {bank}",
        "explanation": "computed from 1 source",
        "trace_id": "t-1",
        "bank_id": bank,
        "sources": [{"kind": "postgres", "ref": "public.transactions", "bank_id": bank}],
    }
    if intent == "FORECAST":
        body["data"] = {"horizon_days": 1, "points": copy.deepcopy(POINTS)}
    if intent == "WHAT_IF":
        body["data"] = {"baseline": 1.0, "simulated": 2.0, "seed": 7}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


def answer(
    status: int | None = 200, body: dict[str, Any] | None = None, *, trace: str | None = "t-1", **extra: Any
) -> payscope_api.model.Answer:
    return payscope_api.model.parse_answer(reply("POST /chat/query", status, body, trace_header=trace, **extra))


def chat(
    overrides: dict[str, payscope_api.model.Answer] | None = None,
    *,
    repeat: payscope_api.model.Answer | None = None,
    repeat_forecast: payscope_api.model.Answer | None = None,
    classified: payscope_api.model.Answer | None = None,
    unclassified: payscope_api.model.Answer | None = None,
    invalid: payscope_api.model.Answer | None = None,
    other: payscope_api.model.Answer | None = None,
) -> sources.ChatEvidence:
    intents = {i: answer(body=answer_body(i)) for i in payscope_api.model.INTENTS}
    intents.update(overrides or {})
    return sources.ChatEvidence(
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
    agents: dict[str, Any] | payscope_api.client.Reply | None = None,
    pipeline: dict[str, Any] | payscope_api.client.Reply | None = None,
    runtime: dict[str, Any] | payscope_api.client.Reply | None = None,
) -> sources.AdminEvidence:
    def as_reply(
        path: str, value: dict[str, Any] | payscope_api.client.Reply | None, default: dict[str, Any]
    ) -> payscope_api.client.Reply:
        return value if isinstance(value, payscope_api.client.Reply) else reply(f"GET {path}", 200, value or default)

    return sources.AdminEvidence(
        agents=payscope_api.model.read_document(
            as_reply("/admin/agents", agents, AGENTS), payscope_api.model.parse_agents
        ),
        pipeline=payscope_api.model.read_document(
            as_reply("/admin/pipeline", pipeline, {}), payscope_api.model.parse_pipeline
        ),
        runtime=payscope_api.model.read_document(
            as_reply("/admin/runtime", runtime, RUNTIME), payscope_api.model.parse_runtime
        ),
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
