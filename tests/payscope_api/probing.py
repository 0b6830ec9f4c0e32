"""The frame of the contract-conformance probes: a target, a probe, a verdict.

Why it exists: to prove that the reference fixture honours the contract, and
that each fault breaks exactly its own behaviour, the tests need each behaviour
of contract version 1 as a separate, named predicate over real HTTP. A
``Probe`` also says which routes and intents it relies on, so the tests can
compute which probes a ``hang:<route>`` or ``omit_intent:<INTENT>`` fault must
break. The probes themselves live in ``probes_api`` (health, metrics, chat)
and ``probes_access`` (tokens, isolation, admin, logs).

What it must not do: import the fixture's internals (only ``contract`` and
``tokens``: probes speak HTTP, so they run unchanged against the in-process
fixture, the fixture as a process, or a real PayScope), or stand in for the
operator's checks, which have their own catalog.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeGuard

import httpx

from tests.payscope_api import contract, tokens
from tests.payscope_api.contract import Intent

VALID_BODY: Mapping[str, object] = {"query": "describe volumes", "intent": "DESCRIBE"}


class ContractError(Exception):
    """The contract does not hold; the message says how."""


@dataclass
class Target:
    """A PayScope API to probe and what the prober knows about it."""

    client: httpx.AsyncClient
    key: tokens.SigningKey
    issuer: str = tokens.DEFAULT_ISSUER
    audience: str = tokens.DEFAULT_AUDIENCE
    bank: str = "bank-a"
    confidence_threshold: float = 0.6
    fallback_intent: Intent = Intent.DESCRIBE
    #: The API's log output so far, when the prober can read it.
    logs: Callable[[], str] | None = None
    #: The readiness entries the API is configured with (contract section 2.2).
    dependencies: tuple[str, ...] = ()

    def token(self, *, roles: tuple[str, ...] = (contract.ROLE_ANALYST,), **overrides: str | int) -> str:
        return tokens.mint(self.key, self.claims(roles=roles, **overrides))

    def claims(self, *, roles: tuple[str, ...] = (contract.ROLE_ANALYST,), **overrides: str | int) -> dict[str, object]:
        base = tokens.claims(bank_id=self.bank, roles=roles, issuer=self.issuer, audience=self.audience)
        return {**base, **overrides}

    async def chat(self, body: object, headers: Mapping[str, str] | None = None) -> httpx.Response:
        sent = dict(headers) if headers is not None else tokens.headers(self.token(), self.bank)
        sent.setdefault("Content-Type", "application/json")
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.client.post("/chat/query", content=content, headers=sent)

    async def admin(self, path: str, roles: tuple[str, ...] = (contract.ROLE_ADMIN,)) -> httpx.Response:
        return await self.client.get(path, headers=tokens.bearer(self.token(roles=roles)))


ProbeFn = Callable[[Target], Awaitable[None]]


@dataclass(frozen=True)
class Probe:
    name: str
    run: ProbeFn
    routes: frozenset[str]
    intents: frozenset[Intent] = field(default_factory=frozenset)
    #: Needs a JSON body from /chat/query (so ``unstructured_response`` breaks it).
    chat_json: bool = False


def registrar(
    into: list[Probe],
) -> Callable[..., Callable[[ProbeFn], ProbeFn]]:
    """A decorator factory appending probes to ``into``: ``@probe(name, routes, intents, chat_json=...)``."""

    def probe(
        name: str, routes: tuple[str, ...], intents: tuple[Intent, ...] = (), *, chat_json: bool = False
    ) -> Callable[[ProbeFn], ProbeFn]:
        def register(fn: ProbeFn) -> ProbeFn:
            into.append(Probe(name, fn, frozenset(routes), frozenset(intents), chat_json))
            return fn

        return register

    return probe


async def run_probe(item: Probe, target: Target) -> str | None:
    """None when the behaviour holds, else why not (a timeout or transport error is a failure too)."""
    try:
        await item.run(target)
    except ContractError as exc:
        return str(exc)
    except httpx.TimeoutException:
        return "timed out"
    except httpx.HTTPError as exc:
        return f"transport error: {type(exc).__name__}"
    return None


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def _reject_constant(name: str) -> object:
    raise ContractError(f"not strict JSON: {name}")


def strict_json(response: httpx.Response) -> dict[str, object]:
    """The body as a JSON object, refusing NaN and Infinity."""
    try:
        decoded: object = json.loads(response.text, parse_constant=_reject_constant)
    except ValueError:
        raise ContractError(f"{response.request.url.path}: body is not JSON") from None
    check(isinstance(decoded, dict), f"{response.request.url.path}: body is not a JSON object")
    assert isinstance(decoded, dict)
    return decoded


def is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


async def expect(response: Awaitable[httpx.Response], status: int, what: str) -> httpx.Response:
    got = await response
    check(got.status_code == status, f"{what}: expected {status}, got {got.status_code}")
    return got
