"""Dimension E: what every chat answer must carry: structure, a confidence score, an explanation, a trace.

Why this module exists: the contract promises that each answer of ``POST /chat/query`` is a
structured object with a bounded confidence score (never a certainty), an explanation and a trace
id that ties it to the audit log. These checks judge the answers the chat probes received, only
once the chat endpoint answered at all (``depends_on`` :data:`apis.ANSWERED`); the endpoint and
intent checks are in ``apis``.

What it must not do: send requests (sources do), judge answer content beyond the contract's shape
(no model quality), or do I/O in an evaluate function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import apis
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
ChatEvidence = payscope_api.ChatEvidence
CHECKS = registry.Registry()


def _answers(evidence: ChatEvidence, problem: Callable[[api_model.Answer], str | None], what: str) -> Finding:
    """Pass when every intent answered 200 passes ``problem`` (None = fine); Unknown when none was answered."""
    answered = evidence.answered()
    if not answered:
        return Finding.unknown(f"No intent was answered 200, so there is no {what} to judge.")
    where = f"{apis.CHAT} → 200 for {', '.join(i for i, _ in answered)}"
    failing = [f"{i}: {p}" for i, a in answered if (p := problem(a)) is not None]
    if failing:
        return Finding.failed(f"Answers lack {what}: " + "; ".join(failing), evidence=where)
    return Finding.passed(f"All {len(answered)} answers carry {what}.", evidence=where)


def _shape(a: api_model.Answer) -> str | None:
    if not a.structured:
        return f"body is {a.reply.content_type or 'untyped'}, not a JSON object"
    if a.intent not in api_model.INTENTS:
        return f"intent {a.intent!r} is not a contract intent"
    if not a.answer:
        return "no answer text"
    if a.sources is None or any(not (s.kind and s.ref and s.bank_id) for s in a.sources):
        return "sources is not a list of {kind, ref, bank_id}"
    return None


@CHECKS.check(
    "E.responses.structured",
    fix="Answer every intent with a JSON object holding intent, answer and a well-formed sources list.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The structured format of every intent's answer.",
    passes_when="Every answer is a JSON object with a contract intent, answer text and well-formed sources.",
    covers=("E/Responses/Structured format", "D/Prompt Safety/Structured outputs enforced"),
    depends_on=(apis.ANSWERED,),
)
def responses_structured(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _answers(evidence, _shape, "structured format")


def _confidence(a: api_model.Answer) -> str | None:
    c = a.confidence
    return None if c is not None and math.isfinite(c) and 0.0 <= c <= 1.0 else f"confidence {c} is not in [0, 1]"


def _certain(a: api_model.Answer) -> str | None:
    """A request that named its intent is not classified: its confidence is 1.0 (contract section 5.2)."""
    return None if a.confidence == 1.0 else f"confidence {a.confidence:g} for a named intent, not 1.0"


@CHECKS.check(
    "E.responses.confidence",
    fix="Report a confidence between 0 and 1 in every answer.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The confidence score of every intent's answer.",
    passes_when="Every answer's confidence is a number in [0, 1]; these requests named their intent, so it is 1.0 "
    "(otherwise Warn).",
    covers=("E/Responses/Confidence scores",),
    depends_on=(apis.ANSWERED,),
)
def responses_confidence(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    found = _answers(evidence, _confidence, "confidence score")
    if found.status != status.CheckStatus.PASS:
        return found
    uncertain = [f"{i}: {p}" for i, a in evidence.answered() if (p := _certain(a)) is not None]
    if uncertain:
        return Finding.warned(
            "Answers to requests naming their intent report a classifier's confidence: " + "; ".join(uncertain),
            evidence=found.evidence,
        )
    return found


def _explanation(a: api_model.Answer) -> str | None:
    return None if a.explanation and a.explanation.strip() else "no explanation"


@CHECKS.check(
    "E.responses.explainability",
    fix="Return a non-empty explanation with every answer.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The explanation of every intent's answer.",
    passes_when="Every answer has a non-empty explanation.",
    covers=("E/Responses/Explainability",),
    depends_on=(apis.ANSWERED,),
)
def responses_explainability(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _answers(evidence, _explanation, "explanation")


def _trace(a: api_model.Answer) -> str | None:
    if not a.trace_id:
        return "no trace_id"
    if a.reply.trace_header != a.trace_id:
        return f"the {api_client.TRACE_HEADER} header differs from trace_id"
    return None


@CHECKS.check(
    "E.responses.traceability",
    fix="Return a trace_id with every answer and echo it in the X-Trace-Id header.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The trace id of every intent's answer.",
    passes_when=f"Every answer has a trace_id, echoed in the {api_client.TRACE_HEADER} header.",
    covers=("E/Responses/Traceability",),
    depends_on=(apis.ANSWERED,),
)
def responses_traceability(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _answers(evidence, _trace, "trace id")
