"""Dimension E's evaluations, table-tested: chat answers, admin documents and admin calls in, findings out."""

from __future__ import annotations

from typing import Any

import pytest

from payscope_operator.api import status
from payscope_operator.audit import probes, registry
from payscope_operator.audit.checks import apis, responses
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import model as api_model
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS: dict[str, registry.Check[Any]] = {c.id: c for c in (*apis.CHECKS, *responses.CHECKS)}
DROP = ev.DROP


def _run(check_id: str, evidence: object) -> registry.Finding:
    return CHECKS[check_id].judge(evidence, ev.SPEC)


def _all(answer: api_model.Answer) -> dict[str, api_model.Answer]:
    return dict.fromkeys(api_model.INTENTS, answer)


def _one(which: str, /, **changes: Any) -> payscope_api.ChatEvidence:
    return ev.chat({which: ev.answer(body=ev.answer_body(which, **changes))})


def _admin_calls(**statuses: int | None) -> payscope_api.AccessEvidence:
    replies = {}
    for probe in probes.ADMIN_AS_ADMIN:
        code = statuses.get(probe.path.rsplit("/", 1)[1], 200)
        body = {"ok": True} if code == 200 else None
        failure = "no answer within 5s" if code is None else None
        replies[probe.key] = ev.reply(f"GET {probe.path}", code, body, failure=failure)
    return payscope_api.AccessEvidence("bank-a", replies)


NO_AGENT = ev.answer(500, {"error": {"code": "no_agent", "message": "no agent"}, "trace_id": "t"})
TEXT = ev.answer(200, None, content_type="text/plain")


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("E.endpoints.chat_query", ev.chat(), S.PASS, "5 of 5 intents"),
        ("E.endpoints.chat_query", ev.chat({"FORECAST": NO_AGENT}), S.PASS, "4 of 5 intents"),
        ("E.endpoints.chat_query", ev.chat(_all(NO_AGENT)), S.FAIL, "answered no intent"),
        ("E.endpoints.chat_query", ev.chat(_all(ev.answer(404, None))), S.FAIL, "does not exist"),
        ("E.endpoints.chat_query", ev.chat(_all(ev.answer(None, failure="no answer within 30s"))), S.UNKNOWN, "30s"),
        ("E.intents.forecast", ev.chat(), S.PASS, "FORECAST agent"),
        ("E.intents.forecast", ev.chat({"FORECAST": NO_AGENT}), S.FAIL, "(500, error no_agent)"),
        ("E.intents.forecast", _one("FORECAST", intent="DESCRIBE"), S.FAIL, "answered as 'DESCRIBE'"),
        ("E.intents.forecast", _one("FORECAST", fallback=True), S.FAIL, "fallback=True"),
        ("E.intents.forecast", ev.chat({"FORECAST": TEXT}), S.UNKNOWN, "not a JSON object"),
        ("E.intents.what_if", ev.chat({"WHAT_IF": ev.answer(None, failure="no answer within 30s")}), S.UNKNOWN, "30s"),
        ("E.intents.fallback", ev.chat(), S.PASS, "through the fallback intent DESCRIBE"),
        ("E.intents.fallback", ev.chat(unclassified=NO_AGENT), S.FAIL, "answered 500"),
        (
            "E.intents.fallback",
            ev.chat(unclassified=ev.answer(body=ev.answer_body("FORECAST", confidence=0.55))),
            S.FAIL,
            "without falling back",
        ),
        ("E.intents.fallback", ev.chat(unclassified=TEXT), S.UNKNOWN, "not a JSON object"),
        ("E.intents.classification", ev.chat(), S.PASS, "classified as FORECAST"),
        (
            "E.intents.classification",
            ev.chat(classified=ev.answer(body=ev.answer_body("DESCRIBE", fallback=True, confidence=0.3))),
            S.FAIL,
            "classified as 'DESCRIBE' (fallback=True)",
        ),
        ("E.intents.classification", ev.chat(classified=NO_AGENT), S.FAIL, "answered 500"),
        ("E.intents.classification", ev.chat(classified=TEXT), S.UNKNOWN, "not a JSON object"),
        ("E.intents.confidence_threshold", ev.admin(), S.PASS, "below 0.6"),
        ("E.intents.confidence_threshold", ev.admin(ev.agents_with(confidence_threshold=None)), S.FAIL, "=None"),
        ("E.intents.confidence_threshold", ev.admin(ev.agents_with(confidence_threshold=1.0)), S.FAIL, "(0, 1)"),
        ("E.intents.confidence_threshold", ev.admin(ev.reply("GET /admin/agents", 401)), S.UNKNOWN, "401"),
        ("E.responses.structured", ev.chat(), S.PASS, "All 5 answers"),
        ("E.responses.structured", ev.chat({"COMPARE": TEXT}), S.FAIL, "COMPARE: body is text/plain"),
        ("E.responses.structured", _one("COMPARE", intent="SMALLTALK"), S.FAIL, "not a contract intent"),
        ("E.responses.structured", _one("COMPARE", answer=""), S.FAIL, "no answer text"),
        ("E.responses.structured", _one("COMPARE", sources=None), S.FAIL, "sources is not a list"),
        ("E.responses.structured", _one("COMPARE", sources=[{"kind": "postgres"}]), S.FAIL, "sources is not a list"),
        ("E.responses.structured", ev.chat(_all(NO_AGENT)), S.UNKNOWN, "no structured format to judge"),
        ("E.responses.confidence", ev.chat(), S.PASS, "confidence score"),
        ("E.responses.confidence", _one("ANOMALY", confidence=1.95), S.FAIL, "ANOMALY: confidence 1.95"),
        ("E.responses.confidence", _one("ANOMALY", confidence=-0.1), S.FAIL, "not in [0, 1]"),
        ("E.responses.confidence", _one("ANOMALY", confidence="high"), S.FAIL, "confidence None"),
        ("E.responses.confidence", _one("ANOMALY", confidence=DROP), S.FAIL, "confidence None"),
        ("E.responses.explainability", ev.chat(), S.PASS, "explanation"),
        ("E.responses.explainability", _one("DESCRIBE", explanation=DROP), S.FAIL, "DESCRIBE: no explanation"),
        ("E.responses.explainability", _one("DESCRIBE", explanation="  "), S.FAIL, "no explanation"),
        ("E.responses.traceability", ev.chat(), S.PASS, "trace id"),
        ("E.responses.traceability", _one("DESCRIBE", trace_id=DROP), S.FAIL, "no trace_id"),
        (
            "E.responses.traceability",
            ev.chat({"DESCRIBE": ev.answer(body=ev.answer_body("DESCRIBE"), trace="other")}),
            S.FAIL,
            "X-Trace-Id header differs",
        ),
        ("E.endpoints.validation", ev.chat(), S.PASS, "422"),
        ("E.endpoints.validation", ev.chat(invalid=NO_AGENT), S.FAIL, "answered 500"),
        ("E.endpoints.validation", ev.chat(invalid=ev.answer(body=ev.answer_body())), S.FAIL, "answered 200"),
        ("E.endpoints.validation", ev.chat(invalid=ev.answer(400, None)), S.WARN, "says 422"),
        ("E.endpoints.errors_structured", ev.chat(), S.PASS, "code invalid_body"),
        ("E.endpoints.errors_structured", ev.chat(invalid=NO_AGENT), S.PASS, "code no_agent"),
        ("E.endpoints.errors_structured", ev.chat(invalid=ev.answer(422, None)), S.FAIL, "never with a stack trace"),
        ("E.endpoints.errors_structured", ev.chat(invalid=ev.answer(422, {"detail": "x"})), S.FAIL, "JSON body"),
        ("E.endpoints.errors_structured", ev.chat(invalid=ev.answer(body=ev.answer_body())), S.UNKNOWN, "no error"),
        ("E.endpoints.admin", _admin_calls(), S.PASS, "All 3 admin endpoints"),
        ("E.endpoints.admin", _admin_calls(runtime=404), S.FAIL, "/admin/runtime answered 404"),
        ("E.endpoints.admin", _admin_calls(agents=401), S.FAIL, "spec.api.auth"),
        ("E.endpoints.admin", _admin_calls(pipeline=None), S.UNKNOWN, "no answer within 5s"),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding = _run(check_id, evidence)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


@pytest.mark.parametrize("check_id", [c for c in CHECKS if c.startswith("E.responses.")])
@pytest.mark.parametrize(
    ("answers", "fragment"),
    [
        (_all(NO_AGENT), "which is Fail: POST /chat/query answered no intent"),
        (_all(ev.answer(None, failure="no answer within 30s")), "which is Unknown: POST /chat/query did not answer"),
    ],
    ids=["all-500", "all-silent"],
)
def test_answers_are_judged_only_once_the_chat_endpoint_answered(
    check_id: str, answers: dict[str, api_model.Answer], fragment: str
) -> None:
    result = ev.audit({payscope_api.CHAT: ev.chat(answers)})[check_id]
    assert (result.status, result.reason) == (S.UNKNOWN, status.CheckReason.BLOCKED_BY)
    assert result.message.startswith("Blocked by E.endpoints.chat_query, which is ")
    assert fragment in result.message


def test_one_check_per_contract_intent() -> None:
    assert {f"E.intents.{i.lower()}" for i in api_model.INTENTS} <= set(CHECKS)
    assert "D/Forecasting/No runtime crashes" in CHECKS["E.intents.forecast"].covers


def test_evidence_names_endpoint_and_status() -> None:
    finding = _run("E.intents.forecast", ev.chat({"FORECAST": NO_AGENT}))
    assert finding.evidence == "POST /chat/query intent=FORECAST → 500"


def test_a_named_intent_is_answered_with_certainty() -> None:
    check = CHECKS["E.responses.confidence"]
    guessed = ev.chat({"COMPARE": ev.answer(body=ev.answer_body("COMPARE", confidence=0.8))})
    finding = check.judge(guessed, ev.SPEC)
    assert finding.status == status.CheckStatus.WARN
    assert "COMPARE: confidence 0.8 for a named intent, not 1.0" in finding.message
    assert check.judge(ev.chat(), ev.SPEC).status == status.CheckStatus.PASS
