"""Dimension D: PayScope's agents, as declared in ``GET /admin/agents`` and seen in their answers.

Why this module exists: every chat intent is served by an LLM agent whose
settings decide whether answers are reproducible, bounded in cost and time,
and machine-readable. PayScope declares them (``payscope.admin``); the chat
probes (``payscope.chat``) show whether FORECAST answers are finite, within
their own bounds and stable, and whether WHAT_IF simulations are deterministic.

What it must not do: judge prompt wording or model quality (not observable from
outside, see ``NOT_OBSERVABLE``), send requests (sources do), or do I/O in an
evaluate function. The bounds below are the documented policy of this catalog.
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

MAX_TEMPERATURE = 0.5
"""Above this, answers over financial data stop being reproducible: Fail (contract version 1, section 6)."""
RECOMMENDED_MAX_TEMPERATURE = 0.3
"""Analytical intents with structured output should decode near-greedily: above this, Warn."""
MAX_TOKENS = 32_768
"""Upper bound of a sane per-answer completion budget (cost and latency); contract version 1, section 6."""
MAX_AGENT_TIMEOUT_S = 300.0
"""An agent may run at most this long before PayScope gives up on it."""

AGENTS = "GET /admin/agents"
Problem = Callable[[payscope_api.model.AgentSettings], str | None]


def _agents(evaluate: checks.Evaluate[payscope_api.model.Agents]) -> checks.Evaluate[sources.AdminEvidence]:
    def on_admin(evidence: sources.AdminEvidence, desired: spec.PayScopeSpec) -> Finding:
        facts = sources.facts_of(evidence.agents)
        return facts if isinstance(facts, Finding) else evaluate(facts, desired)

    return on_admin


def _coverage(agents: payscope_api.model.Agents, desired: spec.PayScopeSpec) -> Finding:
    served = [i for i in payscope_api.model.INTENTS if (a := agents.intents.get(i)) is not None and a.agent]
    missing = [i for i in payscope_api.model.INTENTS if i not in served]
    where = f"{AGENTS} → 200: agents for {', '.join(served) or 'no intent'}"
    if missing:
        return Finding.failed(
            f"No agent is configured for {', '.join(missing)}: chat queries of that intent fail; configure one "
            "per intent.",
            evidence=where,
        )
    return Finding.passed(f"Each of the {len(served)} intents has an agent.", evidence=where)


def _per_agent(
    problem: Problem, what: str, warning: Problem | None = None
) -> checks.Evaluate[payscope_api.model.Agents]:
    """Fail on any agent with a ``problem``; Warn on any with a ``warning``; else Pass."""

    def evaluate(agents: payscope_api.model.Agents, desired: spec.PayScopeSpec) -> Finding:
        if not agents.intents:
            return Finding.unknown(f"{AGENTS} declares no agent; see D.agents.coverage.")
        where = f"{AGENTS} → 200: {len(agents.intents)} agents"
        failing = [f"{i}: {p}" for i, a in agents.intents.items() if (p := problem(a)) is not None]
        if failing:
            return Finding.failed(f"Fix the {what} of: " + "; ".join(failing), evidence=where)
        if warning is not None:
            warned = [f"{i}: {p}" for i, a in agents.intents.items() if (p := warning(a)) is not None]
            if warned:
                return Finding.warned(f"Review the {what} of: " + "; ".join(warned), evidence=where)
        return Finding.passed(f"Every agent's {what} is within bounds.", evidence=where)

    return evaluate


def _temperature(a: payscope_api.model.AgentSettings) -> str | None:
    t = a.temperature
    if t is None or not 0.0 <= t <= MAX_TEMPERATURE:
        return f"temperature {t} is not in [0, {MAX_TEMPERATURE}]"
    return None


def _warm(a: payscope_api.model.AgentSettings) -> str | None:
    t = a.temperature
    return (
        f"temperature {t:g} > {RECOMMENDED_MAX_TEMPERATURE}"
        if t is not None and t > RECOMMENDED_MAX_TEMPERATURE
        else None
    )


def _token_limit(a: payscope_api.model.AgentSettings) -> str | None:
    n = a.max_tokens
    return None if n is not None and 0 < n <= MAX_TOKENS else f"max_tokens {n} is not in (0, {MAX_TOKENS}]"


def _timeout(a: payscope_api.model.AgentSettings) -> str | None:
    s = a.timeout_s
    return (
        None
        if s is not None and 0 < s <= MAX_AGENT_TIMEOUT_S
        else f"timeout_s {s} is not in (0, {MAX_AGENT_TIMEOUT_S:g}]"
    )


def _structured(a: payscope_api.model.AgentSettings) -> str | None:
    return None if a.structured_output is True else f"structured_output is {a.structured_output}, not true"


def _fallback(agents: payscope_api.model.Agents, desired: spec.PayScopeSpec) -> Finding:
    fallback = agents.fallback_intent
    where = f"{AGENTS} → 200: fallback_intent={fallback!r}"
    if fallback not in payscope_api.model.INTENTS:
        return Finding.failed(
            f"No valid fallback intent is declared (fallback_intent={fallback!r}): queries no intent fits have "
            f"nowhere to go; declare one of {', '.join(payscope_api.model.INTENTS)}.",
            evidence=where,
        )
    agent = agents.intents.get(fallback)
    if agent is None or not agent.agent:
        return Finding.failed(
            f"The fallback intent {fallback} has no agent: unclassified queries fail; configure its agent.",
            evidence=where,
        )
    return Finding.passed(f"Unclassified queries fall back to {fallback} ({agent.agent}).", evidence=where)


def _forecast_finite(evidence: sources.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    answer = evidence.intents["FORECAST"]
    where = answer.reply.describe()
    if answer.reply.status != 200:
        return Finding.unknown(f"FORECAST was not answered ({where}); see E.intents.forecast.")
    if not answer.reply.finite:
        return Finding.failed(
            "The FORECAST answer holds NaN or Infinity (not valid JSON): replace non-finite model outputs before "
            "answering.",
            evidence=where,
        )
    if not answer.structured:
        return Finding.unknown("The FORECAST answer is not a JSON object; see E.responses.structured.")
    points = answer.forecast
    if not points:
        return Finding.warned(
            "The FORECAST answer carries no data.points: its bounds cannot be checked.", evidence=where
        )
    bad = [
        n
        for n, p in enumerate(points)
        if p.lower is None
        or p.value is None
        or p.upper is None
        or not all(math.isfinite(x) for x in (p.lower, p.value, p.upper))
        or not p.lower <= p.value <= p.upper
    ]
    if bad:
        return Finding.failed(
            f"FORECAST points {bad[:5]} are missing, non-finite or outside [lower, upper]: bound-check the "
            "forecast before answering.",
            evidence=where,
        )
    return Finding.passed(f"All {len(points)} FORECAST points are finite and within their bounds.", evidence=where)


def _same_twice(intent: str, fix: str, *, differing: str = "fail") -> checks.Evaluate[sources.ChatEvidence]:
    """Pass when the intent's query, asked twice in one pass, got identical answers and data."""

    def evaluate(evidence: sources.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
        first = evidence.intents[intent]
        second = evidence.repeat if intent == "WHAT_IF" else evidence.repeat_forecast
        where = f"{first.reply.describe()} (twice)"
        if first.reply.status != 200 or second.reply.status != 200:
            return Finding.unknown(f"{intent} was not answered twice ({where}); see E.intents.{intent.lower()}.")
        if not (first.structured and second.structured):
            return Finding.unknown(f"The {intent} answers are not JSON objects; see E.responses.structured.")
        if first.digest != second.digest:
            message = f"Two identical {intent} requests got different answers: {fix}"
            return (
                Finding.warned(message, evidence=where)
                if differing == "warn"
                else Finding.failed(message, evidence=where)
            )
        return Finding.passed(f"Identical {intent} requests get identical answers and data.", evidence=where)

    return evaluate


def _declared(
    check_id: str,
    title: str,
    passes_when: str,
    severity: Severity,
    evaluate: checks.Evaluate[payscope_api.model.Agents],
    *covers: str,
) -> checks.Check[sources.AdminEvidence]:
    return checks.Check(check_id, title, passes_when, severity, sources.ADMIN, _agents(evaluate), covers)


CHECKS: tuple[checks.Check[Any], ...] = (
    _declared(
        "D.agents.coverage",
        "Which intents have an agent in GET /admin/agents.",
        f"Each of {', '.join(payscope_api.model.INTENTS)} has a named agent.",
        Severity.HIGH,
        _coverage,
        "D/Agent Coverage/All intents have agents",
        "D/Agent Coverage/Agent orchestration complete",
    ),
    _declared(
        "D.agents.temperature",
        "The sampling temperature of every declared agent.",
        f"0 <= temperature <= {MAX_TEMPERATURE} (above {RECOMMENDED_MAX_TEMPERATURE}: Warn).",
        Severity.MEDIUM,
        _per_agent(_temperature, "temperature", _warm),
        "D/Prompt Safety/Temperature settings",
    ),
    _declared(
        "D.agents.token_limits",
        "The completion token limit of every declared agent (max_tokens).",
        f"0 < max_tokens <= {MAX_TOKENS}.",
        Severity.MEDIUM,
        _per_agent(_token_limit, "token limit"),
        "D/Prompt Safety/Token limits",
        "D/GNN/Simulation/Bounded execution",
    ),
    _declared(
        "D.agents.timeouts",
        "The time limit of every declared agent (timeout_s), the simulation agent included.",
        f"0 < timeout_s <= {MAX_AGENT_TIMEOUT_S:g}.",
        Severity.HIGH,
        _per_agent(_timeout, "timeout"),
        "D/Agent Coverage/Timeout handling",
        "D/GNN/Simulation/Bounded execution",
        "D/GNN/Simulation/Timeout protection",
    ),
    _declared(
        "D.agents.structured_output",
        "Whether every declared agent is constrained to structured output (structured_output).",
        "structured_output is true for every agent.",
        Severity.HIGH,
        _per_agent(_structured, "output mode"),
        "D/Prompt Safety/Structured outputs enforced",
    ),
    _declared(
        "D.agents.fallback",
        "The fallback intent declared in GET /admin/agents, and whether it has an agent.",
        "fallback_intent is a contract intent that has an agent.",
        Severity.MEDIUM,
        _fallback,
        "E/Intent Classification/Fallback logic",
    ),
    checks.Check(
        id="D.forecast.finite",
        title="The FORECAST answer's data.points: finite numbers, each value within its [lower, upper] band.",
        passes_when="The answer is strict JSON and every point is finite with lower <= value <= upper.",
        severity=Severity.HIGH,
        source=sources.CHAT,
        evaluate=_forecast_finite,
        covers=("D/Forecasting/Bounds checking", "D/Forecasting/NaN/Inf handling"),
    ),
    checks.Check(
        id="D.simulation.deterministic",
        title="Two identical WHAT_IF queries in one pass, compared (answer and data).",
        passes_when="Both answers and their data are identical.",
        severity=Severity.MEDIUM,
        source=sources.CHAT,
        evaluate=_same_twice(
            "WHAT_IF", "seed the simulation from the request so the same scenario always gives the same result."
        ),
        covers=("D/GNN/Simulation/Deterministic outputs",),
    ),
    checks.Check(
        id="D.forecast.stable",
        title="Two identical FORECAST queries in one pass, compared (answer and data).",
        passes_when="Both answers and their data are identical (otherwise Warn: contract version 1 says SHOULD).",
        severity=Severity.LOW,
        source=sources.CHAT,
        evaluate=_same_twice(
            "FORECAST", "an unstable forecast over unchanged data cannot be trusted; fix its seed.", differing="warn"
        ),
        covers=("D/Forecasting/Stability checks",),
    ),
)

NOT_OBSERVABLE: tuple[checks.NotObservable, ...] = (
    checks.NotObservable(
        "D/Prompt Safety/No hallucination-prone prompts",
        "Prompts live inside PayScope and their wording is a matter of review, not of a probe; the audit checks "
        "the settings that limit hallucination instead (D.agents.temperature, D.agents.structured_output).",
    ),
)
