"""Intent classification, agent configuration and deterministic answers of the fixture.

Why it exists: the audit's D and E checks ask whether every intent has an
agent configured within bounds, whether ``POST /chat/query`` answers each
intent with the structured response, and whether the confidence threshold and
the fallback intent behave. The fixture needs a real (if tiny) classifier and
answers that are deterministic, so that a test can state what a correct answer
looks like and each chat fault can break exactly one property of it.

What it must not do: touch HTTP, authentication or metrics, or be mistaken
for PayScope's intelligence: keywords and a seeded random generator stand in
for models, and every number is synthetic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tests.payscope_api import contract
from tests.payscope_api.config import FixtureConfig
from tests.payscope_api.contract import Intent
from tests.payscope_api.faults import FaultName, FaultSet

KEYWORDS: Mapping[Intent, frozenset[str]] = {
    Intent.DESCRIBE: frozenset({"describe", "summary", "summarise", "summarize", "overview", "breakdown"}),
    Intent.COMPARE: frozenset({"compare", "versus", "vs", "difference", "against", "benchmark"}),
    Intent.ANOMALY: frozenset({"anomaly", "anomalies", "unusual", "fraud", "outlier", "outliers", "suspicious"}),
    Intent.FORECAST: frozenset({"forecast", "predict", "projection", "next", "future", "expected"}),
    Intent.WHAT_IF: frozenset({"scenario", "simulate", "suppose", "hypothetical"}),
}
#: The WHAT_IF agent's bound on simulation steps (``max_steps``), and the steps one answer runs.
MAX_STEPS = 1000
STEPS = 100
#: Confidence by number of keyword hits (three or more: the last value).
CONFIDENCE_BY_HITS: tuple[float, ...] = (0.0, 0.55, 0.8, 0.95)

DEFAULT_AGENTS: Mapping[Intent, contract.AgentConfig] = {
    Intent.DESCRIBE: {
        "agent": "describe-agent",
        "temperature": 0.1,
        "max_tokens": 1024,
        "timeout_s": 20.0,
        "structured_output": True,
    },
    Intent.COMPARE: {
        "agent": "compare-agent",
        "temperature": 0.1,
        "max_tokens": 1024,
        "timeout_s": 20.0,
        "structured_output": True,
    },
    Intent.ANOMALY: {
        "agent": "anomaly-agent",
        "temperature": 0.0,
        "max_tokens": 1024,
        "timeout_s": 30.0,
        "structured_output": True,
    },
    Intent.FORECAST: {
        "agent": "forecast-agent",
        "temperature": 0.0,
        "max_tokens": 2048,
        "timeout_s": 45.0,
        "structured_output": True,
    },
    Intent.WHAT_IF: {
        "agent": "simulation-agent",
        "temperature": 0.2,
        "max_tokens": 2048,
        "timeout_s": 60.0,
        "structured_output": True,
        "max_steps": MAX_STEPS,
    },
}

_WORD = re.compile(r"[a-z_]+")


@dataclass(frozen=True)
class Classification:
    """The classifier's best intent (None when no keyword matched) and its confidence."""

    intent: Intent | None
    confidence: float


@dataclass(frozen=True)
class Answer:
    answer: str
    explanation: str
    sources: list[contract.Source]
    data: contract.ForecastData | contract.WhatIfData | None


def classify(query: str) -> Classification:
    """Count keyword hits per intent; the most hits wins, ties go to the earlier intent."""
    text = query.lower()
    words = set(_WORD.findall(text))
    best: Intent | None = None
    best_hits = 0
    for intent in contract.INTENTS:
        hits = len(words & KEYWORDS[intent]) + (2 if intent is Intent.WHAT_IF and "what if" in text else 0)
        if hits > best_hits:
            best, best_hits = intent, hits
    return Classification(best, CONFIDENCE_BY_HITS[min(best_hits, len(CONFIDENCE_BY_HITS) - 1)])


def agents(faults: FaultSet) -> dict[str, contract.AgentConfig]:
    """The agent of each intent, as ``GET /admin/agents`` reports it under the active faults."""
    omitted = faults.args(FaultName.OMIT_INTENT)
    configured: dict[str, contract.AgentConfig] = {}
    for intent, default in DEFAULT_AGENTS.items():
        if intent in omitted:
            continue
        agent: contract.AgentConfig = {**default}
        if FaultName.AGENT_TEMPERATURE_TOO_HIGH in faults:
            agent["temperature"] = 1.2
        if FaultName.AGENT_NO_TOKEN_LIMIT in faults:
            agent["max_tokens"] = None
        if FaultName.AGENT_NO_TIMEOUT in faults:
            agent["timeout_s"] = None
        if FaultName.UNSTRUCTURED_OUTPUT in faults:
            agent["structured_output"] = False
        configured[intent.value] = agent
    return configured


def agents_body(config: FixtureConfig, faults: FaultSet) -> contract.AgentsBody:
    return {
        "intents": agents(faults),
        "fallback_intent": None if FaultName.FALLBACK_UNDECLARED in faults else config.fallback_intent,
        "confidence_threshold": None if FaultName.NO_CONFIDENCE_THRESHOLD in faults else config.confidence_threshold,
    }


def _sources(intent: Intent, bank_id: str) -> list[contract.Source]:
    postgres: contract.Source = {"kind": "postgres", "ref": "public.transactions", "bank_id": bank_id}
    graph: contract.Source = {"kind": "neo4j", "ref": "Account", "bank_id": bank_id}
    vectors: contract.Source = {"kind": "pinecone", "ref": f"payscope-rag/{bank_id}", "bank_id": bank_id}
    by_intent: Mapping[Intent, list[contract.Source]] = {
        Intent.DESCRIBE: [postgres],
        Intent.COMPARE: [postgres, graph],
        Intent.ANOMALY: [graph, vectors],
        Intent.FORECAST: [postgres],
        Intent.WHAT_IF: [graph, postgres],
    }
    return list(by_intent[intent])


def _rng(intent: Intent, query: str, bank_id: str) -> tuple[random.Random, int]:
    digest = hashlib.sha256(f"{bank_id}|{intent.value}|{query}".encode()).digest()
    seed = int.from_bytes(digest[:6], "big")
    return random.Random(seed), seed


def _forecast(rng: random.Random, faults: FaultSet) -> contract.ForecastData:
    if FaultName.FORECAST_UNSTABLE in faults:
        rng = random.Random()  # seeded from the OS: a forecast that forgot its seed
    start = dt.date.today()
    level, trend = rng.uniform(1e5, 1e6), rng.uniform(-0.02, 0.05)
    points: list[contract.ForecastPoint] = []
    for day in range(1, 8):
        value = round(level * (1 + trend) ** day, 2)
        spread = round(value * 0.05 * math.sqrt(day), 2)
        date = (start + dt.timedelta(days=day)).isoformat()
        points.append(
            {"date": date, "value": value, "lower": round(value - spread, 2), "upper": round(value + spread, 2)}
        )
    if FaultName.FORECAST_NAN in faults:
        points[0]["value"] = math.nan
    return {"horizon_days": len(points), "points": points}


def _what_if(query: str, rng: random.Random, seed: int, faults: FaultSet) -> contract.WhatIfData:
    if FaultName.WHAT_IF_NONDETERMINISTIC in faults:
        rng = random.Random()  # seeded from the OS: a simulation that forgot its seed
        seed = -1
    baseline = round(rng.uniform(1e5, 1e6), 2)
    simulated = round(baseline * (1 + rng.uniform(-0.2, 0.2)), 2)
    return {
        "scenario": query[:200],
        "baseline": baseline,
        "simulated": simulated,
        "delta": round(simulated - baseline, 2),
        "steps": MAX_STEPS * 5 if FaultName.SIMULATION_UNBOUNDED in faults else STEPS,
        "max_steps": MAX_STEPS,
        "seed": seed,
    }


def answer(intent: Intent, query: str, bank_id: str, how: str, faults: FaultSet) -> Answer:
    """A deterministic answer for one bank; ``how`` says how the intent was chosen."""
    rng, seed = _rng(intent, query, bank_id)
    sources = _sources(intent, bank_id)
    if FaultName.CITE_NO_SOURCES in faults:
        sources = []
    if FaultName.LEAK_FOREIGN_SOURCE in faults:
        other = "bank-foreign" if bank_id != "bank-foreign" else "bank-other"
        sources.append({"kind": "pinecone", "ref": f"payscope-rag/{other}", "bank_id": other})
    data: contract.ForecastData | contract.WhatIfData | None = None
    if intent is Intent.FORECAST:
        data = _forecast(rng, faults)
        text = f"Expected volume for bank {bank_id} over the next {data['horizon_days']} days."
    elif intent is Intent.WHAT_IF:
        data = _what_if(query, rng, seed, faults)
        text = f"Under the scenario, volume moves by {data['delta']:+.2f} for bank {bank_id}."
    else:
        text = f"{intent.value.title()} of bank {bank_id}: {rng.randint(100, 10_000)} transactions considered."
    kinds = ", ".join(sorted({source["kind"] for source in sources}))
    explanation = f"Intent {intent.value} ({how}); answer computed from {len(sources)} source(s): {kinds}."
    return Answer(answer=text, explanation=explanation, sources=sources, data=data)
