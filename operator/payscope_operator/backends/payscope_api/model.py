"""Typed facts of PayScope's HTTP answers: health, metrics, admin documents, chat answers.

Why this module exists: the audit's checks are pure functions of what PayScope said;
this module turns each :class:`client.Reply` into frozen facts (parsed JSON fields of
the contract's types, Prometheus families), so a check reads ``answer.confidence``
rather than digging in a body. A field that is absent or not of the contract's type
reads as None, never as a default that could pass a check.

What it must not do: send requests (``client`` does), judge what it parsed (the audit
does), or keep a token or a raw body beyond the reply it came with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from payscope_operator.backends.payscope_api import client

INTENTS: tuple[str, ...] = ("DESCRIBE", "COMPARE", "ANOMALY", "FORECAST", "WHAT_IF")
"""The chat intents of contract version 1."""

T = TypeVar("T")


def _number(body: client.Json, key: str) -> float | None:
    value = body.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(body: client.Json, key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _flag(body: client.Json, key: str) -> bool | None:
    value = body.get(key)
    return value if isinstance(value, bool) else None


def _object(body: client.Json, key: str) -> client.Json:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Document(Generic[T]):
    """An admin document: the reply, and its facts when it answered 200 with a JSON object."""

    reply: client.Reply
    facts: T | None


def read_document(reply: client.Reply, parse: Callable[[client.Json], T]) -> Document[T]:
    """Parse the body of a 200 JSON answer; keep any other reply as the reason there are no facts."""
    facts = parse(reply.body) if reply.status == 200 and reply.body is not None else None
    return Document(reply, facts)


@dataclass(frozen=True)
class Health:
    """``/healthz`` or ``/readyz``: the HTTP status, ``status`` and, for readiness, ``checks``."""

    reply: client.Reply
    state: str | None
    checks: Mapping[str, str]


def parse_health(reply: client.Reply) -> Health:
    body = reply.body or {}
    checks = {str(k): str(v) for k, v in _object(body, "checks").items()}
    return Health(reply, _text(body, "status"), checks)


@dataclass(frozen=True)
class Family:
    """A metric family: type, label names of its samples, sample count, and what it has counted.

    ``total`` sums a counter's samples, or a histogram's ``_count`` samples (how many
    observations it made); ``sums`` holds the same per label value, ``("kind",
    "invalid_token") -> 12.0``, so a check can see one series move.
    """

    type: str
    labels: frozenset[str]
    samples: int
    total: float = 0.0
    sums: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def counted(self, label: str, value: str) -> float:
        """What the series carrying ``label=value`` counted together (0 when there is none)."""
        return self.sums.get((label, value), 0.0)


@dataclass(frozen=True)
class Metrics:
    """``/metrics`` parsed: families by the name of their ``# TYPE`` line, or why it did not parse."""

    reply: client.Reply
    families: Mapping[str, Family]
    problem: str | None = None


def parse_metrics(reply: client.Reply) -> Metrics:
    if reply.status != 200:
        return Metrics(reply, {})
    try:
        parsed = list(text_string_to_metric_families(reply.text))
    except (ValueError, IndexError, KeyError, TypeError) as exc:  # the parser's ways of refusing bad text
        return Metrics(reply, {}, problem=f"not Prometheus text format ({type(exc).__name__})")
    families: dict[str, Family] = {}
    for family in parsed:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        labels = frozenset(label for sample in family.samples for label in sample.labels if label != "le")
        counting = f"{family.name}_count" if family.type == "histogram" else name
        counted = [sample for sample in family.samples if sample.name == counting]
        sums: dict[tuple[str, str], float] = {}
        for sample in counted:
            for pair in sample.labels.items():
                sums[pair] = sums.get(pair, 0.0) + sample.value
        total = sum(sample.value for sample in counted)
        families[name] = Family(family.type, labels, len(family.samples), total, sums)
    return Metrics(reply, families)


@dataclass(frozen=True)
class AgentSettings:
    """One intent's agent, as ``/admin/agents`` declares it (None: absent or not the contract's type)."""

    agent: str | None
    temperature: float | None
    max_tokens: float | None
    timeout_s: float | None
    structured_output: bool | None


@dataclass(frozen=True)
class Agents:
    """``/admin/agents``: each intent's agent, the fallback intent and the confidence threshold."""

    intents: Mapping[str, AgentSettings]
    fallback_intent: str | None
    confidence_threshold: float | None


def parse_agents(body: client.Json) -> Agents:
    intents = {
        str(intent): AgentSettings(
            agent=_text(agent, "agent"),
            temperature=_number(agent, "temperature"),
            max_tokens=_number(agent, "max_tokens"),
            timeout_s=_number(agent, "timeout_s"),
            structured_output=_flag(agent, "structured_output"),
        )
        for intent, agent in _object(body, "intents").items()
        if isinstance(agent, dict)
    }
    return Agents(intents, _text(body, "fallback_intent"), _number(body, "confidence_threshold"))


@dataclass(frozen=True)
class Pipeline:
    """The Celery and ingestion settings, and component health, from ``/admin/pipeline``."""

    max_retries: float | None
    retry_backoff: bool | None
    retry_backoff_max_s: float | None
    task_time_limit_s: float | None
    task_soft_time_limit_s: float | None
    acks_late: bool | None
    dead_letter_queue: str | None
    validates_files: bool | None
    worker_status: str | None
    workers_online: float | None
    ingestion_status: str | None


def parse_pipeline(body: client.Json) -> Pipeline:
    health = _object(body, "health")
    worker, ingestion = _object(health, "worker"), _object(health, "ingestion")
    return Pipeline(
        max_retries=_number(body, "max_retries"),
        retry_backoff=_flag(body, "retry_backoff"),
        retry_backoff_max_s=_number(body, "retry_backoff_max_s"),
        task_time_limit_s=_number(body, "task_time_limit_s"),
        task_soft_time_limit_s=_number(body, "task_soft_time_limit_s"),
        acks_late=_flag(body, "acks_late"),
        dead_letter_queue=_text(body, "dead_letter_queue"),
        validates_files=_flag(_object(body, "ingestion"), "validates_files"),
        worker_status=_text(worker, "status"),
        workers_online=_number(worker, "online"),
        ingestion_status=_text(ingestion, "status"),
    )


@dataclass(frozen=True)
class Runtime:
    """Logging settings and accepted key ids, from ``/admin/runtime``."""

    log_format: str | None
    log_level: str | None
    key_ids: tuple[str, ...] | None


def parse_runtime(body: client.Json) -> Runtime:
    logging_, auth = _object(body, "logging"), _object(body, "auth")
    raw = auth.get("key_ids")
    key_ids = tuple(k for k in raw if isinstance(k, str)) if isinstance(raw, list) else None
    return Runtime(_text(logging_, "format"), _text(logging_, "level"), key_ids)


@dataclass(frozen=True)
class Cited:
    """One entry of an answer's ``sources``."""

    kind: str | None
    ref: str | None
    bank_id: str | None


@dataclass(frozen=True)
class Point:
    """One point of a FORECAST answer's ``data.points``."""

    lower: float | None
    value: float | None
    upper: float | None


@dataclass(frozen=True)
class ErrorBody:
    """The contract's error body ``{"error": {"code", "message"}, "trace_id"}``."""

    code: str | None
    message: str | None
    trace_id: str | None


@dataclass(frozen=True)
class Answer:
    """A ``POST /chat/query`` reply, with the contract's fields when its body is a JSON object."""

    reply: client.Reply
    intent: str | None = None
    confidence: float | None = None
    fallback: bool | None = None
    answer: str | None = None
    explanation: str | None = None
    trace_id: str | None = None
    bank_id: str | None = None
    sources: tuple[Cited, ...] | None = None
    forecast: tuple[Point, ...] | None = None
    steps: float | None = None  # a WHAT_IF answer's data.steps
    max_steps: float | None = None  # ... and the bound in force, data.max_steps
    digest: str | None = None  # of answer and data: equal for equal answers
    error: ErrorBody | None = None

    @property
    def structured(self) -> bool:
        return self.reply.body is not None


def _objects(value: object) -> list[client.Json] | None:
    """A JSON array as objects (a non-object entry becomes empty), or None when it is not an array."""
    return [item if isinstance(item, dict) else {} for item in value] if isinstance(value, list) else None


def _sources(body: client.Json) -> tuple[Cited, ...] | None:
    items = _objects(body.get("sources"))
    return (
        None if items is None else tuple(Cited(_text(i, "kind"), _text(i, "ref"), _text(i, "bank_id")) for i in items)
    )


def _forecast(body: client.Json) -> tuple[Point, ...] | None:
    items = _objects(_object(body, "data").get("points"))
    return (
        None
        if items is None
        else tuple(Point(_number(i, "lower"), _number(i, "value"), _number(i, "upper")) for i in items)
    )


def parse_answer(reply: client.Reply) -> Answer:
    body = reply.body
    if body is None:
        return Answer(reply)
    error = _object(body, "error")
    canonical = json.dumps({"answer": body.get("answer"), "data": body.get("data")}, sort_keys=True, default=str)
    return Answer(
        reply=reply,
        intent=_text(body, "intent"),
        confidence=_number(body, "confidence"),
        fallback=_flag(body, "fallback"),
        answer=_text(body, "answer"),
        explanation=_text(body, "explanation"),
        trace_id=_text(body, "trace_id"),
        bank_id=_text(body, "bank_id"),
        sources=_sources(body),
        forecast=_forecast(body),
        steps=_number(_object(body, "data"), "steps"),
        max_steps=_number(_object(body, "data"), "max_steps"),
        digest=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        error=ErrorBody(_text(error, "code"), _text(error, "message"), _text(body, "trace_id")) if error else None,
    )
