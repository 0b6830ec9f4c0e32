"""Dimension D: PayScope's agents, as declared in ``GET /admin/agents`` and seen in their answers.

Why this module exists: every chat intent is served by an LLM agent whose
settings decide whether answers are reproducible, bounded in cost and time,
and machine-readable. PayScope declares them in ``GET /admin/agents`` (Reported
evidence); the chat probes (``payscope.chat``) show whether FORECAST answers are
finite, within their own bounds and stable, and whether WHAT_IF simulations are
deterministic (Observed), once E has seen those intents answered by their agents.

What it must not do: judge prompt wording or model quality (not observable from
outside, see ``NOT_OBSERVABLE``), send requests (sources do), or do I/O in an
evaluate function. The bounds below are the documented policy of this catalog.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.sources import payscope_api
from payscope_operator.backends.payscope_api import model as api_model

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()

MAX_TEMPERATURE = 0.5
"""Above this, answers over financial data stop being reproducible: Fail (contract version 1, section 6)."""
RECOMMENDED_MAX_TEMPERATURE = 0.3
"""Analytical intents with structured output should decode near-greedily: above this, Warn."""
MAX_TOKENS = 32_768
"""Upper bound of a sane per-answer completion budget (cost and latency); contract version 1, section 6."""
MAX_AGENT_TIMEOUT_S = 300.0
"""An agent may run at most this long before PayScope gives up on it."""

AGENTS = "GET /admin/agents"
Problem = Callable[[api_model.AgentSettings], str | None]


@CHECKS.check(
    "D.agents.coverage",
    fix="Register an agent for every intent (DESCRIBE, COMPARE, ANOMALY, FORECAST, WHAT_IF) in PayScope's"
    " agent configuration.",
    source=payscope_api.AGENTS,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="Which intents have an agent in GET /admin/agents.",
    passes_when=f"Each of {', '.join(api_model.INTENTS)} has a named agent.",
    covers=("D/Agent Coverage/All intents have agents", "D/Agent Coverage/Agent orchestration complete"),
)
def coverage(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    served = [i for i in api_model.INTENTS if (a := agents.intents.get(i)) is not None and a.agent]
    missing = [i for i in api_model.INTENTS if i not in served]
    where = f"{AGENTS} → 200: agents for {', '.join(served) or 'no intent'}"
    if missing:
        return Finding.failed(
            f"No agent is configured for {', '.join(missing)}: chat queries of that intent fail; configure one "
            "per intent.",
            evidence=where,
        )
    return Finding.passed(f"Each of the {len(served)} intents has an agent.", evidence=where)


def _per_agent(agents: api_model.Agents, problem: Problem, what: str, warning: Problem | None = None) -> Finding:
    """Fail on any agent with a ``problem``; Warn on any with a ``warning``; else Pass."""
    if not agents.intents:
        return Finding.unknown(f"{AGENTS} declares no agent, so there is no {what} to judge.")
    where = f"{AGENTS} → 200: {len(agents.intents)} agents"
    failing = [f"{i}: {p}" for i, a in agents.intents.items() if (p := problem(a)) is not None]
    if failing:
        return Finding.failed(f"Fix the {what} of: " + "; ".join(failing), evidence=where)
    if warning is not None:
        warned = [f"{i}: {p}" for i, a in agents.intents.items() if (p := warning(a)) is not None]
        if warned:
            return Finding.warned(f"Review the {what} of: " + "; ".join(warned), evidence=where)
    return Finding.passed(f"Every agent's {what} is within bounds.", evidence=where)


def _temperature(a: api_model.AgentSettings) -> str | None:
    t = a.temperature
    if t is None or not 0.0 <= t <= MAX_TEMPERATURE:
        return f"temperature {t} is not in [0, {MAX_TEMPERATURE}]"
    return None


def _warm(a: api_model.AgentSettings) -> str | None:
    t = a.temperature
    return (
        f"temperature {t:g} > {RECOMMENDED_MAX_TEMPERATURE}"
        if t is not None and t > RECOMMENDED_MAX_TEMPERATURE
        else None
    )


@CHECKS.check(
    "D.agents.temperature",
    fix="Lower each agent's temperature to 0.3 or less (0 for deterministic answers).",
    source=payscope_api.AGENTS,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="The sampling temperature of every declared agent.",
    passes_when=f"0 <= temperature <= {MAX_TEMPERATURE} (above {RECOMMENDED_MAX_TEMPERATURE}: Warn).",
    covers=("D/Prompt Safety/Temperature settings",),
)
def temperature(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    return _per_agent(agents, _temperature, "temperature", _warm)


def _token_limit(a: api_model.AgentSettings) -> str | None:
    n = a.max_tokens
    return None if n is not None and 0 < n <= MAX_TOKENS else f"max_tokens {n} is not in (0, {MAX_TOKENS}]"


@CHECKS.check(
    "D.agents.token_limits",
    fix="Give every agent a max_tokens between 1 and 32768.",
    source=payscope_api.AGENTS,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="The completion token limit of every declared agent (max_tokens).",
    passes_when=f"0 < max_tokens <= {MAX_TOKENS}.",
    covers=("D/Prompt Safety/Token limits", "D/GNN/Simulation/Bounded execution"),
)
def token_limits(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    return _per_agent(agents, _token_limit, "token limit")


def _timeout(a: api_model.AgentSettings) -> str | None:
    s = a.timeout_s
    ok = s is not None and 0 < s <= MAX_AGENT_TIMEOUT_S
    return None if ok else f"timeout_s {s} is not in (0, {MAX_AGENT_TIMEOUT_S:g}]"


@CHECKS.check(
    "D.agents.timeouts",
    fix="Give every agent a timeout_s between 1 and 300 seconds.",
    source=payscope_api.AGENTS,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="The time limit of every declared agent (timeout_s), the simulation agent included.",
    passes_when=f"0 < timeout_s <= {MAX_AGENT_TIMEOUT_S:g}.",
    covers=(
        "D/Agent Coverage/Timeout handling",
        "D/GNN/Simulation/Bounded execution",
        "D/GNN/Simulation/Timeout protection",
    ),
)
def timeouts(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    return _per_agent(agents, _timeout, "timeout")


def _structured(a: api_model.AgentSettings) -> str | None:
    return None if a.structured_output is True else f"structured_output is {a.structured_output}, not true"


@CHECKS.check(
    "D.agents.structured_output",
    fix="Turn on structured_output (a JSON schema for the answer) for every agent.",
    source=payscope_api.AGENTS,
    severity=Severity.HIGH,
    grade=Grade.REPORTED,
    title="Whether every declared agent is constrained to structured output (structured_output).",
    passes_when="structured_output is true for every agent.",
    covers=("D/Prompt Safety/Structured outputs enforced",),
)
def structured_output(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    return _per_agent(agents, _structured, "output mode")


@CHECKS.check(
    "D.agents.fallback",
    fix="Set fallback_intent to a contract intent that has an agent (DESCRIBE is the usual choice).",
    source=payscope_api.AGENTS,
    severity=Severity.MEDIUM,
    grade=Grade.REPORTED,
    title="The fallback intent declared in GET /admin/agents, and whether it has an agent.",
    passes_when="fallback_intent is a contract intent that has an agent.",
    covers=("E/Intent Classification/Fallback logic",),
)
def fallback(agents: api_model.Agents, desired: spec.PayScopeSpec) -> Finding:
    chosen = agents.fallback_intent
    where = f"{AGENTS} → 200: fallback_intent={chosen!r}"
    if chosen not in api_model.INTENTS:
        return Finding.failed(
            f"No valid fallback intent is declared (fallback_intent={chosen!r}): queries no intent fits have "
            f"nowhere to go; declare one of {', '.join(api_model.INTENTS)}.",
            evidence=where,
        )
    agent = agents.intents.get(chosen)
    if agent is None or not agent.agent:
        return Finding.failed(
            f"The fallback intent {chosen} has no agent: unclassified queries fail; configure its agent.",
            evidence=where,
        )
    return Finding.passed(f"Unclassified queries fall back to {chosen} ({agent.agent}).", evidence=where)


@CHECKS.check(
    "D.forecast.finite",
    fix="Make the forecaster drop or clamp NaN/Inf and keep every value inside its [lower, upper] band;"
    " answer strict JSON.",
    source=payscope_api.CHAT,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The FORECAST answer's data.points: finite numbers, each value within its [lower, upper] band.",
    passes_when="The answer is strict JSON and every point is finite with lower <= value <= upper.",
    covers=("D/Forecasting/Bounds checking", "D/Forecasting/NaN/Inf handling"),
    depends_on=("E.intents.forecast",),
)
def forecast_finite(evidence: payscope_api.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    answer = evidence.intents["FORECAST"]
    where = answer.reply.describe()
    if not answer.reply.finite:
        return Finding.failed(
            "The FORECAST answer holds NaN or Infinity (not valid JSON): replace non-finite model outputs before "
            "answering.",
            evidence=where,
        )
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


def _same_twice(first: api_model.Answer, second: api_model.Answer, intent: str, fix: str, *, warn: bool) -> Finding:
    """Pass when the intent's query, asked twice in one pass, got identical answers and data."""
    where = f"{first.reply.describe()} (twice)"
    if second.reply.status != 200 or not second.structured:
        return Finding.unknown(f"The repeated {intent} request was not answered with a JSON object ({where}).")
    if first.digest != second.digest:
        message = f"Two identical {intent} requests got different answers: {fix}"
        return Finding.warned(message, evidence=where) if warn else Finding.failed(message, evidence=where)
    return Finding.passed(f"Identical {intent} requests get identical answers and data.", evidence=where)


@CHECKS.check(
    "D.simulation.deterministic",
    fix="Seed the WHAT_IF simulation (and bypass caches keyed on request ids) so identical queries give"
    " identical answers.",
    source=payscope_api.CHAT,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Two identical WHAT_IF queries in one pass, compared (answer and data).",
    passes_when="Both answers and their data are identical.",
    covers=("D/GNN/Simulation/Deterministic outputs",),
    depends_on=("E.intents.what_if",),
)
def simulation_deterministic(evidence: payscope_api.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "seed the simulation from the request so the same scenario always gives the same result."
    return _same_twice(evidence.intents["WHAT_IF"], evidence.repeat, "WHAT_IF", fix, warn=False)


@CHECKS.check(
    "D.forecast.stable",
    fix="Seed the forecaster so identical FORECAST queries give identical answers.",
    source=payscope_api.CHAT,
    severity=Severity.LOW,
    grade=Grade.OBSERVED,
    title="Two identical FORECAST queries in one pass, compared (answer and data).",
    passes_when="Both answers and their data are identical (otherwise Warn: contract version 1 says SHOULD).",
    covers=("D/Forecasting/Stability checks",),
    depends_on=("E.intents.forecast",),
)
def forecast_stable(evidence: payscope_api.ChatEvidence, desired: spec.PayScopeSpec) -> Finding:
    fix = "an unstable forecast over unchanged data cannot be trusted; fix its seed."
    return _same_twice(evidence.intents["FORECAST"], evidence.repeat_forecast, "FORECAST", fix, warn=True)


NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    registry.NotObservable(
        "D/Prompt Safety/No hallucination-prone prompts",
        "Prompts live inside PayScope and their wording is a matter of review, not of a probe; the audit checks "
        "the settings that limit hallucination instead (D.agents.temperature, D.agents.structured_output).",
    ),
)
