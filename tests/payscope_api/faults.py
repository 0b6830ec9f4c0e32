"""The closed set of faults the reference PayScope fixture can be switched into.

Why it exists: every audit check needs a test that breaks exactly the
behaviour it watches and sees it fail, then restores it and sees it pass. A
fault is that one broken behaviour. Faults are written ``name`` or, for the
parametrised ones, ``name:arg``; they are switched at start-up (``--faults-file``,
a JSON array of such strings, re-read whenever the file changes) or at run time
through the fixture-only ``POST /_faults`` endpoint.

What it must not do: implement the broken behaviour (``auth``, ``intents``,
``admin`` and ``app`` consult the active set), or let one fault break more
than its own behaviour. A fault that breaks a route on purpose (``hang``,
``omit_intent``) breaks only the answers of that route or intent.

The faults (contract reference: docs/payscope-contract.md, appendix "Reference fixture"):

Authentication and isolation
  accept_missing_token     no Authorization header: served as an anonymous analyst of the X-Bank-Id bank
  accept_expired_token     ``exp`` is not checked
  skip_signature_check     signatures are not verified (``alg: none`` and ``exp`` still are)
  accept_alg_none          an unsigned ``alg: none`` token is accepted
  accept_other_algorithm   the token's own ``alg`` is trusted: an HMAC one is verified with the configured key
                           material as its secret (under RS256, HS256 keyed with the public key: algorithm
                           confusion), any other goes unverified; ``alg: none`` is still refused
  accept_missing_required_claim  ``exp`` and ``iat`` are optional: a token lacking either is accepted
                           (present ones are still verified; ``sub``, ``iss``, ``aud`` and ``roles`` still required)
  accept_missing_bank_claim  a token without ``bank_id`` is accepted, as a caller of the X-Bank-Id bank
  ignore_audience          ``aud`` is not checked
  ignore_issuer            ``iss`` is not checked
  ignore_key_id            ``kid`` is ignored: a token naming an unknown key id is still accepted
  ignore_bank_header       X-Bank-Id is not compared with the token's bank_id; the header's bank is served
  skip_chat_role_check     /chat/query is served to a token holding neither ``analyst`` nor ``admin``
  admin_open_to_all        admin endpoints are served to any authenticated caller
  admin_endpoint_fails     GET /admin/runtime answers 500 to the admin role (401 and 403 to others are unchanged)
  key_ids_unlisted         GET /admin/runtime lists no accepted key ids (``auth.key_ids`` null)
  challenge_error_without_token  a 401 for a request without credentials carries ``error="invalid_token"``
  leak_foreign_source      /chat/query ``sources`` include one belonging to another bank
  audit_skip_queries       no chat.query row is written to the audit log
  audit_skip_operations    no admin.read row is written to the audit log
  cite_no_sources          /chat/query answers cite no source at all (``sources`` empty)
Health
  healthz_fails            GET /healthz answers 500
  readyz_degraded          GET /readyz answers 503, ``postgres`` check ``fail``
  readyz_no_checks         GET /readyz answers 200 ok with no entry in ``checks``
  readyz_omit:<check>      GET /readyz does not list that entry (one of contract.READINESS_CHECKS)
  worker_down              /admin/pipeline ``health.worker`` is ``fail`` with 0 workers online
  ingestion_down           /admin/pipeline ``health.ingestion`` is ``fail``
  hang:<route>|*           the route (a template of contract.ROUTES, or * for all) sleeps ``hang_seconds`` first
Observability
  drop_metric:<family>     the family (one of contract.METRIC_FAMILIES) is missing from /metrics
  metrics_broken           /metrics is served as ``text/html``, not Prometheus text (the exposition is intact)
  unstructured_logs        log lines are plain text instead of one JSON object per line
  log_level_debug          the API logs at DEBUG (DEBUG lines on stdout) and /admin/runtime reports DEBUG
  errors_count_5xx_only    payscope_errors_total counts only 5xx answers, not the 4xx ones
Chat responses
  omit_intent:<INTENT>     no agent for INTENT: /admin/agents lacks it and /chat/query answers 500 for it
  confidence_out_of_range  ``confidence`` is above 1
  missing_trace_id         the ``trace_id`` field and the X-Trace-Id header are absent from /chat/query answers
  missing_explanation      the ``explanation`` field is absent
  unstructured_response    /chat/query answers 200 text/plain instead of the JSON object
  no_fallback              below-threshold classifications are answered as guessed; unclassifiable ones 500
  no_body_validation       an invalid /chat/query body causes a 500 instead of a 422
  unstructured_errors      error responses are plain text instead of the JSON error body
  forecast_nan             FORECAST ``data`` carries NaN (not valid JSON)
  what_if_nondeterministic WHAT_IF answers differ between identical requests
  forecast_unstable        FORECAST ``data`` differs between identical requests (still finite and within bounds)
  explicit_intent_confidence  a request naming its intent reports the classifier's confidence, not 1.0
  simulation_unbounded     WHAT_IF ``data.steps`` exceeds the agent's ``max_steps``
  answer_cache             FORECAST and WHAT_IF answers are cached by bank, intent and query and replayed whole
                           (trace_id included), whatever the request's Cache-Control and X-Request-Id
Agent and pipeline configuration (/admin/agents, /admin/pipeline)
  agent_temperature_too_high  every agent's temperature is 1.2
  agent_no_token_limit     every agent's max_tokens is null
  agent_no_timeout         every agent's timeout_s is null
  unstructured_output      every agent's structured_output is false
  fallback_undeclared      fallback_intent is null
  no_confidence_threshold  confidence_threshold is null
  pipeline_no_retries      max_retries is 0
  pipeline_no_backoff      retry_backoff is false
  pipeline_no_time_limit   task_time_limit_s and task_soft_time_limit_s are null
  pipeline_no_dlq          dead_letter_queue is null
  pipeline_no_acks_late    acks_late is false
  ingestion_no_validation  ingestion.validates_files is false
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tests.payscope_api import contract


class FaultName(StrEnum):
    ACCEPT_MISSING_TOKEN = "accept_missing_token"
    ACCEPT_EXPIRED_TOKEN = "accept_expired_token"
    SKIP_SIGNATURE_CHECK = "skip_signature_check"
    ACCEPT_ALG_NONE = "accept_alg_none"
    ACCEPT_OTHER_ALGORITHM = "accept_other_algorithm"
    ACCEPT_MISSING_REQUIRED_CLAIM = "accept_missing_required_claim"
    ACCEPT_MISSING_BANK_CLAIM = "accept_missing_bank_claim"
    IGNORE_AUDIENCE = "ignore_audience"
    IGNORE_ISSUER = "ignore_issuer"
    IGNORE_KEY_ID = "ignore_key_id"
    IGNORE_BANK_HEADER = "ignore_bank_header"
    SKIP_CHAT_ROLE_CHECK = "skip_chat_role_check"
    ADMIN_OPEN_TO_ALL = "admin_open_to_all"
    ADMIN_ENDPOINT_FAILS = "admin_endpoint_fails"
    KEY_IDS_UNLISTED = "key_ids_unlisted"
    CHALLENGE_ERROR_WITHOUT_TOKEN = "challenge_error_without_token"
    LEAK_FOREIGN_SOURCE = "leak_foreign_source"
    AUDIT_SKIP_QUERIES = "audit_skip_queries"
    AUDIT_SKIP_OPERATIONS = "audit_skip_operations"
    CITE_NO_SOURCES = "cite_no_sources"
    HEALTHZ_FAILS = "healthz_fails"
    READYZ_DEGRADED = "readyz_degraded"
    READYZ_NO_CHECKS = "readyz_no_checks"
    READYZ_OMIT = "readyz_omit"
    WORKER_DOWN = "worker_down"
    INGESTION_DOWN = "ingestion_down"
    HANG = "hang"
    DROP_METRIC = "drop_metric"
    METRICS_BROKEN = "metrics_broken"
    UNSTRUCTURED_LOGS = "unstructured_logs"
    LOG_LEVEL_DEBUG = "log_level_debug"
    ERRORS_COUNT_5XX_ONLY = "errors_count_5xx_only"
    OMIT_INTENT = "omit_intent"
    CONFIDENCE_OUT_OF_RANGE = "confidence_out_of_range"
    MISSING_TRACE_ID = "missing_trace_id"
    MISSING_EXPLANATION = "missing_explanation"
    UNSTRUCTURED_RESPONSE = "unstructured_response"
    NO_FALLBACK = "no_fallback"
    NO_BODY_VALIDATION = "no_body_validation"
    UNSTRUCTURED_ERRORS = "unstructured_errors"
    FORECAST_NAN = "forecast_nan"
    WHAT_IF_NONDETERMINISTIC = "what_if_nondeterministic"
    FORECAST_UNSTABLE = "forecast_unstable"
    EXPLICIT_INTENT_CONFIDENCE = "explicit_intent_confidence"
    SIMULATION_UNBOUNDED = "simulation_unbounded"
    ANSWER_CACHE = "answer_cache"
    AGENT_TEMPERATURE_TOO_HIGH = "agent_temperature_too_high"
    AGENT_NO_TOKEN_LIMIT = "agent_no_token_limit"
    AGENT_NO_TIMEOUT = "agent_no_timeout"
    UNSTRUCTURED_OUTPUT = "unstructured_output"
    FALLBACK_UNDECLARED = "fallback_undeclared"
    NO_CONFIDENCE_THRESHOLD = "no_confidence_threshold"
    PIPELINE_NO_RETRIES = "pipeline_no_retries"
    PIPELINE_NO_BACKOFF = "pipeline_no_backoff"
    PIPELINE_NO_TIME_LIMIT = "pipeline_no_time_limit"
    PIPELINE_NO_DLQ = "pipeline_no_dlq"
    PIPELINE_NO_ACKS_LATE = "pipeline_no_acks_late"
    INGESTION_NO_VALIDATION = "ingestion_no_validation"


#: The parametrised faults and the arguments each accepts.
ARGUMENTS: Mapping[FaultName, frozenset[str]] = {
    FaultName.HANG: frozenset((*contract.ROUTES, "*")),
    FaultName.DROP_METRIC: frozenset(contract.METRIC_FAMILIES),
    FaultName.OMIT_INTENT: frozenset(contract.INTENTS),
    FaultName.READYZ_OMIT: frozenset(contract.READINESS_CHECKS),
}


class FaultError(ValueError):
    """A fault specification that names no known fault or carries a wrong argument."""


@dataclass(frozen=True, order=True)
class Fault:
    """One active fault: a name and, for parametrised faults, its argument."""

    name: FaultName
    arg: str | None = None

    def __str__(self) -> str:
        return self.name.value if self.arg is None else f"{self.name.value}:{self.arg}"


def parse_fault(spec: str) -> Fault:
    """Parse ``name`` or ``name:arg``; refuse unknown names and arguments."""
    raw_name, sep, arg = spec.strip().partition(":")
    try:
        name = FaultName(raw_name)
    except ValueError:
        raise FaultError(f"unknown fault {raw_name!r}") from None
    allowed = ARGUMENTS.get(name)
    if allowed is None:
        if sep:
            raise FaultError(f"fault {name.value!r} takes no argument")
        return Fault(name)
    if arg not in allowed:
        raise FaultError(f"fault {name.value!r} needs an argument among {sorted(allowed)}, got {arg!r}")
    return Fault(name, arg)


def parse_faults(specs: Iterable[object]) -> list[Fault]:
    """Parse a JSON-decoded list of specifications, all or nothing."""
    faults: list[Fault] = []
    for spec in specs:
        if not isinstance(spec, str):
            raise FaultError(f"a fault is a string, got {spec!r}")
        faults.append(parse_fault(spec))
    return faults


class FaultSet:
    """The mutable set of active faults of one fixture instance."""

    def __init__(self, initial: Iterable[Fault] = ()) -> None:
        self._active: set[Fault] = set(initial)

    def __contains__(self, name: object) -> bool:
        return any(fault.name == name for fault in self._active)

    def args(self, name: FaultName) -> frozenset[str]:
        """Arguments of the active faults called ``name`` (parametrised faults)."""
        return frozenset(f.arg for f in self._active if f.name == name and f.arg is not None)

    def enable(self, faults: Iterable[Fault]) -> None:
        self._active.update(faults)

    def disable(self, faults: Iterable[Fault]) -> None:
        self._active.difference_update(faults)

    def replace(self, faults: Iterable[Fault]) -> None:
        self._active = set(faults)

    def specs(self) -> list[str]:
        return sorted(str(fault) for fault in self._active)


class FaultsFile:
    """A JSON array of fault specifications that replaces the active set when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime_ns: int | None = None

    def load(self) -> list[Fault]:
        decoded: object = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(decoded, list):
            raise FaultError(f"{self.path}: expected a JSON array of fault strings")
        return parse_faults(decoded)

    def refresh(self, faults: FaultSet) -> str | None:
        """Re-read the file if it changed since the last look; return why it was refused, if it was.

        A vanished file changes nothing; an invalid one leaves the active set as
        it was (write the file atomically: a temporary file, then a rename).
        """
        try:
            mtime_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime_ns == self._mtime_ns:
            return None
        self._mtime_ns = mtime_ns
        try:
            faults.replace(self.load())
        except (OSError, ValueError) as exc:  # FaultError and JSONDecodeError are ValueErrors
            return f"{self.path}: {exc}"
        return None
