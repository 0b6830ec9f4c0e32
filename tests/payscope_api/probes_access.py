"""Conformance probes for tokens, tenant isolation, roles, admin documents and logs (contract version 1).

Why it exists: each probe is one behaviour the audit's G checks and the
configuration parts of C, D and F rely on: every forged or incomplete token
refused with 401, a foreign X-Bank-Id or a missing role refused with 403, the
admin endpoints closed to non-admins, agent and pipeline settings within
bounds, worker and ingestion health, key ids and log format in the runtime
document, and log lines that are JSON and carry the trace id.

What it must not do: probe answers or metrics (``probes_api`` does), or reach
into the fixture: HTTP only, plus the log text the target chooses to expose.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx

from tests.payscope_api import contract, tokens
from tests.payscope_api.contract import Intent
from tests.payscope_api.probing import VALID_BODY, Probe, Target, check, expect, is_number, registrar, strict_json

ADMIN_PATHS = ("/admin/agents", "/admin/pipeline", "/admin/runtime")
JWKS_PATH = "/.well-known/jwks.json"
MAX_TEMPERATURE = 0.5
MAX_TOKENS = 32_768
MAX_TIMEOUT_S = 300.0

PROBES: list[Probe] = []
probe = registrar(PROBES)


async def _refused(t: Target, token: str, what: str, status: int = 401) -> httpx.Response:
    return await expect(t.chat(VALID_BODY, tokens.headers(token, t.bank)), status, what)


def _without(t: Target, claim: str) -> str:
    """A correctly signed token lacking ``claim``."""
    return tokens.mint(t.key, {name: value for name, value in t.claims().items() if name != claim})


# ---- tokens (401) ---------------------------------------------------------------------------------


@probe("jwt_missing", ("/chat/query", *ADMIN_PATHS))
async def _jwt_missing(t: Target) -> None:
    response = await expect(t.chat(VALID_BODY, {contract.BANK_HEADER: t.bank}), 401, "chat without token")
    check(response.headers.get("www-authenticate", "").startswith("Bearer"), "401 without WWW-Authenticate: Bearer")
    for path in ADMIN_PATHS:
        await expect(t.client.get(path), 401, f"{path} without token")


@probe("jwt_malformed", ("/chat/query",))
async def _jwt_malformed(t: Target) -> None:
    for value in ("Bearer not.a.jwt", "Bearer abc", "Bearer", "Basic dXNlcjpwYXNz", f"Token {t.token()}"):
        headers = {"Authorization": value, contract.BANK_HEADER: t.bank}
        await expect(t.chat(VALID_BODY, headers), 401, f"Authorization {value[:12]!r}")


@probe("jwt_expired", ("/chat/query",))
async def _jwt_expired(t: Target) -> None:
    now = int(time.time())
    await _refused(t, t.token(iat=now - 7200, exp=now - 3600), "token expired an hour ago")


@probe("jwt_bad_signature", ("/chat/query",))
async def _jwt_bad_signature(t: Target) -> None:
    await _refused(t, tokens.mint_with_wrong_key(t.key, t.claims()), "token signed by another key")
    await _refused(t, tokens.tamper(t.token()), "token altered after signing")


@probe("jwt_alg_none", ("/chat/query",))
async def _jwt_alg_none(t: Target) -> None:
    await _refused(t, tokens.mint_unsigned(t.claims()), "alg: none token")


@probe("jwt_alg_mismatch", ("/chat/query",))
async def _jwt_alg_mismatch(t: Target) -> None:
    if t.key.algorithm == "RS256":
        forged = tokens.mint_alg_confusion(t.key, t.claims())
    else:
        forged = tokens.mint_with_wrong_key(t.key, t.claims(), algorithm="RS256")
    await _refused(t, forged, "token of another algorithm")


@probe("jwt_wrong_audience", ("/chat/query",))
async def _jwt_wrong_audience(t: Target) -> None:
    await _refused(t, t.token(aud="another-api"), "wrong audience")


@probe("jwt_wrong_issuer", ("/chat/query",))
async def _jwt_wrong_issuer(t: Target) -> None:
    await _refused(t, t.token(iss="someone-else"), "wrong issuer")


@probe("jwt_unknown_kid", ("/chat/query",))
async def _jwt_unknown_kid(t: Target) -> None:
    await _refused(t, tokens.mint(t.key.with_kid("no-such-key"), t.claims()), "unknown kid")


@probe("jwt_missing_claims", ("/chat/query",))
async def _jwt_missing_claims(t: Target) -> None:
    for claim in ("sub", "roles", "exp", "iat", "iss", "aud"):
        await _refused(t, _without(t, claim), f"token without {claim}")
    await _refused(t, tokens.mint(t.key, {**t.claims(), "roles": "analyst"}), "roles not a list")


@probe("jwt_missing_bank_claim", ("/chat/query",))
async def _jwt_missing_bank_claim(t: Target) -> None:
    await _refused(t, _without(t, "bank_id"), "token without bank_id")


# ---- isolation and roles (403) --------------------------------------------------------------------


@probe("bank_header", ("/chat/query",))
async def _bank_header(t: Target) -> None:
    await expect(t.chat(VALID_BODY, tokens.headers(t.token(), "bank-z")), 403, "X-Bank-Id of another bank")
    await expect(t.chat(VALID_BODY, tokens.bearer(t.token())), 403, "no X-Bank-Id")


@probe("chat_role", ("/chat/query",))
async def _chat_role(t: Target) -> None:
    for roles in ((), ("auditor",)):
        await _refused(t, t.token(roles=roles), f"roles {list(roles)}", status=403)


def _admin_forbidden_probe(path: str) -> None:
    @probe(f"admin_forbidden:{path}", (path,))
    async def _admin_forbidden(t: Target) -> None:
        await expect(t.admin(path, roles=(contract.ROLE_ANALYST,)), 403, f"{path} as analyst")


def _admin_allowed_probe(path: str) -> None:
    @probe(f"admin_allowed:{path}", (path,))
    async def _admin_allowed(t: Target) -> None:
        strict_json(await expect(t.admin(path), 200, f"{path} as admin"))


for _path in ADMIN_PATHS:
    _admin_forbidden_probe(_path)
    _admin_allowed_probe(_path)


# ---- admin documents ------------------------------------------------------------------------------


async def _document(t: Target, path: str) -> dict[str, object]:
    return strict_json(await expect(t.admin(path), 200, f"{path} as admin"))


async def _agents(t: Target) -> dict[str, dict[str, object]]:
    intents = (await _document(t, "/admin/agents")).get("intents")
    check(isinstance(intents, dict) and all(isinstance(v, dict) for v in intents.values()), "intents malformed")
    assert isinstance(intents, dict)
    return intents


def _agents_probe(name: str, field: str, ok: Callable[[object], bool], rule: str) -> None:
    @probe(name, ("/admin/agents",))
    async def _agent_field(t: Target) -> None:
        bad = {intent: agent.get(field) for intent, agent in (await _agents(t)).items() if not ok(agent.get(field))}
        check(not bad, f"{field} must be {rule}: {bad}")


_agents_probe("agents_temperature", "temperature", lambda v: is_number(v) and 0 <= v <= MAX_TEMPERATURE, "in [0, 0.5]")
_agents_probe("agents_token_limit", "max_tokens", lambda v: is_number(v) and 0 < v <= MAX_TOKENS, "a positive limit")
_agents_probe("agents_timeout", "timeout_s", lambda v: is_number(v) and 0 < v <= MAX_TIMEOUT_S, "in (0, 300] s")
_agents_probe("agents_structured_output", "structured_output", lambda v: v is True, "true")


@probe("agents_cover_all_intents", ("/admin/agents",))
async def _agents_cover_all_intents(t: Target) -> None:
    configured = set(await _agents(t))
    missing = sorted(set(contract.INTENTS) - configured)
    check(not missing, f"intents without an agent: {missing}")


@probe("agents_fallback_declared", ("/admin/agents",))
async def _agents_fallback_declared(t: Target) -> None:
    fallback = (await _document(t, "/admin/agents")).get("fallback_intent")
    check(fallback in contract.INTENTS, f"fallback_intent {fallback!r}")


@probe("agents_threshold_declared", ("/admin/agents",))
async def _agents_threshold_declared(t: Target) -> None:
    threshold = (await _document(t, "/admin/agents")).get("confidence_threshold")
    check(is_number(threshold) and 0 < threshold < 1, f"confidence_threshold {threshold!r}")


def _pipeline_probe(name: str, ok: Callable[[dict[str, object]], bool], rule: str) -> None:
    @probe(name, ("/admin/pipeline",))
    async def _pipeline_field(t: Target) -> None:
        body = await _document(t, "/admin/pipeline")
        check(ok(body), f"{rule}: {json.dumps(body)[:300]}")


def _nested(body: dict[str, object], *path: str) -> object:
    value: object = body
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _retries(body: dict[str, object]) -> bool:
    retries = body.get("max_retries")
    return is_number(retries) and retries >= 1


def _backoff(body: dict[str, object]) -> bool:
    cap = body.get("retry_backoff_max_s")
    return body.get("retry_backoff") is True and is_number(cap) and cap > 0


def _time_limits(body: dict[str, object]) -> bool:
    soft, hard = body.get("task_soft_time_limit_s"), body.get("task_time_limit_s")
    return is_number(soft) and is_number(hard) and 0 < soft < hard


def _dead_letter_queue(body: dict[str, object]) -> bool:
    queue = body.get("dead_letter_queue")
    return isinstance(queue, str) and bool(queue)


def _worker_alive(body: dict[str, object]) -> bool:
    online = _nested(body, "health", "worker", "online")
    return _nested(body, "health", "worker", "status") == "ok" and is_number(online) and online > 0


_pipeline_probe("pipeline_retries", _retries, "max_retries >= 1")
_pipeline_probe("pipeline_backoff", _backoff, "exponential backoff with a cap")
_pipeline_probe("pipeline_time_limit", _time_limits, "0 < soft time limit < hard time limit")
_pipeline_probe("pipeline_dlq", _dead_letter_queue, "a dead-letter queue")
_pipeline_probe("pipeline_acks_late", lambda body: body.get("acks_late") is True, "tasks acknowledged after they run")
_pipeline_probe(
    "pipeline_ingestion_validation",
    lambda body: _nested(body, "ingestion", "validates_files") is True,
    "ingestion validates files",
)
_pipeline_probe("pipeline_worker_health", _worker_alive, "a live worker")
_pipeline_probe(
    "pipeline_ingestion_health",
    lambda body: _nested(body, "health", "ingestion", "status") == "ok",
    "a live ingestion service",
)


@probe("runtime_auth", ("/admin/runtime",))
async def _runtime_auth(t: Target) -> None:
    settings = _nested(await _document(t, "/admin/runtime"), "auth")
    check(isinstance(settings, dict), "runtime.auth missing")
    assert isinstance(settings, dict)
    check(settings.get("algorithm") == t.key.algorithm, f"algorithm {settings.get('algorithm')!r}")
    check((settings.get("issuer"), settings.get("audience")) == (t.issuer, t.audience), "issuer/audience differ")
    key_ids = settings.get("key_ids")
    check(isinstance(key_ids, list) and t.key.kid in key_ids, f"key_ids {key_ids!r} lack {t.key.kid!r}")


@probe("jwks_published", (JWKS_PATH,))
async def _jwks_published(t: Target) -> None:
    if t.key.algorithm != "RS256":
        await expect(t.client.get(JWKS_PATH), 404, "JWKS for a symmetric key")
        return
    keys = strict_json(await expect(t.client.get(JWKS_PATH), 200, "GET JWKS")).get("keys")
    kids = [key.get("kid") for key in keys if isinstance(key, dict)] if isinstance(keys, list) else []
    check(t.key.kid in kids, f"JWKS kids {kids} lack {t.key.kid!r}")


@probe("log_level", ("/admin/runtime",))
async def _log_level(t: Target) -> None:
    level = _nested(await _document(t, "/admin/runtime"), "logging", "level")
    check(level in ("INFO", "WARNING", "ERROR"), f"production log level {level!r}")


@probe("logs_structured", ("/admin/runtime",))
async def _logs_structured(t: Target) -> None:
    seen = len(t.logs()) if t.logs is not None else 0
    check(_nested(await _document(t, "/admin/runtime"), "logging", "format") == "json", "log format is not json")
    if t.logs is None:
        return
    fresh = t.logs()[seen:].splitlines()
    check(bool(fresh), "the request left no log line")
    for line in fresh:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        check(isinstance(record, dict) and {"ts", "level", "event"} <= set(record), f"unstructured line {line[:80]!r}")


@probe("logs_trace", ("/chat/query",), (Intent.ANOMALY,))
async def _logs_trace(t: Target) -> None:
    response = await expect(t.chat({"query": "unusual payments", "intent": "ANOMALY"}), 200, "chat")
    trace_id = response.headers.get(contract.TRACE_HEADER)
    check(bool(trace_id), "no X-Trace-Id to follow into the logs")
    if t.logs is not None:
        lines = [line for line in t.logs().splitlines() if "chat_query" in line and str(trace_id) in line]
        check(bool(lines), f"no chat_query log line with trace id {trace_id}")
