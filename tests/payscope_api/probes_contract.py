"""Conformance probes of the points contract version 1.1 settled (docs/payscope-contract.md, appendix B).

Why it exists: an independent implementation written from the contract alone had
to guess at these; each is now a sentence of the contract and a probe here, so
the reference fixture (and any PayScope) is held to the same answer. One probe
per settled point: fractional NumericDates, where WHAT_IF's steps bound lives,
the confidence of a named intent, which 403 comes first, routing before
authentication, the codes of protocol errors and their counting, the challenge
without a token, what ``/readyz`` lists, and answers never replayed from a cache.

What it must not do: import the fixture's internals (only ``contract``,
``tokens`` and ``probing``), or repeat a probe of ``probes_api``/``probes_access``.
"""

from __future__ import annotations

import time

import httpx

from tests.payscope_api import contract, tokens
from tests.payscope_api.contract import Intent
from tests.payscope_api.probing import VALID_BODY, Probe, Target, check, expect, registrar, strict_json

PROBES: list[Probe] = []
probe = registrar(PROBES)


def _code(response: httpx.Response) -> object:
    error = strict_json(response).get("error")
    return error.get("code") if isinstance(error, dict) else None


async def _expect_code(response: httpx.Response, status: int, code: str, what: str) -> httpx.Response:
    check(response.status_code == status, f"{what}: expected {status}, got {response.status_code}")
    check(_code(response) == code, f"{what}: error.code {_code(response)!r}, expected {code!r}")
    return response


@probe("fractional_numeric_dates", ("/chat/query",), (Intent.DESCRIBE,))
async def _fractional_numeric_dates(t: Target) -> None:
    """Section 3.1: iat and exp are NumericDates (RFC 7519): fractional seconds are accepted, strings are not."""
    now = time.time()
    fractional = tokens.mint(t.key, {**t.claims(), "iat": now - 0.5, "exp": now + 60.25})
    await expect(t.chat(VALID_BODY, tokens.headers(fractional, t.bank)), 200, "a token with fractional iat/exp")
    as_text = tokens.mint(t.key, {**t.claims(), "exp": str(int(now) + 60)})
    await expect(t.chat(VALID_BODY, tokens.headers(as_text, t.bank)), 401, "a token whose exp is a string")


@probe("what_if_bounded", ("/chat/query", "/admin/agents"), (Intent.WHAT_IF,), chat_json=True)
async def _what_if_bounded(t: Target) -> None:
    """Sections 5.3 and 6: data.steps <= data.max_steps == /admin/agents WHAT_IF.max_steps."""
    answer = strict_json(await expect(t.chat({"query": "simulate a fee rise", "intent": "WHAT_IF"}), 200, "WHAT_IF"))
    data = answer.get("data")
    check(isinstance(data, dict), "WHAT_IF answer without data")
    assert isinstance(data, dict)
    steps, bound = data.get("steps"), data.get("max_steps")
    check(isinstance(steps, int) and isinstance(bound, int) and 0 < steps <= bound, f"steps {steps} of {bound}")
    agents = strict_json(await expect(t.admin("/admin/agents"), 200, "GET /admin/agents")).get("intents")
    declared = agents.get("WHAT_IF", {}).get("max_steps") if isinstance(agents, dict) else None
    check(declared == bound, f"the answer's max_steps {bound} differs from /admin/agents ({declared})")


@probe("explicit_intent_confidence", ("/chat/query",), (Intent.COMPARE,), chat_json=True)
async def _explicit_intent_confidence(t: Target) -> None:
    """Section 5.2: a request naming its intent is not classified: confidence 1.0, fallback false."""
    body = strict_json(await expect(t.chat({"query": "zq xv", "intent": "COMPARE"}), 200, "named intent"))
    check(body.get("confidence") == 1.0 and body.get("fallback") is False, f"named intent answered {body}")


@probe("forbidden_role_before_bank", ("/chat/query",))
async def _forbidden_role_before_bank(t: Target) -> None:
    """Section 4: with both the role and the bank wrong, the role is refused first (403 forbidden_role)."""
    token = t.token(roles=("auditor",))
    response = await t.chat(VALID_BODY, tokens.headers(token, "another-bank"))
    await _expect_code(response, 403, "forbidden_role", "no chat role and another bank")


@probe("routing_before_authentication", ("unmatched", "/chat/query"))
async def _routing_before_authentication(t: Target) -> None:
    """Section 0: 404 and 405 come before authentication: no token is needed to learn a route is absent."""
    await _expect_code(await t.client.get("/no-such-route"), 404, "not_found", "unknown path without token")
    await _expect_code(await t.client.get("/chat/query"), 405, "method_not_allowed", "GET /chat/query without token")


@probe("protocol_error_codes", ("/chat/query",))
async def _protocol_error_codes(t: Target) -> None:
    """Section 0: 413 body_too_large and 415 unsupported_media_type, after authentication, before 422."""
    text = {**tokens.headers(t.token(), t.bank), "Content-Type": "text/plain"}
    await _expect_code(await t.chat(VALID_BODY, text), 415, "unsupported_media_type", "a text/plain body")
    huge = {"query": "x" * (contract.MAX_BODY_BYTES + 1)}
    await _expect_code(await t.chat(huge), 413, "body_too_large", "a body over MAX_BODY_BYTES")
    anonymous = {contract.BANK_HEADER: t.bank, "Content-Type": "text/plain"}
    await _expect_code(await t.chat(VALID_BODY, anonymous), 401, "missing_token", "a text/plain body without token")


async def _errors(t: Target, kind: str) -> float:
    response = await expect(t.client.get("/metrics"), 200, "GET /metrics")
    prefix = "payscope_errors_total{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line.startswith(prefix) and f'kind="{kind}"' in line
    )


@probe("errors_counted", ("/metrics", "/chat/query", "unmatched"))
async def _errors_counted(t: Target) -> None:
    """Section 9: every error answer is counted in payscope_errors_total, kind = its error.code."""
    for kind in ("invalid_token", "not_found"):
        before = await _errors(t, kind)
        if kind == "invalid_token":
            await t.chat(VALID_BODY, tokens.headers("not.a.jwt", t.bank))
        else:
            await t.client.get("/no-such-route")
        after = await _errors(t, kind)
        check(after == before + 1, f"payscope_errors_total{{kind={kind!r}}} went {before} -> {after}")


@probe("challenge_without_token", ("/chat/query",))
async def _challenge_without_token(t: Target) -> None:
    """Section 0 and RFC 6750 3.1: no credentials, no error code in the challenge; a bad token, invalid_token."""
    for headers in ({contract.BANK_HEADER: t.bank}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await _expect_code(await t.chat(VALID_BODY, headers), 401, "missing_token", "no Bearer token")
        challenge = response.headers.get("www-authenticate", "")
        check(challenge.startswith("Bearer") and "error=" not in challenge, f"challenge {challenge!r}")
    forged = await _expect_code(
        await t.chat(VALID_BODY, tokens.headers("not.a.jwt", t.bank)), 401, "invalid_token", "a malformed token"
    )
    challenge = forged.headers.get("www-authenticate", "")
    check('error="invalid_token"' in challenge, f"challenge {challenge!r}")


@probe("readyz_lists_dependencies", ("/readyz",))
async def _readyz_lists_dependencies(t: Target) -> None:
    """Section 2.2: one entry per dependency in use, none for one that is not configured."""
    checks = strict_json(await t.client.get("/readyz")).get("checks")
    check(isinstance(checks, dict) and set(checks) == set(t.dependencies), f"checks {checks} for {t.dependencies}")


@probe("chat_not_replayed", ("/chat/query",), (Intent.WHAT_IF,), chat_json=True)
async def _chat_not_replayed(t: Target) -> None:
    """Section 0: no answer is replayed from a cache: identical requests get their own trace ids."""
    seen: list[str] = []
    for _ in range(2):
        response = await expect(t.chat({"query": "suppose fees rise", "intent": "WHAT_IF"}), 200, "WHAT_IF")
        trace_id = strict_json(response).get("trace_id")
        check(trace_id == response.headers.get(contract.TRACE_HEADER), f"trace_id {trace_id} is not this request's")
        seen.append(str(trace_id))
    check(seen[0] != seen[1], f"the second answer replays the first (trace_id {seen[0]})")
