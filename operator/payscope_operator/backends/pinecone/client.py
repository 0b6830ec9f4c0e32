"""How the operator talks to Pinecone: wire shapes, retries, error mapping, redaction.

Why this module exists: ``plan`` decides what to change in Pinecone; this module
knows how to talk to it (control-plane API 2025-10 and the data plane's
``describe_index_stats``) and how to fail. One request (:meth:`Client.send`):

- passes an explicit timeout and ``X-Pinecone-Api-Version: 2025-10``; the ``Api-Key``
  lives only in the headers of the ``httpx.AsyncClient`` built by :func:`connect`,
  which the caller owns and closes;
- retries 429, 5xx and transport faults with exponential backoff and jitter,
  honouring ``Retry-After``, within :class:`RetryPolicy` (attempts and total seconds
  spent waiting); then raises ``errors.DependencyUnavailable``;
- maps 401/403 to ``errors.PermissionDenied`` and other refusals (400, 402, 404, 422)
  to ``errors.SpecUnsatisfiable``, unless the caller said it handles that status.

What it must not do: put the API key into a message or log line (httpx exceptions are
summarised and redacted, never re-raised or chained); follow redirects (the key would
go to another host); plan anything or know the spec.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NotRequired, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from payscope_operator import errors
from payscope_operator.api import conditions, fields
from payscope_operator.egress import policy, transport

API_VERSION = "2025-10"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RETRYABLE = frozenset({429, 500, 502, 503, 504})

_log = logging.getLogger(__name__)
_jitter = random.Random()  # noqa: S311 - backoff jitter, not cryptography
_T = TypeVar("_T")


# ---- wire shapes (the fields the operator reads or sends; others are ignored) --------------


class ServerlessWire(TypedDict):
    cloud: str
    region: str


class PodWire(TypedDict):
    environment: str
    pod_type: str
    replicas: int
    shards: int
    pods: NotRequired[int]


class SpecWire(TypedDict, total=False):
    serverless: ServerlessWire
    pod: PodWire


class StatusWire(TypedDict):
    ready: bool
    state: str


class IndexWire(TypedDict):
    """An IndexModel as ``GET /indexes/{name}`` answers it."""

    name: str
    metric: str
    host: str
    spec: SpecWire
    status: StatusWire
    dimension: NotRequired[int | None]
    vector_type: NotRequired[str]
    deletion_protection: NotRequired[str]
    tags: NotRequired[dict[str, str] | None]


class IndexListWire(TypedDict):
    indexes: list[IndexWire]


class NamespaceWire(TypedDict):
    vectorCount: int


class StatsWire(TypedDict):
    """``describe_index_stats`` as the data plane answers it (camelCase)."""

    namespaces: NotRequired[dict[str, NamespaceWire]]
    dimension: NotRequired[int | None]
    totalVectorCount: NotRequired[int]


class CreateIndexWire(TypedDict):
    """The body of ``POST /indexes``."""

    name: str
    dimension: int
    metric: str
    vector_type: str
    deletion_protection: str
    tags: dict[str, str]
    spec: SpecWire


class PodConfigureWire(TypedDict, total=False):
    replicas: int
    pod_type: str


class ConfigureIndexWire(TypedDict, total=False):
    """The body of ``PATCH /indexes/{name}``: only the fields to change."""

    deletion_protection: str
    tags: dict[str, str]
    spec: dict[str, PodConfigureWire]


class _ErrorDetailWire(TypedDict, total=False):
    code: str
    message: str


class _ErrorWire(TypedDict, total=False):
    error: _ErrorDetailWire


INDEX = TypeAdapter(IndexWire)
INDEX_LIST = TypeAdapter(IndexListWire)
STATS = TypeAdapter(StatsWire)
_ERROR = TypeAdapter(_ErrorWire)


# ---- addresses -----------------------------------------------------------------------------


def connect(
    controller_url: str,
    api_key: str,
    *,
    egress: policy.Policy | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> httpx.AsyncClient:
    """An HTTP client for one resource's Pinecone project; the caller closes it (``aclose()``).

    Every request (control plane and index hosts alike) passes ``egress`` first and every
    body is read with its size cap; None means the policy of the operator's environment
    (``policy.Policy.from_environment``), as ``payscope-operator`` reads it.
    """
    if not re.fullmatch(fields.HTTP_URL_PATTERN, controller_url):
        raise errors.SpecInvalid("pinecone.controllerUrl is not an http(s) URL without user info")
    return transport.client(
        egress if egress is not None else policy.Policy.from_environment(),
        "spec.pinecone.controllerUrl",
        base_url=controller_url.rstrip("/"),
        headers={"Api-Key": api_key, "X-Pinecone-Api-Version": API_VERSION},
        timeout=timeout,
    )


def index_path(name: str) -> str:
    """``/indexes/{name}``, after re-checking the name against the CRD's pattern."""
    if not re.fullmatch(fields.PINECONE_INDEX_PATTERN, name):
        raise errors.SpecInvalid(f"not a Pinecone index name: {name[:60]!r}")
    return f"/indexes/{name}"


def index_url(host: str) -> str:
    """The data-plane base URL of an index: a host with a scheme is kept, a bare host gets https://."""
    host = host.strip().rstrip("/")
    return host if "://" in host else f"https://{host}"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries of one request: attempts, backoff, and total seconds spent waiting."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 20.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: between half and all of base x 2^(attempt-1)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return _jitter.uniform(ceiling / 2, ceiling)


# ---- the client ----------------------------------------------------------------------------


class Client:
    """Sends requests to Pinecone through a caller-owned ``httpx.AsyncClient`` (see :func:`connect`)."""

    def __init__(self, http: httpx.AsyncClient, *, retry: RetryPolicy, timeout: httpx.Timeout) -> None:
        self._http = http
        self._retry = retry
        self._timeout = timeout
        self.changes_sent = 0
        """Change requests sent (control-plane POST, PATCH, DELETE), retries included."""

    async def send(
        self,
        method: str,
        url: str,
        *,
        json: object = None,
        expect: Collection[int] = (),
        change: bool | None = None,
    ) -> httpx.Response:
        """One request with retries; 2xx and ``expect`` statuses are returned, others raise.

        ``change`` (default: any method but GET) counts the request in ``changes_sent``.
        """
        where = f"{method} {httpx.URL(url).path}"
        is_change = method != "GET" if change is None else change
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if is_change:
                self.changes_sent += 1
            try:
                response = await self._http.request(
                    method, url, json=json, headers={"X-Pinecone-Api-Version": API_VERSION}, timeout=self._timeout
                )
            except httpx.TransportError as exc:
                timed_out = isinstance(exc, httpx.TimeoutException)
                failure = type(exc).__name__ + (f": {self.redact(str(exc))[:200]}" if str(exc) else "")
                wait = self._retry.backoff(attempt)
            else:
                if response.is_success or response.status_code in expect:
                    return response
                if response.status_code not in RETRYABLE:
                    raise self._refusal(where, response)
                timed_out = False
                failure = f"HTTP {response.status_code}"
                asked = retry_after(response)
                wait = self._retry.backoff(attempt) if asked is None else asked
            spent = time.monotonic() - started
            if attempt >= self._retry.attempts or spent + wait > self._retry.budget:
                reason = conditions.Reason.DEPENDENCY_TIMEOUT if timed_out else conditions.Reason.DEPENDENCY_UNAVAILABLE
                message = f"Pinecone {where} failed after {attempt} attempt(s) in {spent:.1f}s: {failure}"
                raise errors.DependencyUnavailable(message, reason=reason, delay=max(wait, 1.0)) from None
            _log.warning("Pinecone %s: %s; retry %d in %.2fs", where, failure, attempt, wait)
            await asyncio.sleep(wait)

    def decode(self, adapter: TypeAdapter[_T], response: httpx.Response, what: str) -> _T:
        """The validated body of a successful answer; a body of another shape is a dependency fault."""
        try:
            return adapter.validate_json(response.content)
        except ValidationError:
            raise errors.DependencyUnavailable(f"Pinecone {what}: unexpected response body") from None

    def error_text(self, response: httpx.Response) -> str:
        """``HTTP 403 FORBIDDEN: message`` from an error answer, redacted and bounded."""
        try:
            detail = _ERROR.validate_json(response.content).get("error") or {}
        except ValidationError:
            detail = {}
        text = f"HTTP {response.status_code} {detail.get('code', '')}".rstrip()
        if message := detail.get("message"):
            text += f": {message[:200]}"
        return self.redact(text)

    def redact(self, text: str) -> str:
        """``text`` with the API key masked, should a server or library ever echo it."""
        key = self._http.headers.get("Api-Key")
        return text.replace(key, "***") if key else text

    def _refusal(self, where: str, response: httpx.Response) -> errors.PayScopeError:
        text = f"Pinecone {where}: {self.error_text(response)}"
        if response.status_code in (401, 403):
            return errors.PermissionDenied(text, reason=conditions.Reason.PERMISSION_DENIED)
        return errors.SpecUnsatisfiable(text, reason=conditions.Reason.SPEC_INVALID)
