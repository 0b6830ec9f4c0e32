"""Dimension E: PayScope's chat and admin endpoints, probed as a tenant analyst and as an admin.

Why this module exists: the promise of PayScope's API is that ``POST /chat/query``
answers each of the five intents with a structured, explainable, traceable
answer carrying a confidence score; that queries no intent fits go to a
fallback; that invalid requests are refused cleanly; and that admins can read
the admin endpoints. Evidence comes from the chat probes (``payscope.chat``),
the admin documents (``payscope.admin``) and the admin calls of the access
probes (``payscope.access``). Health endpoints are judged in ``observability``
and tenant isolation in ``security``.

What it must not do: send requests (sources do), judge answer content beyond
the contract's shape (no model quality), or do I/O in an evaluate function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from payscope_operator.api import spec, status
from payscope_operator.backends import payscope_api
from payscope_operator.reconcile import checks
from payscope_operator.reconcile.catalog import sources

Severity = status.Severity
Finding = checks.Finding
ChatEvidence = sources.ChatEvidence
CHAT = f"POST {payscope_api.client.CHAT_PATH}"
ALL_INTENTS = "E/Intent Classification/All intents supported (DESCRIBE, COMPARE, ANOMALY, FORECAST, WHAT_IF)"


def _chat_query(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    replies = [a.reply for a in evidence.intents.values()]
    answered = [i for i, a in evidence.intents.items() if a.reply.status == 200]
    where = "; ".join(
        f"{i} → {r.status if r.status is not None else r.failure}"
        for i, r in zip(evidence.intents, replies, strict=True)
    )
    if answered:
        return Finding.passed(f"{CHAT} answers ({len(answered)} of {len(replies)} intents).", evidence=where)
    if all(r.status is None for r in replies):
        return Finding.unknown(f"{CHAT} did not answer: {replies[0].failure}.")
    if any(r.status in (404, 405) for r in replies):
        return Finding.failed(f"{CHAT} does not exist on this PayScope: serve contract version 1.", evidence=where)
    return Finding.failed(f"{CHAT} answered no intent: see E.intents.* for each intent's error.", evidence=where)


def _intent(intent: str) -> checks.Evaluate[ChatEvidence]:
    def evaluate(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
        answer = evidence.intents[intent]
        reply = answer.reply
        where = f"{CHAT} intent={intent} → {reply.status}"
        if reply.status is None:
            return Finding.unknown(sources.explain(reply))
        if reply.status != 200:
            code = f", error {answer.error.code}" if answer.error is not None and answer.error.code else ""
            return Finding.failed(
                f"PayScope could not answer a {intent} query ({reply.status}{code}): check the {intent} agent and "
                "the stores it reads.",
                evidence=where,
            )
        if not answer.structured:
            return Finding.unknown(f"The {intent} answer is not a JSON object; see E.responses.structured.")
        if answer.intent != intent or answer.fallback is True:
            return Finding.failed(
                f"A query sent with intent {intent} was answered as {answer.intent!r} (fallback={answer.fallback}): "
                "an explicit intent must reach its own agent.",
                evidence=where,
            )
        return Finding.passed(f"{intent} queries are answered by the {intent} agent.", evidence=where)

    return evaluate


def _fallback(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    answer = evidence.unclassified
    reply = answer.reply
    where = f"{CHAT} (no intent, unclassifiable query) → {reply.status}"
    if reply.status is None:
        return Finding.unknown(sources.explain(reply))
    if reply.status != 200:
        return Finding.failed(
            f"A query no intent fits was answered {reply.status} instead of through the fallback intent: route "
            "unclassified and low-confidence queries to the declared fallback.",
            evidence=where,
        )
    if not answer.structured:
        return Finding.unknown("The fallback answer is not a JSON object; see E.responses.structured.")
    if answer.fallback is not True:
        return Finding.failed(
            f"A query no intent fits was answered as {answer.intent!r} without falling back (fallback="
            f"{answer.fallback}): apply the confidence threshold and answer through the fallback intent.",
            evidence=where,
        )
    return Finding.passed(
        f"A query no intent fits is answered through the fallback intent {answer.intent}.", evidence=where
    )


def _classified(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    expected, query = sources.CLASSIFIABLE
    answer = evidence.classified
    reply = answer.reply
    where = f"{CHAT} (no intent, {query!r}) → {reply.status}"
    if reply.status is None:
        return Finding.unknown(sources.explain(reply))
    if reply.status != 200:
        return Finding.failed(
            f"A query plainly about {expected}, sent without an intent, was answered {reply.status}: check the "
            "intent classifier.",
            evidence=where,
        )
    if not answer.structured:
        return Finding.unknown("The classified answer is not a JSON object; see E.responses.structured.")
    if answer.intent != expected or answer.fallback is not False:
        return Finding.failed(
            f"{query!r} was classified as {answer.intent!r} (fallback={answer.fallback}), not {expected}: the "
            "classifier misses plain queries.",
            evidence=where,
        )
    return Finding.passed(f"A plain {expected} query is classified as {expected}.", evidence=where)


def _threshold(evidence: sources.AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
    agents = sources.facts_of(evidence.agents)
    if isinstance(agents, Finding):
        return agents
    value = agents.confidence_threshold
    where = f"GET /admin/agents → 200: confidence_threshold={value}"
    if value is None or not 0.0 < value < 1.0:
        return Finding.failed(
            f"No confidence threshold in (0, 1) is declared (confidence_threshold={value}): set the score below "
            "which a classification goes to the fallback intent.",
            evidence=where,
        )
    return Finding.passed(f"Classifications below {value:g} go to the fallback intent.", evidence=where)


def _responses(problem: Callable[[payscope_api.model.Answer], str | None], what: str) -> checks.Evaluate[ChatEvidence]:
    """Pass when every intent answered 200 passes ``problem`` (None = fine); Unknown when none was answered."""

    def evaluate(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
        answered = evidence.answered()
        if not answered:
            return Finding.unknown(f"No intent was answered 200, so {what} cannot be checked; see E.intents.*.")
        where = f"{CHAT} → 200 for {', '.join(i for i, _ in answered)}"
        failing = [f"{i}: {p}" for i, a in answered if (p := problem(a)) is not None]
        if failing:
            return Finding.failed(f"Answers lack {what}: " + "; ".join(failing), evidence=where)
        return Finding.passed(f"All {len(answered)} answers carry {what}.", evidence=where)

    return evaluate


def _shape(a: payscope_api.model.Answer) -> str | None:
    if not a.structured:
        return f"body is {a.reply.content_type or 'untyped'}, not a JSON object"
    if a.intent not in payscope_api.model.INTENTS:
        return f"intent {a.intent!r} is not a contract intent"
    if not a.answer:
        return "no answer text"
    if a.sources is None or any(not (s.kind and s.ref and s.bank_id) for s in a.sources):
        return "sources is not a list of {kind, ref, bank_id}"
    return None


def _confidence(a: payscope_api.model.Answer) -> str | None:
    c = a.confidence
    return None if c is not None and math.isfinite(c) and 0.0 <= c <= 1.0 else f"confidence {c} is not in [0, 1]"


def _explanation(a: payscope_api.model.Answer) -> str | None:
    return None if a.explanation and a.explanation.strip() else "no explanation"


def _trace(a: payscope_api.model.Answer) -> str | None:
    if not a.trace_id:
        return "no trace_id"
    if a.reply.trace_header != a.trace_id:
        return f"the {payscope_api.client.TRACE_HEADER} header differs from trace_id"
    return None


def _validation(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    reply = evidence.invalid_body.reply
    where = f"{CHAT} with a body lacking query → {reply.status}"
    if reply.status is None:
        return Finding.unknown(sources.explain(reply))
    if reply.status == 422:
        return Finding.passed("Invalid request bodies are refused with 422.", evidence=where)
    if reply.status >= 500 or reply.status < 400:
        return Finding.failed(
            f"An invalid body was answered {reply.status}: validate request bodies and refuse them with 422 "
            "before they reach an agent.",
            evidence=where,
        )
    return Finding.warned(
        f"An invalid body was refused with {reply.status}; contract version 1 says 422.", evidence=where
    )


def _errors_structured(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    answer = evidence.invalid_body
    reply = answer.reply
    where = f"{CHAT} with a body lacking query → {reply.status} ({reply.content_type or 'no content type'})"
    if reply.status is None:
        return Finding.unknown(sources.explain(reply))
    if reply.status < 400:
        return Finding.unknown("The invalid-body probe got no error answer to examine; see E.endpoints.validation.")
    if answer.error is None or not answer.error.code or not answer.error.message:
        return Finding.failed(
            'Error answers are not the contract\'s JSON body {"error": {"code", "message"}, "trace_id"}: answer '
            "errors as JSON and never with a stack trace.",
            evidence=where,
        )
    return Finding.passed(f"Errors are answered as JSON (code {answer.error.code}).", evidence=where)


def _admin(evidence: sources.AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    replies = [evidence.replies[sources.admin_key("admin", p)] for p in payscope_api.client.ADMIN_PATHS]
    where = "; ".join(r.describe() for r in replies)
    silent = [r for r in replies if r.status is None]
    if silent:
        return Finding.unknown(sources.explain(silent[0]))
    failing = [sources.explain(r) for r in replies if r.status != 200 or r.body is None]
    if failing:
        return Finding.failed("Admin endpoints do not serve the admin role: " + "; ".join(failing), evidence=where)
    return Finding.passed(f"All {len(replies)} admin endpoints answer the admin role.", evidence=where)


def _intent_check(intent: str) -> checks.Check[ChatEvidence]:
    covers: tuple[str, ...] = (ALL_INTENTS, "D/Agent Coverage/Agent orchestration complete")
    if intent == "FORECAST":
        covers += ("D/Forecasting/No runtime crashes",)
    return checks.Check(
        id=f"E.intents.{intent.lower()}",
        title=f"{CHAT} with intent {intent}, as the probe tenant.",
        passes_when=f"200 with a JSON answer whose intent is {intent}, not a fallback.",
        severity=Severity.HIGH,
        source=sources.CHAT,
        evaluate=_intent(intent),
        covers=covers,
    )


def _response_check(
    check_id: str,
    what: str,
    passes_when: str,
    severity: Severity,
    problem: Callable[[payscope_api.model.Answer], str | None],
    cover: str,
) -> checks.Check[ChatEvidence]:
    return checks.Check(
        id=check_id,
        title=f"The {what} of every intent's answer.",
        passes_when=passes_when,
        severity=severity,
        source=sources.CHAT,
        evaluate=_responses(problem, what),
        covers=(cover,),
    )


CHECKS: tuple[checks.Check[Any], ...] = (
    checks.Check(
        id="E.endpoints.chat_query",
        title=f"Whether {CHAT} exists and answers an authenticated tenant query.",
        passes_when="At least one intent's query is answered 200.",
        severity=Severity.CRITICAL,
        source=sources.CHAT,
        evaluate=_chat_query,
        covers=("E/Endpoints/POST /chat/query exists",),
    ),
    *(_intent_check(intent) for intent in payscope_api.model.INTENTS),
    checks.Check(
        id="E.intents.fallback",
        title=f"{CHAT} without an intent, for a query no intent fits.",
        passes_when="200 with fallback true (answered through the fallback intent).",
        severity=Severity.MEDIUM,
        source=sources.CHAT,
        evaluate=_fallback,
        covers=("E/Intent Classification/Fallback logic",),
    ),
    checks.Check(
        id="E.intents.classification",
        title=f"{CHAT} without an intent, for a query plainly about {sources.CLASSIFIABLE[0]}.",
        passes_when=f"200 with intent {sources.CLASSIFIABLE[0]} and fallback false.",
        severity=Severity.MEDIUM,
        source=sources.CHAT,
        evaluate=_classified,
        covers=(ALL_INTENTS,),
    ),
    checks.Check(
        id="E.intents.confidence_threshold",
        title="The classification confidence threshold declared in GET /admin/agents.",
        passes_when="0 < confidence_threshold < 1.",
        severity=Severity.MEDIUM,
        source=sources.ADMIN,
        evaluate=_threshold,
        covers=("E/Intent Classification/Confidence thresholds",),
    ),
    _response_check(
        "E.responses.structured",
        "structured format",
        "Every answer is a JSON object with a contract intent, answer text and well-formed sources.",
        Severity.HIGH,
        _shape,
        "E/Responses/Structured format",
    ),
    _response_check(
        "E.responses.confidence",
        "confidence score",
        "Every answer's confidence is a number in [0, 1].",
        Severity.MEDIUM,
        _confidence,
        "E/Responses/Confidence scores",
    ),
    _response_check(
        "E.responses.explainability",
        "explanation",
        "Every answer has a non-empty explanation.",
        Severity.MEDIUM,
        _explanation,
        "E/Responses/Explainability",
    ),
    _response_check(
        "E.responses.traceability",
        "trace id",
        f"Every answer has a trace_id, echoed in the {payscope_api.client.TRACE_HEADER} header.",
        Severity.MEDIUM,
        _trace,
        "E/Responses/Traceability",
    ),
    checks.Check(
        id="E.endpoints.validation",
        title=f"{CHAT} with a body lacking the query.",
        passes_when="422 (another 4xx: Warn; 2xx or 5xx: Fail).",
        severity=Severity.MEDIUM,
        source=sources.CHAT,
        evaluate=_validation,
        covers=("E/Endpoints/Error handling",),
    ),
    checks.Check(
        id="E.endpoints.errors_structured",
        title="The body of an error answer (the invalid-body probe's).",
        passes_when='A JSON object {"error": {"code", "message"}}.',
        severity=Severity.LOW,
        source=sources.CHAT,
        evaluate=_errors_structured,
        covers=("E/Endpoints/Error handling",),
    ),
    checks.Check(
        id="E.endpoints.admin",
        title=f"{', '.join(payscope_api.client.ADMIN_PATHS)} called with an admin token.",
        passes_when="Each answers 200 with a JSON object.",
        severity=Severity.MEDIUM,
        source=sources.ACCESS,
        evaluate=_admin,
        covers=("E/Endpoints/Admin endpoints",),
    ),
)
