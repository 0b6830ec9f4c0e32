"""Dimension D's evaluations, table-tested: /admin/agents documents and chat answers in, findings out."""

from __future__ import annotations

import math
from typing import Any

import pytest

from payscope_operator.api import status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import agents
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import model as api_model
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS = {c.id: c for c in agents.CHECKS}
AGENTS_WITHOUT_FORECAST = {
    **ev.AGENTS,
    "intents": {i: a for i, a in ev.AGENTS["intents"].items() if i != "FORECAST"},
}


def _run(check_id: str, evidence: object) -> registry.Finding:
    return CHECKS[check_id].judge(evidence, ev.SPEC)


def _forecast(points: object, **extra: Any) -> api_model.Answer:
    body = ev.answer_body("FORECAST", data={"points": points})
    return ev.answer(body=body, **extra)


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("D.agents.coverage", ev.admin(), S.PASS, "Each of the 5 intents"),
        ("D.agents.coverage", ev.admin(AGENTS_WITHOUT_FORECAST), S.FAIL, "No agent is configured for FORECAST"),
        ("D.agents.coverage", ev.admin(ev.agents_with(agent="")), S.FAIL, "DESCRIBE, COMPARE"),
        ("D.agents.temperature", ev.admin(), S.PASS, "within bounds"),
        ("D.agents.temperature", ev.admin(ev.agents_with(temperature=1.2)), S.FAIL, "temperature 1.2 is not in"),
        ("D.agents.temperature", ev.admin(ev.agents_with(temperature=None)), S.FAIL, "temperature None"),
        ("D.agents.temperature", ev.admin(ev.agents_with(temperature=-0.1)), S.FAIL, "not in [0, 0.5]"),
        ("D.agents.temperature", ev.admin(ev.agents_with(temperature=0.4)), S.WARN, "0.4 > 0.3"),
        ("D.agents.temperature", ev.admin(ev.agents_with(intents={})), S.UNKNOWN, "declares no agent"),
        ("D.agents.token_limits", ev.admin(), S.PASS, "within bounds"),
        ("D.agents.token_limits", ev.admin(ev.agents_with(max_tokens=None)), S.FAIL, "max_tokens None"),
        ("D.agents.token_limits", ev.admin(ev.agents_with(max_tokens=0)), S.FAIL, "max_tokens 0"),
        ("D.agents.token_limits", ev.admin(ev.agents_with(max_tokens=100_000)), S.FAIL, "(0, 32768]"),
        ("D.agents.timeouts", ev.admin(), S.PASS, "within bounds"),
        ("D.agents.timeouts", ev.admin(ev.agents_with(timeout_s=None)), S.FAIL, "timeout_s None"),
        ("D.agents.timeouts", ev.admin(ev.agents_with(timeout_s=600)), S.FAIL, "(0, 300]"),
        ("D.agents.structured_output", ev.admin(), S.PASS, "within bounds"),
        ("D.agents.structured_output", ev.admin(ev.agents_with(structured_output=False)), S.FAIL, "not true"),
        ("D.agents.structured_output", ev.admin(ev.agents_with(structured_output="yes")), S.FAIL, "None"),
        ("D.agents.fallback", ev.admin(), S.PASS, "fall back to DESCRIBE"),
        ("D.agents.fallback", ev.admin(ev.agents_with(fallback_intent=None)), S.FAIL, "No valid fallback"),
        ("D.agents.fallback", ev.admin(ev.agents_with(fallback_intent="SMALLTALK")), S.FAIL, "'SMALLTALK'"),
        (
            "D.agents.fallback",
            ev.admin(ev.agents_with(fallback_intent="FORECAST") | {"intents": AGENTS_WITHOUT_FORECAST["intents"]}),
            S.FAIL,
            "has no agent",
        ),
        ("D.forecast.finite", ev.chat(), S.PASS, "All 1 FORECAST points"),
        ("D.forecast.finite", ev.chat({"FORECAST": _forecast([{"lower": 1, "value": 5, "upper": 3}])}), S.FAIL, "[0]"),
        (
            "D.forecast.finite",
            ev.chat({"FORECAST": _forecast([{"lower": 1, "value": None, "upper": 3}])}),
            S.FAIL,
            "missing",
        ),
        (
            "D.forecast.finite",
            ev.chat({"FORECAST": _forecast([{"lower": 1, "value": math.inf, "upper": 3}])}),
            S.FAIL,
            "non-finite",
        ),
        ("D.forecast.finite", ev.chat({"FORECAST": _forecast(ev.POINTS, finite=False)}), S.FAIL, "NaN or Infinity"),
        ("D.forecast.finite", ev.chat({"FORECAST": _forecast([])}), S.WARN, "no data.points"),
        ("D.simulation.deterministic", ev.chat(), S.PASS, "identical answers"),
        (
            "D.simulation.deterministic",
            ev.chat(repeat=ev.answer(body=ev.answer_body("WHAT_IF", data={"seed": 8}))),
            S.FAIL,
            "seed the simulation",
        ),
        (
            "D.simulation.deterministic",
            ev.chat(repeat=ev.answer(None, failure="no answer within 30s")),
            S.UNKNOWN,
            "twice",
        ),
        ("D.simulation.deterministic", ev.chat(repeat=ev.answer(200, None)), S.UNKNOWN, "not answered with a JSON"),
        ("D.forecast.stable", ev.chat(), S.PASS, "identical answers"),
        (
            "D.forecast.stable",
            ev.chat(repeat_forecast=ev.answer(body=ev.answer_body("FORECAST", data={"points": []}))),
            S.WARN,
            "fix its seed",
        ),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding = _run(check_id, evidence)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


NO_AGENT = ev.answer(500, {"error": {"code": "no_agent", "message": "no agent"}})


@pytest.mark.parametrize(
    ("check_id", "evidence", "blocked_by", "fragment"),
    [
        ("D.forecast.finite", ev.chat({"FORECAST": NO_AGENT}), "E.intents.forecast", "which is Fail"),
        ("D.forecast.finite", ev.chat({"FORECAST": ev.answer(200, None)}), "E.intents.forecast", "not a JSON object"),
        (
            "D.forecast.finite",
            ev.chat({"FORECAST": ev.answer(body=ev.answer_body("FORECAST", intent="DESCRIBE"))}),
            "E.intents.forecast",
            "'DESCRIBE'",
        ),
        ("D.forecast.stable", ev.chat({"FORECAST": ev.answer(500, None)}), "E.intents.forecast", "answer a FORECAST"),
        ("D.simulation.deterministic", ev.chat({"WHAT_IF": NO_AGENT}), "E.intents.what_if", "error no_agent"),
    ],
)
def test_answers_of_an_intent_are_judged_only_once_that_intent_passed(
    check_id: str, evidence: object, blocked_by: str, fragment: str
) -> None:
    result = ev.audit({payscope_api.CHAT: evidence})[check_id]
    assert (result.status, result.reason) == (S.UNKNOWN, status.CheckReason.BLOCKED_BY)
    assert result.message.startswith(f"Blocked by {blocked_by}, which is ")
    assert fragment in result.message


def test_trace_ids_do_not_make_identical_simulations_differ() -> None:
    again = ev.answer(body=ev.answer_body("WHAT_IF", trace_id="t-2", confidence=0.9), trace="t-2")
    assert _run("D.simulation.deterministic", ev.chat(repeat=again)).status == S.PASS


def test_an_unreadable_agents_document_is_unknown_with_the_reason() -> None:
    refused = ev.reply("GET /admin/agents", 403)
    for check in agents.CHECKS:
        if check.id.startswith("D.agents."):
            finding = check.judge(ev.admin(agents=refused), ev.SPEC)
            assert finding.status == S.UNKNOWN
            assert "403" in finding.message


def test_bounds_are_stated_in_passes_when() -> None:
    assert str(agents.MAX_TEMPERATURE) in CHECKS["D.agents.temperature"].passes_when
    assert str(agents.MAX_TOKENS) in CHECKS["D.agents.token_limits"].passes_when
    assert f"{agents.MAX_AGENT_TIMEOUT_S:g}" in CHECKS["D.agents.timeouts"].passes_when


def test_not_observable_items_are_section_d_with_reasons() -> None:
    assert all(item.covers.startswith("D/") and len(item.reason) > 40 for item in agents.NOT_OBSERVABLE)


def _what_if(**data: Any) -> payscope_api.ChatEvidence:
    body = ev.answer_body("WHAT_IF")
    body["data"] = {**body["data"], **data}
    return ev.chat({"WHAT_IF": ev.answer(body=body)})


@pytest.mark.parametrize(
    ("evidence", "expected", "fragment"),
    [
        (_what_if(), S.PASS, "ran 100 of at most 1000 steps"),
        (_what_if(steps=5000), S.FAIL, "ran 5000 steps against a bound of 1000"),
        (_what_if(max_steps=None), S.FAIL, "reports no bound"),
        (_what_if(steps=None), S.FAIL, "ran no reported steps"),
    ],
)
def test_simulation_is_bounded_by_its_max_steps(
    evidence: payscope_api.ChatEvidence, expected: status.CheckStatus, fragment: str
) -> None:
    finding = CHECKS["D.simulation.bounded"].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


@pytest.mark.parametrize(
    ("check_id", "intent"), [("D.simulation.deterministic", "WHAT_IF"), ("D.forecast.stable", "FORECAST")]
)
def test_a_replayed_answer_is_no_evidence_of_determinism(check_id: str, intent: str) -> None:
    first = ev.answer(body=ev.answer_body(intent))
    replay = ev.answer(body=ev.answer_body(intent, trace_id=first.trace_id))
    repeats = {"repeat": replay} if intent == "WHAT_IF" else {"repeat_forecast": replay}
    finding = CHECKS[check_id].judge(ev.chat({intent: first}, **repeats), ev.SPEC)
    assert finding.status == S.UNKNOWN
    assert "replays the first (the same trace_id)" in finding.message
