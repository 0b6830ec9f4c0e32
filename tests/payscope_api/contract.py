"""The PayScope HTTP contract, version 1, as constants and typed bodies.

Why it exists: ``docs/payscope-contract.md`` is prose; this module is the same
contract in the form the reference fixture and its tests import, so a route,
an intent, a metric family or a body field is spelled in exactly one place on
the test side. The operator keeps its own copy in its package: it must never
import test code, and this module must never import the operator.

What it must not do: hold behaviour. It declares names and shapes only; the
fixture's behaviour lives in ``app``, ``auth``, ``intents`` and ``admin``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NotRequired, TypedDict

CONTRACT_VERSION = 1

#: Header that carries the tenant on every tenant-scoped request.
BANK_HEADER = "X-Bank-Id"
#: Header that carries the request's trace id on every response.
TRACE_HEADER = "X-Trace-Id"
#: Header the operator sends with a fresh value on every request (contract section 0).
REQUEST_ID_HEADER = "X-Request-Id"
#: The largest request body PayScope must accept; larger ones are 413 ``body_too_large``.
MAX_BODY_BYTES = 64 * 1024
#: Header guarding the fixture-only ``/_faults`` endpoint (not part of the contract).
FIXTURE_TOKEN_HEADER = "X-Fixture-Token"


class Intent(StrEnum):
    """The closed set of chat intents PayScope must answer."""

    DESCRIBE = "DESCRIBE"
    COMPARE = "COMPARE"
    ANOMALY = "ANOMALY"
    FORECAST = "FORECAST"
    WHAT_IF = "WHAT_IF"


INTENTS: tuple[Intent, ...] = tuple(Intent)

#: Roles the contract gives meaning to: ``admin`` reads the admin endpoints,
#: ``analyst`` (or ``admin``) may query the chat endpoint.
ROLE_ADMIN = "admin"
ROLE_ANALYST = "analyst"
CHAT_ROLES = frozenset({ROLE_ADMIN, ROLE_ANALYST})

#: Every route of the contract (plus the optional JWKS document), as route templates:
#: these are also the values of the ``route`` label of the HTTP metrics.
ROUTES: tuple[str, ...] = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/chat/query",
    "/admin/agents",
    "/admin/pipeline",
    "/admin/runtime",
    "/.well-known/jwks.json",
)

#: Metric families PayScope must expose (names as they appear in ``# TYPE`` lines).
REQUIRED_METRIC_FAMILIES: tuple[str, ...] = (
    "http_requests_total",
    "http_request_duration_seconds",
    "payscope_errors_total",
    "payscope_agent_requests_total",
    "payscope_agent_latency_seconds",
)

#: Families contract version 1 recommends; their absence is a warning, not a failure.
RECOMMENDED_METRIC_FAMILIES: tuple[str, ...] = (
    "payscope_auth_failures_total",
    "payscope_intent_fallbacks_total",
    "payscope_db_queries_total",
    "payscope_db_query_duration_seconds",
    "payscope_inflight_requests",
    "payscope_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
)

METRIC_FAMILIES: tuple[str, ...] = REQUIRED_METRIC_FAMILIES + RECOMMENDED_METRIC_FAMILIES

#: Names ``/readyz`` may report in ``checks``, one per dependency in use.
READINESS_CHECKS: tuple[str, ...] = (
    "postgres",
    "redis",
    "neo4j",
    "pinecone",
    "object_storage",
    "migrations",
    "neo4j_schema",
    "pinecone_index",
)

#: Every ``error.code`` of contract section 0, by HTTP status; also the ``kind`` values of payscope_errors_total.
ERROR_CODES: dict[str, int] = {
    "missing_token": 401,
    "invalid_token": 401,
    "forbidden_role": 403,
    "bank_mismatch": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_body": 422,
    "no_agent": 500,
    "unclassified_query": 500,
    "internal_error": 500,
}

CheckState = Literal["ok", "fail", "disabled"]
ComponentState = Literal["ok", "fail"]


class HealthBody(TypedDict):
    status: Literal["ok", "fail"]
    contract_version: int


class ReadyBody(TypedDict):
    status: Literal["ok", "degraded"]
    checks: dict[str, CheckState]


class ErrorDetail(TypedDict):
    code: str
    message: str


class ErrorBody(TypedDict):
    error: ErrorDetail
    trace_id: str


class ChatRequest(TypedDict):
    query: str
    intent: NotRequired[Intent | None]


class Source(TypedDict):
    kind: Literal["postgres", "neo4j", "pinecone", "s3"]
    ref: str
    bank_id: str


class ForecastPoint(TypedDict):
    date: str
    value: float
    lower: float
    upper: float


class ForecastData(TypedDict):
    horizon_days: int
    points: list[ForecastPoint]


class WhatIfData(TypedDict):
    scenario: str
    baseline: float
    simulated: float
    delta: float
    steps: int
    max_steps: int
    seed: int


class ChatResponse(TypedDict):
    intent: Intent
    confidence: float
    fallback: bool
    answer: str
    explanation: str
    trace_id: str
    bank_id: str
    sources: list[Source]
    data: NotRequired[ForecastData | WhatIfData]


class AgentConfig(TypedDict):
    agent: str
    temperature: float
    max_tokens: int | None
    timeout_s: float | None
    structured_output: bool
    #: WHAT_IF only: the most simulation steps one answer may run (contract section 6).
    max_steps: NotRequired[int | None]


class AgentsBody(TypedDict):
    intents: dict[str, AgentConfig]
    fallback_intent: Intent | None
    confidence_threshold: float | None


class ComponentHealth(TypedDict):
    status: ComponentState
    online: NotRequired[int]


class PipelineHealth(TypedDict):
    worker: ComponentHealth
    ingestion: ComponentHealth


class IngestionSettings(TypedDict):
    validates_files: bool
    max_file_bytes: int


class PipelineBody(TypedDict):
    max_retries: int
    retry_backoff: bool
    retry_backoff_max_s: float
    task_time_limit_s: float | None
    task_soft_time_limit_s: float | None
    acks_late: bool
    dead_letter_queue: str | None
    ingestion: IngestionSettings
    health: PipelineHealth


class LoggingSettings(TypedDict):
    format: Literal["json", "text"]
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class AuthSettings(TypedDict):
    algorithm: str
    issuer: str
    audience: str
    leeway_s: float
    key_ids: list[str] | None
    jwks_uri: str | None


class AuditLogSettings(TypedDict):
    backend: Literal["hash_log", "fabric"]
    table: str
    fabric_enabled: bool


class ShutdownSettings(TypedDict):
    graceful_timeout_s: float


class RuntimeBody(TypedDict):
    version: str
    contract_version: int
    logging: LoggingSettings
    auth: AuthSettings
    rbac: dict[str, list[str]]
    audit_log: AuditLogSettings
    shutdown: ShutdownSettings


class Jwk(TypedDict):
    kty: Literal["RSA"]
    n: str
    e: str
    kid: str
    use: Literal["sig"]
    alg: str


class JwksBody(TypedDict):
    keys: list[Jwk]


class Claims(TypedDict):
    sub: str
    bank_id: str
    roles: list[str]
    iss: str
    aud: str | list[str]
    iat: int
    exp: int
