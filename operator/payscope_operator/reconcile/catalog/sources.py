"""The evidence sources over PayScope's HTTP API, shared by the C, D, E, F and G checks.

Why this module exists: several dimensions read the same answers (``/admin/pipeline``
feeds C and F, the chat probes feed D, E and G), and each answer must be fetched
once per pass. Four sources cover the API, each sending its requests
concurrently with the per-request timeouts of ``spec.api.timeouts``:

- ``payscope.status``: ``/healthz``, ``/readyz`` and ``/metrics`` (scraped twice,
  to see counters count), without a token;
- ``payscope.admin``: ``/admin/agents``, ``/admin/pipeline``, ``/admin/runtime`` as admin;
- ``payscope.chat``: one query per intent, FORECAST and WHAT_IF asked twice, an
  unclassifiable and a plainly classifiable query without intent, an invalid
  body, and a query as a second probe tenant;
- ``payscope.access``: a baseline with the audit's valid token and every forged
  or misdirected call G checks. They all carry an invalid body: contract version 1
  authenticates (401) and authorises (403) before it validates (422), so a refused
  call answers 401/403, one that got through answers 422, and no agent ever runs
  for a forged token.

A request without an answer spoils only the checks that read it (they turn
Unknown); when none of a source's requests is answered the whole source fails
with one message. Evidence keeps status codes and parsed bodies, never a token.

What it must not do: judge the evidence (the dimension modules do), talk HTTP
itself (``backends.payscope_api`` does), or mint tokens by hand (``tokens`` does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from payscope_operator import errors
from payscope_operator.api import fields, spec
from payscope_operator.backends import payscope_api
from payscope_operator.reconcile import checks, session, tokens

MARGIN_S = 2.0
"""A source's timeout exceeds its slowest request's by this much, so requests time out first."""
DEFAULT_PROBE_BANK = "payscope-audit"
"""The tenant chat probes act as when spec.audit.probeTenants is not set."""
PROBE_QUERIES: Mapping[str, str] = {
    "DESCRIBE": "Describe this month's payment volumes.",
    "COMPARE": "Compare card and transfer volumes this month against last month.",
    "ANOMALY": "Find unusual or suspicious payments this week.",
    "FORECAST": "Forecast payment volumes for the next 7 days.",
    "WHAT_IF": "What if card fees rise by 10%?",
}
UNCLASSIFIABLE_QUERY = "zqxv kwpl jjrt"
"""No intent can be read into it: PayScope must answer it through its fallback intent."""
CLASSIFIABLE = ("FORECAST", "Forecast the next quarter.")
"""A query naming one intent plainly, sent without ``intent``: it must be classified as that intent."""
INVALID_BODY = b'{"intent": "DESCRIBE"}'
"""A body without ``query``: PayScope must refuse it with 422 and its JSON error body."""
T = TypeVar("T")
ADMIN_ROLES = (tokens.ROLE_ADMIN,)
ANALYST_ROLES = (tokens.ROLE_ANALYST,)

# Keys of AccessEvidence.replies (the admin ones are "<caller>:<path>").
BASELINE = "baseline"
MISSING = "missing"
MALFORMED = "malformed"
EXPIRED = "expired"
WRONG_KEY = "wrong_key"
TAMPERED = "tampered"
ALG_NONE = "alg_none"
OTHER_ALG = "other_alg"
AUDIENCE = "audience"
ISSUER = "issuer"
UNKNOWN_KID = "unknown_kid"
NO_ROLE = "no_role"
BANK_MISMATCH = "bank_mismatch"
BANK_MISSING = "bank_missing"
NO_BANK_CLAIM = "no_bank_claim"
REQUIRED_CLAIMS = ("sub", "roles", "iss", "aud", "iat", "exp")
"""Claims removed one at a time by the G.jwt.claims probes (bank_id has its own check)."""
ROLES_AS_STRING = "claim:roles_as_string"


def claim_key(claim: str) -> str:
    return f"claim:{claim}"


def admin_key(caller: str, path: str) -> str:
    return f"{caller}:{path}"


def api_configured(desired: spec.PayScopeSpec) -> bool:
    return desired.api is not None


def auth_configured(desired: spec.PayScopeSpec) -> bool:
    return desired.api is not None and desired.api.auth is not None


def tenants(desired: spec.PayScopeSpec) -> tuple[str, str | None]:
    """The tenant probes act as, and a second one for isolation probes (None without probeTenants)."""
    declared = desired.audit.probe_tenants
    return (declared[0], declared[1]) if declared else (DEFAULT_PROBE_BANK, None)


def _seconds(value: str) -> float:
    return fields.parse_duration(value).total_seconds()


def _api(desired: spec.PayScopeSpec) -> spec.Api:
    if desired.api is None:
        raise errors.SpecInvalid("spec.api is not set")
    return desired.api


def request_timeout(desired: spec.PayScopeSpec) -> float:
    return _seconds(_api(desired).timeouts.request)


def query_timeout(desired: spec.PayScopeSpec) -> float:
    return _seconds(_api(desired).timeouts.query)


def explain(reply: payscope_api.client.Reply) -> str:
    """Why a reply cannot be used as evidence, for an Unknown finding an on-call engineer can act on."""
    if reply.status is None:
        return f"{reply.endpoint}: {reply.failure}"
    if reply.status == 401:
        return (
            f"{reply.endpoint} answered 401 to the audit's own token: make spec.api.auth (signing key, "
            "algorithm, issuer, audience) match PayScope's"
        )
    if reply.status == 403:
        return (
            f"{reply.endpoint} answered 403 to the audit's admin token: PayScope's admin role must be named "
            f"{tokens.ROLE_ADMIN!r} (contract version 1)"
        )
    if reply.status == 404:
        return f"{reply.endpoint} answered 404: this PayScope does not serve it (contract version 1 requires it)"
    if reply.status == 200:
        return f"{reply.endpoint} answered 200 without a JSON object body"
    return f"{reply.endpoint} answered {reply.status}"


def facts_of(document: payscope_api.model.Document[T]) -> T | checks.Finding:
    """A document's facts, or the Unknown finding saying why they could not be read."""
    if document.facts is None:
        return checks.Finding.unknown(explain(document.reply))
    return document.facts


def reveal(run: session.PassSession, ref: fields.SecretKeyRef, field: str) -> str:
    """A Secret value for building a client; a missing one names the Secret, key and field."""
    try:
        return run.secrets.reveal(ref.name, ref.key)
    except KeyError:
        raise errors.SecretNotFound(f"Secret {ref.name!r} key {ref.key!r} ({field}) is not available") from None


async def _client(run: session.PassSession) -> payscope_api.client.Client:
    url = _api(run.spec).url
    client: payscope_api.client.Client = await run.clients.get(
        "payscope.api", hash(url), lambda: payscope_api.client.build_client(url)
    )
    return client


async def _send(
    run: session.PassSession, requests: Mapping[str, payscope_api.client.Request]
) -> dict[str, payscope_api.client.Reply]:
    replies = await payscope_api.client.send_all(await _client(run), requests)
    if replies and all(r.status is None for r in replies.values()):
        first = next(iter(replies.values()))
        raise errors.DependencyUnavailable(f"PayScope's API at {_api(run.spec).url} is not answering: {first.failure}")
    return replies


# ---- payscope.status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusEvidence:
    healthz: payscope_api.model.Health
    readyz: payscope_api.model.Health
    metrics: payscope_api.model.Metrics
    metrics_again: payscope_api.model.Metrics | None = None  # a second scrape, once the first was answered


async def _gather_status(run: session.PassSession) -> StatusEvidence:
    timeout = request_timeout(run.spec)
    replies = await _send(
        run, {p: payscope_api.client.Request("GET", p, timeout) for p in ("/healthz", "/readyz", "/metrics")}
    )
    metrics = payscope_api.model.parse_metrics(replies["/metrics"])
    again = None
    if metrics.reply.status == 200:
        again = payscope_api.model.parse_metrics(
            await payscope_api.client.send(await _client(run), payscope_api.client.Request("GET", "/metrics", timeout))
        )
    return StatusEvidence(
        payscope_api.model.parse_health(replies["/healthz"]),
        payscope_api.model.parse_health(replies["/readyz"]),
        metrics,
        again,
    )


STATUS = checks.Source[StatusEvidence](
    name="payscope.status",
    gather=_gather_status,
    configured=api_configured,
    absent="spec.api is not set: PayScope's HTTP API is not audited.",
    timeout=lambda s: 2 * request_timeout(s) + MARGIN_S,
)

# ---- payscope.admin -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminEvidence:
    agents: payscope_api.model.Document[payscope_api.model.Agents]
    pipeline: payscope_api.model.Document[payscope_api.model.Pipeline]
    runtime: payscope_api.model.Document[payscope_api.model.Runtime]


async def _gather_admin(run: session.PassSession) -> AdminEvidence:
    minter, timeout = tokens.from_session(run), request_timeout(run.spec)
    token = minter.mint(bank_id=tenants(run.spec)[0], roles=ADMIN_ROLES)
    replies = await _send(
        run, {p: payscope_api.client.Request("GET", p, timeout, token) for p in payscope_api.client.ADMIN_PATHS}
    )
    return AdminEvidence(
        payscope_api.model.read_document(replies["/admin/agents"], payscope_api.model.parse_agents),
        payscope_api.model.read_document(replies["/admin/pipeline"], payscope_api.model.parse_pipeline),
        payscope_api.model.read_document(replies["/admin/runtime"], payscope_api.model.parse_runtime),
    )


ADMIN = checks.Source[AdminEvidence](
    name="payscope.admin",
    gather=_gather_admin,
    configured=auth_configured,
    absent="spec.api.auth is not set: the audit cannot mint the admin token PayScope's admin endpoints need.",
    timeout=lambda s: request_timeout(s) + MARGIN_S,
)

# ---- payscope.chat --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatEvidence:
    bank: str
    intents: Mapping[str, payscope_api.model.Answer]
    repeat: payscope_api.model.Answer  # the WHAT_IF query, asked a second time
    repeat_forecast: payscope_api.model.Answer  # the FORECAST query, asked a second time
    classified: payscope_api.model.Answer  # CLASSIFIABLE's query, sent without intent
    unclassified: payscope_api.model.Answer
    invalid_body: payscope_api.model.Answer
    other_tenant: payscope_api.model.Answer | None  # the DESCRIBE query as the second probe tenant

    def answered(self) -> list[tuple[str, payscope_api.model.Answer]]:
        """The intent probes that were answered 200, in intent order."""
        return [(i, a) for i, a in self.intents.items() if a.reply.status == 200]


def _query(intent: str | None, query: str) -> bytes:
    return json.dumps({"query": query} if intent is None else {"query": query, "intent": intent}).encode()


async def _gather_chat(run: session.PassSession) -> ChatEvidence:
    minter, timeout = tokens.from_session(run), query_timeout(run.spec)
    bank, other = tenants(run.spec)
    token = minter.mint(bank_id=bank, roles=ANALYST_ROLES)

    def chat(body: bytes, as_bank: str = bank, bearer: str = token) -> payscope_api.client.Request:
        return payscope_api.client.Request("POST", payscope_api.client.CHAT_PATH, timeout, bearer, as_bank, body)

    requests = {intent: chat(_query(intent, PROBE_QUERIES[intent])) for intent in payscope_api.model.INTENTS}
    requests["repeat"] = chat(_query("WHAT_IF", PROBE_QUERIES["WHAT_IF"]))
    requests["repeat_forecast"] = chat(_query("FORECAST", PROBE_QUERIES["FORECAST"]))
    requests["classified"] = chat(_query(None, CLASSIFIABLE[1]))
    requests["unclassified"] = chat(_query(None, UNCLASSIFIABLE_QUERY))
    requests["invalid"] = chat(INVALID_BODY)
    if other is not None:
        other_token = minter.mint(bank_id=other, roles=ANALYST_ROLES)
        requests["other"] = chat(_query("DESCRIBE", PROBE_QUERIES["DESCRIBE"]), other, other_token)
    answers = {name: payscope_api.model.parse_answer(reply) for name, reply in (await _send(run, requests)).items()}
    return ChatEvidence(
        bank=bank,
        intents={intent: answers[intent] for intent in payscope_api.model.INTENTS},
        repeat=answers["repeat"],
        repeat_forecast=answers["repeat_forecast"],
        classified=answers["classified"],
        unclassified=answers["unclassified"],
        invalid_body=answers["invalid"],
        other_tenant=answers.get("other"),
    )


CHAT = checks.Source[ChatEvidence](
    name="payscope.chat",
    gather=_gather_chat,
    configured=auth_configured,
    absent="spec.api.auth is not set: the audit cannot mint the tokens POST /chat/query needs.",
    timeout=lambda s: query_timeout(s) + MARGIN_S,
    # Each gathering runs PayScope's agents (LLM calls): at most once per agentProbeInterval.
    reuse_for=lambda s: fields.parse_duration(s.audit.agent_probe_interval).total_seconds(),
)

# ---- payscope.access ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessEvidence:
    bank: str
    replies: Mapping[str, payscope_api.client.Reply]


async def _gather_access(run: session.PassSession) -> AccessEvidence:
    minter, chat_timeout, admin_timeout = tokens.from_session(run), query_timeout(run.spec), request_timeout(run.spec)
    bank, other = tenants(run.spec)
    b, r = bank, ANALYST_ROLES

    def chat(token: str | None, as_bank: str | None = bank) -> payscope_api.client.Request:
        return payscope_api.client.Request(
            "POST", payscope_api.client.CHAT_PATH, chat_timeout, token, as_bank, INVALID_BODY
        )

    requests = {
        BASELINE: chat(minter.mint(bank_id=b, roles=r)),
        MISSING: chat(None),
        MALFORMED: chat("not.a.jwt"),
        EXPIRED: chat(minter.expired(bank_id=b, roles=r)),
        WRONG_KEY: chat(minter.signed_by_another_key(bank_id=b, roles=r)),
        TAMPERED: chat(minter.tampered(bank_id=b, roles=r)),
        ALG_NONE: chat(minter.unsigned(bank_id=b, roles=r)),
        OTHER_ALG: chat(minter.other_algorithm(bank_id=b, roles=r)),
        AUDIENCE: chat(minter.for_audience(bank_id=b, roles=r)),
        ISSUER: chat(minter.for_issuer(bank_id=b, roles=r)),
        UNKNOWN_KID: chat(minter.with_unknown_key_id(bank_id=b, roles=r)),
        NO_ROLE: chat(minter.mint(bank_id=bank, roles=())),
        ROLES_AS_STRING: chat(minter.with_claim("roles", tokens.ROLE_ANALYST, bank_id=b, roles=r)),
        **{claim_key(c): chat(minter.without_claim(c, bank_id=b, roles=r)) for c in REQUIRED_CLAIMS},
    }
    if other is not None:
        requests[BANK_MISMATCH] = chat(minter.mint(bank_id=b, roles=r), as_bank=other)
        requests[BANK_MISSING] = chat(minter.mint(bank_id=b, roles=r), as_bank=None)
        requests[NO_BANK_CLAIM] = chat(minter.without_claim("bank_id", bank_id=b, roles=r))
    callers = {
        "admin": minter.mint(bank_id=bank, roles=ADMIN_ROLES),
        "analyst": minter.mint(bank_id=b, roles=r),
        "anonymous": None,
    }
    for caller, token in callers.items():
        for path in payscope_api.client.ADMIN_PATHS:
            requests[admin_key(caller, path)] = payscope_api.client.Request("GET", path, admin_timeout, token)
    return AccessEvidence(bank, await _send(run, requests))


ACCESS = checks.Source[AccessEvidence](
    name="payscope.access",
    gather=_gather_access,
    configured=auth_configured,
    absent="spec.api.auth is not set: the audit cannot mint the tokens its access probes forge.",
    timeout=lambda s: query_timeout(s) + MARGIN_S,
)
