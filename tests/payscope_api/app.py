"""The reference PayScope API: an aiohttp application that honours contract version 1.

Why it exists: the operator's D, E, F and G checks probe PayScope over HTTP,
and their tests need a real server that behaves exactly as the contract
(docs/payscope-contract.md) says, and that can be switched to break one
behaviour at a time (see ``faults``). ``create_app`` builds it in-process for
aiohttp's test server; ``python -m tests.payscope_api`` runs it as a process.

What it must not do: implement more than the contract and the fault switch
(no database, no model), use prometheus_client's global registry, or let the
fixture-only ``/_faults`` and ``/_stats`` endpoints (guarded by X-Fixture-Token, absent when no
fixture token is configured) leak into metrics, logs or the contract.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.payscope_api import admin, auditlog, auth, contract, intents
from tests.payscope_api.audit_writer import AuditWriter
from tests.payscope_api.config import FixtureConfig
from tests.payscope_api.contract import Intent
from tests.payscope_api.faults import ARGUMENTS, FaultError, FaultName, FaultSet, FaultsFile, parse_faults
from tests.payscope_api.telemetry import METRICS_CONTENT_TYPE, LogWriter, Metrics

FAULTS_ROUTE = "/_faults"
STATS_ROUTE = "/_stats"
FIXTURE_ROUTES = frozenset({FAULTS_ROUTE, STATS_ROUTE})
MAX_QUERY_CHARS = 4000


@dataclass
class FixtureState:
    """Everything one fixture instance owns besides its routes."""

    config: FixtureConfig
    faults: FaultSet
    faults_file: FaultsFile | None
    metrics: Metrics
    log: LogWriter
    audit: AuditWriter | None = None
    #: FORECAST and WHAT_IF answers kept by the ``answer_cache`` fault: bank|intent|query -> body text.
    answers: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0
    """Most requests served at once since the start or the last ``POST /_stats`` (fixture-only, not a metric)."""


STATE = web.AppKey("payscope_fixture", FixtureState)
TRACE_ID = web.RequestKey("trace_id", str)


class ApiError(Exception):
    """A contract error answer: status, stable snake_case code, human message."""

    def __init__(self, status: int, code: str, message: str, *, component: str = "api") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.component = status, code, message, component


def create_app(config: FixtureConfig) -> web.Application:
    """Build one independent fixture (its own faults, registry and log stream)."""
    faults = FaultSet(parse_faults(config.faults))
    faults_file = FaultsFile(config.faults_file) if config.faults_file is not None else None
    if faults_file is not None:
        problem = faults_file.refresh(faults)
        if problem:
            raise FaultError(problem)
    writer = AuditWriter(config.audit_dsn, config.audit_table) if config.audit_dsn else None
    state = FixtureState(
        config, faults, faults_file, Metrics(config.version), LogWriter(config.log_stream, faults), writer
    )
    app = web.Application(middlewares=[_observe])
    app[STATE] = state
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/chat/query", _chat_query)
    app.router.add_get("/admin/agents", _admin_agents)
    app.router.add_get("/admin/pipeline", _admin_pipeline)
    app.router.add_get("/admin/runtime", _admin_runtime)
    app.router.add_get(admin.JWKS_PATH, _jwks)
    app.router.add_get(FAULTS_ROUTE, _faults_get)
    app.router.add_post(FAULTS_ROUTE, _faults_post)
    app.router.add_get(STATS_ROUTE, _stats_get)
    app.router.add_post(STATS_ROUTE, _stats_post)
    return app


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _challenge(code: str, faults: FaultSet) -> str:
    """``WWW-Authenticate`` of a 401: RFC 6750 section 3.1 gives no error code to a request without credentials."""
    if code == "missing_token" and FaultName.CHALLENGE_ERROR_WITHOUT_TOKEN not in faults:
        return 'Bearer realm="payscope"'
    return 'Bearer realm="payscope", error="invalid_token"'


def _error(
    state: FixtureState, status: int, code: str, message: str, trace_id: str, component: str = "api"
) -> web.Response:
    """A contract error answer, counted in payscope_errors_total{component, kind=code} (contract section 9)."""
    if status >= 500 or FaultName.ERRORS_COUNT_5XX_ONLY not in state.faults:
        state.metrics.errors.labels(component, code).inc()
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = _challenge(code, state.faults)
    if FaultName.UNSTRUCTURED_ERRORS in state.faults:
        text = f"Internal Server Error\nTraceback (most recent call last):\n  {code}: {message}\n"
        return web.Response(status=status, text=text, content_type="text/plain", headers=headers)
    body: contract.ErrorBody = {"error": {"code": code, "message": message}, "trace_id": trace_id}
    return web.json_response(body, status=status, headers=headers)


async def _dispatch(
    request: web.Request, handler: Handler, state: FixtureState, route: str, trace_id: str
) -> web.StreamResponse:
    """Run the handler (after the ``hang`` fault's sleep) and map every failure to a contract error."""
    hang = state.faults.args(FaultName.HANG)
    if route in hang or "*" in hang:
        await asyncio.sleep(state.config.hang_seconds)
    try:
        return await handler(request)
    except auth.AuthError as exc:
        state.metrics.auth_failures.labels(exc.reason).inc()
        state.log.log("WARNING", "auth_refused", reason=exc.reason, route=route, trace_id=trace_id)
        code = "missing_token" if exc.reason == "missing" else "invalid_token"
        return _error(state, 401, code, "authentication required", trace_id)
    except auth.ForbiddenError as exc:
        state.metrics.auth_failures.labels(exc.reason).inc()
        state.log.log("WARNING", "auth_forbidden", reason=exc.reason, route=route, trace_id=trace_id)
        return _error(state, 403, exc.reason, "not allowed for this caller", trace_id)
    except ApiError as exc:
        if exc.status >= 500:
            state.log.log("ERROR", "request_failed", code=exc.code, route=route, trace_id=trace_id)
        return _error(state, exc.status, exc.code, exc.message, trace_id, exc.component)
    except web.HTTPException as exc:  # the router's 404 and 405, before any authentication
        code = "not_found" if exc.status == 404 else "method_not_allowed" if exc.status == 405 else "bad_request"
        return _error(state, exc.status, code, exc.reason, trace_id)
    except Exception as exc:  # noqa: BLE001 - every unexpected failure becomes a logged, counted 500
        state.log.log("ERROR", "unhandled_exception", error=type(exc).__name__, route=route, trace_id=trace_id)
        return _error(state, 500, "internal_error", "internal error", trace_id)


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Trace id, hang fault, error mapping, HTTP metrics and the access log line of every request."""
    state = request.app[STATE]
    route = _route_of(request)
    if route in FIXTURE_ROUTES:
        return await handler(request)
    if state.faults_file is not None:
        problem = state.faults_file.refresh(state.faults)
        if problem:
            state.log.log("ERROR", "faults_file_refused", problem=problem)
    trace_id = uuid.uuid4().hex
    request[TRACE_ID] = trace_id
    state.log.log("DEBUG", "dispatch", method=request.method, route=route, trace_id=trace_id)
    started = time.perf_counter()
    state.metrics.inflight.inc()
    state.in_flight += 1
    state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
    try:
        response = await _dispatch(request, handler, state, route, trace_id)
    finally:
        state.metrics.inflight.dec()
        state.in_flight -= 1
    elapsed = time.perf_counter() - started
    state.metrics.requests.labels(request.method, route, str(response.status)).inc()
    state.metrics.duration.labels(request.method, route).observe(elapsed)
    if not (route == "/chat/query" and FaultName.MISSING_TRACE_ID in state.faults):
        response.headers[contract.TRACE_HEADER] = trace_id
    state.log.log(
        "INFO",
        "http_request",
        method=request.method,
        route=route,
        status=response.status,
        duration_ms=round(elapsed * 1000, 3),
        trace_id=trace_id,
    )
    return response


async def _healthz(request: web.Request) -> web.Response:
    status, body = admin.health_body(request.app[STATE].faults)
    return web.json_response(body, status=status)


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    status, body = admin.readiness_body(state.config, state.faults)
    return web.json_response(body, status=status)


async def _metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    media_type = "text/html; charset=utf-8" if FaultName.METRICS_BROKEN in state.faults else METRICS_CONTENT_TYPE
    return web.Response(body=state.metrics.render(state.faults), headers={"Content-Type": media_type})


async def _chat_request(request: web.Request, faults: FaultSet) -> contract.ChatRequest:
    """The body: 413 when too large, 415 when not JSON by its media type, then 422 on any violation of
    section 5.1 (unless ``no_body_validation`` trusts it blindly)."""
    if request.content_length is not None and request.content_length > contract.MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", f"the body exceeds {contract.MAX_BODY_BYTES} bytes")
    if request.content_type != "application/json" and FaultName.NO_BODY_VALIDATION not in faults:
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    raw = await request.read()
    if FaultName.NO_BODY_VALIDATION in faults:
        blind = json.loads(raw)
        return {"query": blind["query"], "intent": Intent(blind["intent"]) if blind.get("intent") else None}
    try:
        decoded: object = json.loads(raw)
    except ValueError:
        raise ApiError(422, "invalid_body", "the body is not JSON") from None
    if not isinstance(decoded, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    query, intent = decoded.get("query"), decoded.get("intent")
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
        raise ApiError(422, "invalid_body", f"query must be a non-empty string of at most {MAX_QUERY_CHARS} chars")
    if intent is not None and intent not in contract.INTENTS:
        raise ApiError(422, "invalid_body", f"intent must be one of {[i.value for i in contract.INTENTS]}")
    return {"query": query, "intent": Intent(intent) if intent is not None else None}


def _route_intent(state: FixtureState, body: contract.ChatRequest) -> tuple[Intent, float, bool, str]:
    """Intent, confidence, fallback flag and how the intent was chosen."""
    requested = body.get("intent")
    found = intents.classify(body["query"])
    if requested is not None:  # no classification happens: the caller's intent is certain (contract 5.2)
        confident = found.confidence if FaultName.EXPLICIT_INTENT_CONFIDENCE in state.faults else 1.0
        return requested, confident, False, "requested"
    if found.intent is not None and found.confidence >= state.config.confidence_threshold:
        return found.intent, found.confidence, False, "classified"
    if FaultName.NO_FALLBACK in state.faults:
        if found.intent is None:
            raise ApiError(500, "unclassified_query", "no intent recognised", component="agent")
        return found.intent, found.confidence, False, "classified below threshold"
    state.metrics.fallbacks.labels("unclassified" if found.intent is None else "low_confidence").inc()
    return state.config.fallback_intent, found.confidence, True, "fallback"


async def _chat_query(request: web.Request) -> web.Response:
    state, faults = request.app[STATE], request.app[STATE].faults
    bank_header = request.headers.get(contract.BANK_HEADER)
    principal = auth.authenticate(request.headers.get("Authorization"), bank_header, state.config, faults)
    bank_id = auth.authorize_chat(principal, bank_header, faults)
    body = await _chat_request(request, faults)
    intent, confidence, fallback, how = _route_intent(state, body)
    cache_key = f"{bank_id}|{intent.value}|{body['query']}"
    if FaultName.ANSWER_CACHE not in faults:
        state.answers.clear()
    elif cache_key in state.answers:  # a forecast and simulation cache that replays whole answers
        return web.Response(text=state.answers[cache_key], content_type="application/json")
    if intent.value not in intents.agents(faults):
        state.metrics.agent_requests.labels(intent.value, "error").inc()
        raise ApiError(500, "no_agent", f"no agent configured for intent {intent.value}", component="agent")
    started = time.perf_counter()
    result = intents.answer(intent, body["query"], bank_id, how, faults)
    for source in result.sources:
        state.metrics.db_queries.labels(source["kind"], "ok").inc()
        state.metrics.db_duration.labels(source["kind"]).observe(0.001)
    state.metrics.agent_latency.labels(intent.value).observe(time.perf_counter() - started)
    state.metrics.agent_requests.labels(intent.value, "ok").inc()
    trace_id = request[TRACE_ID]
    response: contract.ChatResponse = {
        "intent": intent,
        "confidence": confidence,
        "fallback": fallback,
        "answer": result.answer,
        "explanation": result.explanation,
        "trace_id": trace_id,
        "bank_id": bank_id,
        "sources": result.sources,
    }
    if result.data is not None:
        response["data"] = result.data
    state.log.log(
        "INFO",
        "chat_query",
        trace_id=trace_id,
        bank_id=bank_id,
        actor=principal.sub,
        intent=intent.value,
        confidence=confidence,
        fallback=fallback,
        query_sha256=hashlib.sha256(body["query"].encode()).hexdigest(),
    )
    if state.audit is not None and FaultName.AUDIT_SKIP_QUERIES not in faults:
        payload: dict[str, auditlog.JsonValue] = {
            "trace_id": trace_id,
            "intent": intent.value,
            "query_sha256": hashlib.sha256(body["query"].encode()).hexdigest(),
        }
        await state.audit.append(bank_id=bank_id, actor=principal.sub, operation="chat.query", payload=payload)
    if FaultName.UNSTRUCTURED_RESPONSE in faults:
        return web.Response(text=f"{intent.value}: {result.answer}", content_type="text/plain")
    out: dict[str, object] = dict(response)
    if FaultName.CONFIDENCE_OUT_OF_RANGE in faults:
        out["confidence"] = round(confidence + 1.0, 4)
    if FaultName.MISSING_TRACE_ID in faults:
        del out["trace_id"]
    if FaultName.MISSING_EXPLANATION in faults:
        del out["explanation"]
    text = json.dumps(out, allow_nan=FaultName.FORECAST_NAN in faults)
    if FaultName.ANSWER_CACHE in faults and intent in (Intent.FORECAST, Intent.WHAT_IF):
        state.answers[cache_key] = text
    return web.Response(text=text, content_type="application/json")


async def _require_admin(request: web.Request) -> FixtureState:
    """Authenticate and authorise an admin read, and record it in the audit log (contract section 12.3)."""
    state = request.app[STATE]
    principal = auth.authenticate(request.headers.get("Authorization"), None, state.config, state.faults)
    auth.authorize_admin(principal, state.faults)
    if state.audit is not None and FaultName.AUDIT_SKIP_OPERATIONS not in state.faults:
        payload: dict[str, auditlog.JsonValue] = {"path": request.path, "trace_id": request[TRACE_ID]}
        await state.audit.append(
            bank_id=principal.bank_id, actor=principal.sub, operation="admin.read", payload=payload
        )
    return state


async def _admin_agents(request: web.Request) -> web.Response:
    state = await _require_admin(request)
    return web.json_response(intents.agents_body(state.config, state.faults))


async def _admin_pipeline(request: web.Request) -> web.Response:
    state = await _require_admin(request)
    return web.json_response(admin.pipeline_body(state.faults, state.config.dead_letter_queue))


async def _admin_runtime(request: web.Request) -> web.Response:
    state = await _require_admin(request)
    if FaultName.ADMIN_ENDPOINT_FAILS in state.faults:
        raise ApiError(500, "runtime_unavailable", "the runtime description failed")
    return web.json_response(admin.runtime_body(state.config, state.faults))


async def _jwks(request: web.Request) -> web.Response:
    config = request.app[STATE].config
    if not config.jwks_enabled:
        raise ApiError(404, "not_found", "no public keys: the configured algorithm is symmetric")
    return web.json_response(admin.jwks_body(config))


def _guard_faults(request: web.Request) -> FixtureState:
    state = request.app[STATE]
    expected = state.config.fixture_token
    if expected is None:
        raise web.HTTPNotFound()
    given = request.headers.get(contract.FIXTURE_TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPForbidden(text="fixture token required")
    return state


def _faults_listing(state: FixtureState) -> dict[str, list[str]]:
    available = [f"{name.value}:<arg>" if name in ARGUMENTS else name.value for name in FaultName]
    return {"active": state.faults.specs(), "available": available}


async def _faults_get(request: web.Request) -> web.Response:
    return web.json_response(_faults_listing(_guard_faults(request)))


async def _faults_post(request: web.Request) -> web.Response:
    """``{"enable": [...], "disable": [...]}``: disable first, then enable; all or nothing."""
    state = _guard_faults(request)
    try:
        decoded: object = json.loads(await request.read())
        if not isinstance(decoded, dict) or set(decoded) - {"enable", "disable"}:
            raise FaultError('expected {"enable": [...], "disable": [...]}')
        lists = {key: decoded.get(key, []) for key in ("enable", "disable")}
        if not all(isinstance(value, list) for value in lists.values()):
            raise FaultError('"enable" and "disable" must be arrays')
        enable, disable = parse_faults(lists["enable"]), parse_faults(lists["disable"])
    except ValueError as exc:  # FaultError and JSONDecodeError
        raise web.HTTPBadRequest(text=str(exc)) from None
    state.faults.disable(disable)
    state.faults.enable(enable)
    return web.json_response(_faults_listing(state))


async def _stats_get(request: web.Request) -> web.Response:
    """``{"inFlight": n, "peakInFlight": m}``: what a politeness test observes on the server's side."""
    state = _guard_faults(request)
    return web.json_response({"inFlight": state.in_flight, "peakInFlight": state.peak_in_flight})


async def _stats_post(request: web.Request) -> web.Response:
    """Start a new observation: the peak becomes the number of requests in flight now."""
    state = _guard_faults(request)
    state.peak_in_flight = state.in_flight
    return web.json_response({"inFlight": state.in_flight, "peakInFlight": state.peak_in_flight})
