"""Dimension E: PayScope's chat and admin endpoints, probed as a tenant analyst and as an admin.

Why this module exists: PayScope's API promises that ``POST /chat/query`` answers each of the five
intents with a structured, explainable, traceable answer with a confidence score, sends queries no
intent fits to a fallback, refuses invalid requests cleanly, and serves admins the admin endpoints.
Evidence: the chat probes (``payscope.chat``), ``/admin/agents`` and the admin calls of the access
probes. Answers are judged only once the chat endpoint answered at all (``depends_on``).

What it must not do: send requests (sources do), judge answer content beyond the contract's shape
(no model quality), or do I/O in an evaluate function.
"""

from __future__ import annotations

from payscope_operator.api import spec, status
from payscope_operator.audit import probes, registry
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
ChatEvidence = payscope_api.ChatEvidence
CHECKS = registry.Registry()
CHAT = f"POST {api_client.CHAT_PATH}"
ALL_INTENTS = "E/Intent Classification/All intents supported (DESCRIBE, COMPARE, ANOMALY, FORECAST, WHAT_IF)"
INTENT_COVERS = (
    ALL_INTENTS,
    "D/Agent Coverage/Agent orchestration complete",
    "D/Agent Coverage/All intents have agents",  # an intent answered by its own agent has one
)
ANSWERED = "E.endpoints.chat_query"  # what judging answers depends on: at least one intent was answered 200


@CHECKS.check(
    "E.endpoints.chat_query",
    fix="Make POST /chat/query answer an authenticated tenant query with 200; check the api logs and"
    " spec.api.url/auth.",
    source=payscope_api.CHAT,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title=f"Whether {CHAT} exists and answers an authenticated tenant query.",
    passes_when="At least one intent's query is answered 200.",
    covers=("E/Endpoints/POST /chat/query exists",),
)
def chat_query(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    replies = [a.reply for a in evidence.intents.values()]
    answered = [i for i, a in evidence.intents.items() if a.reply.status == 200]
    where = "; ".join(f"{i} → {r.status or r.failure}" for i, r in zip(evidence.intents, replies, strict=True))
    if answered:
        return Finding.passed(f"{CHAT} answers ({len(answered)} of {len(replies)} intents).", evidence=where)
    if all(r.status is None for r in replies):
        return Finding.unknown(f"{CHAT} did not answer: {replies[0].failure}.")
    if any(r.status in (404, 405) for r in replies):
        return Finding.failed(f"{CHAT} does not exist on this PayScope: serve contract version 1.", evidence=where)
    return Finding.failed(f"{CHAT} answered no intent ({where}).", evidence=where)


def _intent(evidence: ChatEvidence, intent: str) -> Finding:
    answer = evidence.intents[intent]
    reply = answer.reply
    where = f"{CHAT} intent={intent} → {reply.status}"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status != 200:
        code = f", error {answer.error.code}" if answer.error is not None and answer.error.code else ""
        return Finding.failed(
            f"PayScope could not answer a {intent} query ({reply.status}{code}): check the {intent} agent and "
            "the stores it reads.",
            evidence=where,
        )
    if not answer.structured:
        return Finding.unknown(f"The {intent} answer is not a JSON object: its intent cannot be read.")
    if answer.intent != intent or answer.fallback is True:
        return Finding.failed(
            f"A query sent with intent {intent} was answered as {answer.intent!r} (fallback={answer.fallback}): "
            "an explicit intent must reach its own agent.",
            evidence=where,
        )
    return Finding.passed(f"{intent} queries are answered by the {intent} agent.", evidence=where)


@CHECKS.check(
    "E.intents.describe",
    fix="Route intent DESCRIBE to its own agent instead of the fallback.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=f"{CHAT} with intent DESCRIBE, as the probe tenant.",
    passes_when="200 with a JSON answer whose intent is DESCRIBE, not a fallback.",
    covers=INTENT_COVERS,
)
def intent_describe(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _intent(evidence, "DESCRIBE")


@CHECKS.check(
    "E.intents.compare",
    fix="Route intent COMPARE to its own agent instead of the fallback.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=f"{CHAT} with intent COMPARE, as the probe tenant.",
    passes_when="200 with a JSON answer whose intent is COMPARE, not a fallback.",
    covers=INTENT_COVERS,
)
def intent_compare(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _intent(evidence, "COMPARE")


@CHECKS.check(
    "E.intents.anomaly",
    fix="Route intent ANOMALY to its own agent instead of the fallback.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=f"{CHAT} with intent ANOMALY, as the probe tenant.",
    passes_when="200 with a JSON answer whose intent is ANOMALY, not a fallback.",
    covers=INTENT_COVERS,
)
def intent_anomaly(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _intent(evidence, "ANOMALY")


@CHECKS.check(
    "E.intents.forecast",
    fix="Route intent FORECAST to its own agent instead of the fallback.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=f"{CHAT} with intent FORECAST, as the probe tenant.",
    passes_when="200 with a JSON answer whose intent is FORECAST, not a fallback.",
    covers=(*INTENT_COVERS, "D/Forecasting/No runtime crashes"),
)
def intent_forecast(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _intent(evidence, "FORECAST")


@CHECKS.check(
    "E.intents.what_if",
    fix="Route intent WHAT_IF to its own agent instead of the fallback.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title=f"{CHAT} with intent WHAT_IF, as the probe tenant.",
    passes_when="200 with a JSON answer whose intent is WHAT_IF, not a fallback.",
    covers=INTENT_COVERS,
)
def intent_what_if(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _intent(evidence, "WHAT_IF")


@CHECKS.check(
    "E.intents.fallback",
    fix="Answer a query no intent fits through the fallback intent, with fallback true.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=f"{CHAT} without an intent, for a query no intent fits.",
    passes_when="200 with fallback true (answered through the fallback intent).",
    covers=("E/Intent Classification/Fallback logic",),
)
def intent_fallback(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    answer = evidence.unclassified
    reply = answer.reply
    where = f"{CHAT} (no intent, unclassifiable query) → {reply.status}"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status != 200:
        return Finding.failed(
            f"A query no intent fits was answered {reply.status} instead of through the fallback intent: route "
            "unclassified and low-confidence queries to the declared fallback.",
            evidence=where,
        )
    if not answer.structured:
        return Finding.unknown("The fallback answer is not a JSON object, so whether it fell back is unknown.")
    if answer.fallback is not True:
        return Finding.failed(
            f"A query no intent fits was answered as {answer.intent!r} without falling back (fallback="
            f"{answer.fallback}): apply the confidence threshold and answer through the fallback intent.",
            evidence=where,
        )
    return Finding.passed(f"A query no intent fits is answered through the fallback intent {answer.intent}.", where)


@CHECKS.check(
    "E.intents.classification",
    fix="Fix intent classification so a plain forecasting question is answered as FORECAST, not through the fallback.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=f"{CHAT} without an intent, for a query plainly about {payscope_api.CLASSIFIABLE[0]}.",
    passes_when=f"200 with intent {payscope_api.CLASSIFIABLE[0]} and fallback false.",
    covers=(ALL_INTENTS,),
)
def intent_classification(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    expected, query = payscope_api.CLASSIFIABLE
    answer = evidence.classified
    reply = answer.reply
    where = f"{CHAT} (no intent, {query!r}) → {reply.status}"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status != 200:
        return Finding.failed(
            f"A query plainly about {expected}, sent without an intent, was answered {reply.status}: check the "
            "intent classifier.",
            evidence=where,
        )
    if not answer.structured:
        return Finding.unknown("The classified answer is not a JSON object, so the intent it was given is unknown.")
    if answer.intent != expected or answer.fallback is not False:
        return Finding.failed(
            f"{query!r} was classified as {answer.intent!r} (fallback={answer.fallback}), not {expected}: the "
            "classifier misses plain queries.",
            evidence=where,
        )
    return Finding.passed(f"A plain {expected} query is classified as {expected}.", evidence=where)


@CHECKS.check(
    "E.intents.confidence_threshold",
    fix="Set confidence_threshold strictly between 0 and 1 in PayScope's agent configuration.",
    source=payscope_api.AGENTS,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="The classification confidence threshold declared in GET /admin/agents.",
    passes_when="0 < confidence_threshold < 1.",
    covers=("E/Intent Classification/Confidence thresholds",),
)
def confidence_threshold(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    value = agents.confidence_threshold
    where = f"GET /admin/agents → 200: confidence_threshold={value}"
    if value is None or not 0.0 < value < 1.0:
        return Finding.failed(
            f"No confidence threshold in (0, 1) is declared (confidence_threshold={value}): set the score below "
            "which a classification goes to the fallback intent.",
            evidence=where,
        )
    return Finding.passed(f"Classifications below {value:g} go to the fallback intent.", evidence=where)


@CHECKS.check(
    "E.endpoints.validation",
    fix="Validate request bodies and answer 422 for a body without a query.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=f"{CHAT} with a body lacking the query.",
    passes_when="422 (another 4xx: Warn; 2xx or 5xx: Fail).",
    covers=("E/Endpoints/Error handling",),
)
def validation(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    reply = evidence.invalid_body.reply
    where = f"{CHAT} with a body lacking query → {reply.status}"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status == 422:
        return Finding.passed("Invalid request bodies are refused with 422.", evidence=where)
    if reply.status >= 500 or reply.status < 400:
        return Finding.failed(
            f"An invalid body was answered {reply.status}: validate request bodies and refuse them with 422 "
            "before they reach an agent.",
            evidence=where,
        )
    return Finding.warned(f"An invalid body was refused with {reply.status}; contract version 1 says 422.", where)


@CHECKS.check(
    "E.endpoints.errors_structured",
    fix='Answer errors as JSON {"error": {"code", "message"}}.',
    source=payscope_api.CHAT,
    severity=Severity.LOW,
    grade=Grade.OBSERVED,
    title="The body of an error answer (the invalid-body probe's).",
    passes_when='A JSON object {"error": {"code", "message"}}.',
    covers=("E/Endpoints/Error handling",),
)
def errors_structured(evidence: ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    answer = evidence.invalid_body
    reply = answer.reply
    where = f"{CHAT} with a body lacking query → {reply.status} ({reply.content_type or 'no content type'})"
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status < 400:
        return Finding.unknown(f"The invalid-body probe was answered {reply.status}: there is no error body to judge.")
    if answer.error is None or not answer.error.code or not answer.error.message:
        return Finding.failed(
            'Error answers are not the contract\'s JSON body {"error": {"code", "message"}, "trace_id"}: answer '
            "errors as JSON and never with a stack trace.",
            evidence=where,
        )
    return Finding.passed(f"Errors are answered as JSON (code {answer.error.code}).", evidence=where)


@CHECKS.check(
    "E.endpoints.admin",
    fix="Serve /admin/agents, /admin/pipeline and /admin/runtime to admin tokens with 200 and a JSON object.",
    source=payscope_api.ACCESS,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=f"{', '.join(api_client.ADMIN_PATHS)} called with an admin token.",
    passes_when="Each answers 200 with a JSON object.",
    covers=("E/Endpoints/Admin endpoints",),
)
def admin_endpoints(evidence: payscope_api.AccessEvidence, desired: spec.PayScopeSpec) -> Finding:
    replies = [evidence.reply(p) for p in probes.ADMIN_AS_ADMIN]
    where = "; ".join(r.describe() for r in replies)
    silent = [r for r in replies if r.status is None]
    if silent:
        return Finding.unknown(payscope_api.explain(silent[0]))
    failing = [payscope_api.explain(r) for r in replies if r.status != 200 or r.body is None]
    if failing:
        return Finding.failed("Admin endpoints do not serve the admin role: " + "; ".join(failing), evidence=where)
    return Finding.passed(f"All {len(replies)} admin endpoints answer the admin role.", evidence=where)
