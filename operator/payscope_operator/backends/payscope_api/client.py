"""How the audit talks to PayScope's HTTP API: requests out, replies in, one timeout each.

Why this module exists: dimensions C, D, E, F and G observe PayScope through contract
version 1 of its HTTP API (health, readiness, ``/metrics``, the admin documents,
``POST /chat/query``). This module sends those requests, each with its own explicit
timeout, concurrently, and keeps each answer as a :class:`Reply` (status code, JSON
body, text). A request that gets no HTTP answer is not an exception here: it is a
:class:`Reply` with ``failure`` set, so one hanging route spoils only the checks that
read it. ``model`` turns replies into typed facts.

Clients come from :func:`build_client`, under the operator's egress policy: a host the
policy denies, or a body larger than the response cap, is a :class:`Reply` whose
``failure_reason`` says so (``EgressDenied``, ``ResponseTooLarge``).

What it must not do: mint, keep or log tokens (callers pass a bearer token in a
:class:`Request`, which hides it from ``repr``; no reply, failure text or exception
ever carries it), retry or follow redirects, judge what it saw (the audit does), or
import ``reconcile``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from payscope_operator import errors
from payscope_operator.egress import policy, transport

BANK_HEADER = "X-Bank-Id"
TRACE_HEADER = "X-Trace-Id"
REQUEST_ID_HEADER = "X-Request-Id"
"""A fresh id on every request (contract section 0): no two probes look alike to a response cache."""
CHAT_PATH = "/chat/query"
ADMIN_PATHS: tuple[str, ...] = ("/admin/agents", "/admin/pipeline", "/admin/runtime")
USER_AGENT = "payscope-operator-audit"
DEFAULT_IN_FLIGHT = 8

Json = Mapping[str, object]
Closer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Request:
    """One probe request; ``token`` (a bearer JWT) never shows in ``repr``."""

    method: Literal["GET", "POST"]
    path: str
    timeout: float
    token: str | None = field(default=None, repr=False)
    bank_id: str | None = None
    body: bytes | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class Reply:
    """What came back: an HTTP status, or why there was none (``failure``)."""

    endpoint: str
    status: int | None
    failure: str | None = None
    failure_reason: str | None = None  # EgressDenied or ResponseTooLarge, when the failure is one of those
    content_type: str = ""
    body: Json | None = None  # the body, when it is a JSON object served as JSON
    finite: bool = True  # the JSON held no NaN or Infinity
    trace_header: str | None = None
    text: str = field(default="", repr=False)
    request_id: str | None = None  # the X-Request-Id this reply answered
    challenge: str | None = None  # WWW-Authenticate, on a 401

    def describe(self) -> str:
        """``POST /chat/query → 200`` or ``GET /metrics: no answer within 5s``: for evidence."""
        return f"{self.endpoint}: {self.failure}" if self.status is None else f"{self.endpoint} → {self.status}"


@dataclass(frozen=True)
class Client:
    """One installation's HTTP client and the turns (``limit`` of them) its requests take."""

    http: httpx.AsyncClient
    turns: asyncio.Semaphore
    limit: int


def build_client(base_url: str, egress: policy.Policy, limit: int = DEFAULT_IN_FLIGHT) -> tuple[Client, Closer]:
    """A long-lived client for one PayScope API under the egress policy and response cap (``spec.api.url``).

    At most ``limit`` requests are in flight at once; every request still passes its own timeout.
    """
    http = transport.client(
        egress,
        "spec.api.url",
        base_url=base_url,
        timeout=httpx.Timeout(10.0),
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
    )
    return Client(http, asyncio.Semaphore(limit), limit), http.aclose


def _decode(text: str) -> tuple[Json | None, bool]:
    """The JSON object in ``text`` (None if it is not one) and whether it held only finite numbers."""
    non_finite: list[str] = []

    def constant(name: str) -> float:
        non_finite.append(name)
        return float(name)

    try:
        decoded: object = json.loads(text, parse_constant=constant)
    except ValueError:
        return None, True
    return (decoded if isinstance(decoded, dict) else None), not non_finite


async def send(client: Client, request: Request) -> Reply:
    """Send one request when its turn comes, all under its own timeout; no turn or no answer is ``Reply.failure``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.timeout
    try:
        async with asyncio.timeout_at(deadline):
            await client.turns.acquire()
    except TimeoutError:
        failure = f"no answer within {request.timeout:g}s (queued behind {client.limit} requests in flight)"
        return Reply(request.endpoint, None, failure=failure)
    try:
        return await _send(client.http, request, max(deadline - loop.time(), 0.001))
    finally:
        client.turns.release()


async def _send(client: httpx.AsyncClient, request: Request, timeout: float) -> Reply:
    request_id = uuid.uuid4().hex
    # Never answered from a cache: determinism and metrics probes must reach the code they judge.
    headers = {"Accept": "application/json", REQUEST_ID_HEADER: request_id, "Cache-Control": "no-cache"}
    if request.token is not None:
        headers["Authorization"] = f"Bearer {request.token}"
    if request.bank_id is not None:
        headers[BANK_HEADER] = request.bank_id
    if request.body is not None:
        headers["Content-Type"] = "application/json"
    try:
        response = await client.request(
            request.method,
            request.path,
            content=request.body,
            headers=headers,
            timeout=httpx.Timeout(timeout),
        )
    except httpx.TimeoutException:
        return Reply(request.endpoint, None, failure=f"no answer within {request.timeout:g}s", request_id=request_id)
    except httpx.HTTPError as exc:  # refused, reset, DNS: the type says which, the text may quote the URL
        return Reply(request.endpoint, None, failure=f"no answer ({type(exc).__name__})", request_id=request_id)
    except errors.PayScopeError as exc:  # the egress policy refused the host, or the body was too large
        return Reply(request.endpoint, None, failure=exc.message, failure_reason=exc.reason, request_id=request_id)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    body, finite = _decode(response.text) if is_json else (None, True)
    return Reply(
        endpoint=request.endpoint,
        status=response.status_code,
        content_type=content_type,
        body=body,
        finite=finite,
        trace_header=response.headers.get(TRACE_HEADER),
        text=response.text,
        request_id=request_id,
        challenge=response.headers.get("WWW-Authenticate"),
    )


async def send_all(client: Client, requests: Mapping[str, Request]) -> dict[str, Reply]:
    """Send every request concurrently; replies keyed like the requests."""
    names = list(requests)
    replies = await asyncio.gather(*(send(client, requests[name]) for name in names))
    return dict(zip(names, replies, strict=True))
