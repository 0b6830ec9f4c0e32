"""Evidence from PayScope's HTTP API, shared by the C, D, E, F and G checks.

Why this module exists: several dimensions read the same answers (``/admin/pipeline``
feeds C and F, the chat probes feed D, E and G), and each answer must be fetched
once per pass. Four sources cover the API, each sending its requests
concurrently with the per-request timeouts of ``spec.api.timeouts``:

- ``payscope.status``: ``/healthz``, ``/readyz`` and ``/metrics`` (scraped twice,
  to see counters count), without a token;
- ``payscope.admin``: ``/admin/agents``, ``/admin/pipeline``, ``/admin/runtime`` as
  admin, each document a :class:`registry.Part` (:data:`AGENTS`, :data:`PIPELINE`,
  :data:`RUNTIME`) that is Unknown, saying why, when it could not be read;
- ``payscope.chat``: one query per intent, an unclassifiable and a plainly
  classifiable query without intent, an invalid body, and a query as a second
  probe tenant; then FORECAST and WHAT_IF once more, each only after its first
  answer came back; ``/metrics`` scraped before and after, to see the agent
  metrics count these queries;
- ``payscope.access``: every record of ``probes`` (the audit's valid token next to
  every forged or misdirected call), with ``/metrics`` scraped before and after to
  see the error metrics count the refusals.

A request without an answer spoils only the checks that read it (they turn
Unknown); when none of a source's requests is answered the whole source fails
with one message. Evidence keeps status codes and parsed bodies, never a token.

What it must not do: judge the evidence (``checks`` do), talk HTTP itself
(``backends.payscope`` does), or mint tokens by hand (``tokens`` does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from payscope_operator import errors
from payscope_operator.api import fields, spec, status
from payscope_operator.audit import context, probes, registry, tokens
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.payscope_api import model as api_model

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
T = TypeVar("T")


def auth_configured(desired: spec.PayScopeSpec) -> bool:
    return desired.api is not None and desired.api.auth is not None


def tenants(desired: spec.PayScopeSpec) -> tuple[str, str | None]:
    """The tenant probes act as, and a second one for isolation probes (None without probeTenants)."""
    declared = desired.audit.probe_tenants
    return (declared[0], declared[1]) if declared else (DEFAULT_PROBE_BANK, None)


def _api(desired: spec.PayScopeSpec) -> spec.Api:
    if desired.api is None:
        raise errors.SpecInvalid("spec.api is not set")
    return desired.api


def request_timeout(desired: spec.PayScopeSpec) -> float:
    return fields.parse_duration(_api(desired).timeouts.request).total_seconds()


def query_timeout(desired: spec.PayScopeSpec) -> float:
    return fields.parse_duration(_api(desired).timeouts.query).total_seconds()


def explain(reply: api_client.Reply) -> str:
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


def carried(reply: api_client.Reply) -> status.CheckReason | None:
    """The check reason a failed reply carries (EgressDenied, ResponseTooLarge), if any."""
    reason = reply.failure_reason
    return status.CheckReason(reason) if reason in {r.value for r in status.CheckReason} else None


def facts_of(document: api_model.Document[T]) -> T | registry.Finding:
    """A document's facts, or the Unknown finding saying why they could not be read."""
    if document.facts is None:
        return registry.Finding.unknown(explain(document.reply), reason=carried(document.reply))
    return document.facts


async def client_of(run: context.Session) -> api_client.Client:
    """The pass's client of PayScope's API (checked against the egress policy), shared by every source."""
    return await run.stores.payscope_api()


_client = client_of


async def send(run: context.Session, requests: Mapping[str, api_client.Request]) -> dict[str, api_client.Reply]:
    """Send ``requests`` concurrently; when none is answered at all, fail the source with one message."""
    return await _send(run, requests)


async def _send(run: context.Session, requests: Mapping[str, api_client.Request]) -> dict[str, api_client.Reply]:
    replies = await api_client.send_all(await _client(run), requests)
    if replies and all(r.status is None for r in replies.values()):
        first = next(iter(replies.values()))
        message = f"PayScope's API at {_api(run.spec).url} is not answering: {first.failure}"
        raise errors.DependencyUnavailable(message, reason=first.failure_reason)
    return replies


async def _scrape(run: context.Session) -> api_model.Metrics:
    """One ``GET /metrics``, parsed (its reply says why, when there is nothing to parse)."""
    request = api_client.Request("GET", "/metrics", request_timeout(run.spec))
    return api_model.parse_metrics(await api_client.send(await _client(run), request))


async def _scrape_first(run: context.Session) -> api_model.Metrics:
    """The scrape before a source's own requests, beside a ``GET /healthz``: when neither is answered the API
    is not answering and the source fails at once, so a frozen API costs the pass one request timeout, not
    one for the scrape and another for the requests; a ``/metrics`` that alone hangs spoils only the figures."""
    timeout = request_timeout(run.spec)
    both = {p: api_client.Request("GET", p, timeout) for p in ("/metrics", "/healthz")}
    return api_model.parse_metrics((await _send(run, both))["/metrics"])


@dataclass(frozen=True)
class Scrapes:
    """``/metrics`` just before and just after a source's own requests: what they made PayScope count."""

    before: api_model.Metrics
    after: api_model.Metrics


# ---- payscope.status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusEvidence:
    healthz: api_model.Health
    readyz: api_model.Health
    metrics: api_model.Metrics
    metrics_again: api_model.Metrics | None = None  # a second scrape, once the first was answered


async def _gather_status(run: context.Session) -> StatusEvidence:
    timeout = request_timeout(run.spec)
    replies = await _send(run, {p: api_client.Request("GET", p, timeout) for p in ("/healthz", "/readyz", "/metrics")})
    metrics = api_model.parse_metrics(replies["/metrics"])
    again = None
    if metrics.reply.status == 200:
        again = api_model.parse_metrics(
            await api_client.send(await _client(run), api_client.Request("GET", "/metrics", timeout))
        )
    return StatusEvidence(
        api_model.parse_health(replies["/healthz"]), api_model.parse_health(replies["/readyz"]), metrics, again
    )


STATUS = registry.Source[StatusEvidence](
    name="payscope.status",
    gather=_gather_status,
    configured=lambda s: s.api is not None,
    absent="spec.api is not set: PayScope's HTTP API is not audited.",
    timeout=lambda s: 2 * request_timeout(s) + MARGIN_S,
)

# ---- payscope.admin -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminEvidence:
    agents: api_model.Document[api_model.Agents]
    pipeline: api_model.Document[api_model.Pipeline]
    runtime: api_model.Document[api_model.Runtime]


async def _gather_admin(run: context.Session) -> AdminEvidence:
    minter, timeout = tokens.from_session(run), request_timeout(run.spec)
    token = minter.mint(bank_id=tenants(run.spec)[0], roles=tokens.ADMIN_ROLES)
    replies = await _send(run, {p: api_client.Request("GET", p, timeout, token) for p in api_client.ADMIN_PATHS})
    return AdminEvidence(
        api_model.read_document(replies["/admin/agents"], api_model.parse_agents),
        api_model.read_document(replies["/admin/pipeline"], api_model.parse_pipeline),
        api_model.read_document(replies["/admin/runtime"], api_model.parse_runtime),
    )


ADMIN = registry.Source[AdminEvidence](
    name="payscope.admin",
    gather=_gather_admin,
    configured=auth_configured,
    absent="spec.api.auth is not set: the audit cannot mint the admin token PayScope's admin endpoints need.",
    timeout=lambda s: request_timeout(s) + MARGIN_S,
)
AGENTS: registry.Part[api_model.Agents] = ADMIN.part(lambda e: facts_of(e.agents))
"""``GET /admin/agents``: PayScope's statement of its agents' settings."""
PIPELINE: registry.Part[api_model.Pipeline] = ADMIN.part(lambda e: facts_of(e.pipeline))
"""``GET /admin/pipeline``: PayScope's statement of its Celery settings and component health."""
RUNTIME: registry.Part[api_model.Runtime] = ADMIN.part(lambda e: facts_of(e.runtime))
"""``GET /admin/runtime``: PayScope's statement of its log settings."""

# ---- payscope.chat --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatEvidence:
    bank: str
    intents: Mapping[str, api_model.Answer]
    repeat: api_model.Answer  # the WHAT_IF query, asked a second time
    repeat_forecast: api_model.Answer  # the FORECAST query, asked a second time
    classified: api_model.Answer  # CLASSIFIABLE's query, sent without intent
    unclassified: api_model.Answer
    invalid_body: api_model.Answer
    other_tenant: api_model.Answer | None  # the DESCRIBE query as the second probe tenant
    metrics: Scrapes | None = None  # around the chat probes: the agent metrics must count them

    def answered(self) -> list[tuple[str, api_model.Answer]]:
        """The intent probes that were answered 200, in intent order."""
        return [(i, a) for i, a in self.intents.items() if a.reply.status == 200]


def _query(intent: str | None, query: str) -> bytes:
    return json.dumps({"query": query} if intent is None else {"query": query, "intent": intent}).encode()


async def _gather_chat(run: context.Session) -> ChatEvidence:
    minter, timeout = tokens.from_session(run), query_timeout(run.spec)
    bank, other = tenants(run.spec)
    token = minter.mint(bank_id=bank, roles=tokens.ANALYST_ROLES)

    def chat(body: bytes, as_bank: str = bank, bearer: str = token) -> api_client.Request:
        return api_client.Request("POST", api_client.CHAT_PATH, timeout, bearer, as_bank, body)

    requests = {intent: chat(_query(intent, PROBE_QUERIES[intent])) for intent in api_model.INTENTS}
    requests["classified"] = chat(_query(None, CLASSIFIABLE[1]))
    requests["unclassified"] = chat(_query(None, UNCLASSIFIABLE_QUERY))
    requests["invalid"] = chat(probes.INVALID_BODY)
    if other is not None:
        other_token = minter.mint(bank_id=other, roles=tokens.ANALYST_ROLES)
        requests["other"] = chat(_query("DESCRIBE", PROBE_QUERIES["DESCRIBE"]), other, other_token)
    before = await _scrape_first(run)
    replies = await _send(run, requests)
    # The second of each identical pair leaves only once the first was answered, under a request id of its
    # own: neither a cache nor the coalescing of concurrent identical requests can make the pair agree.
    # A first that got no answer at all is not repeated: there is no pair to compare, and a hung API would
    # cost the pass a second query timeout.
    repeats = {"repeat": "WHAT_IF", "repeat_forecast": "FORECAST"}
    again = {name: intent for name, intent in repeats.items() if replies[intent].status is not None}
    replies |= await api_client.send_all(
        await _client(run), {name: chat(_query(intent, PROBE_QUERIES[intent])) for name, intent in again.items()}
    )
    replies |= {name: replies[intent] for name, intent in repeats.items() if name not in again}
    after = await _scrape(run)
    answers = {name: api_model.parse_answer(reply) for name, reply in replies.items()}
    return ChatEvidence(
        bank=bank,
        intents={intent: answers[intent] for intent in api_model.INTENTS},
        repeat=answers["repeat"],
        repeat_forecast=answers["repeat_forecast"],
        classified=answers["classified"],
        unclassified=answers["unclassified"],
        invalid_body=answers["invalid"],
        other_tenant=answers.get("other"),
        metrics=Scrapes(before, after),
    )


CHAT = registry.Source[ChatEvidence](
    name="payscope.chat",
    gather=_gather_chat,
    configured=auth_configured,
    absent="spec.api.auth is not set: the audit cannot mint the tokens POST /chat/query needs.",
    timeout=lambda s: 2 * query_timeout(s) + 2 * request_timeout(s) + MARGIN_S,  # two rounds, two scrapes
    # Each gathering runs PayScope's agents (LLM calls): at most once per agentProbeInterval.
    reuse_for=lambda s: fields.parse_duration(s.audit.agent_probe_interval).total_seconds(),
)

# ---- payscope.access ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessEvidence:
    bank: str
    replies: Mapping[str, api_client.Reply]  # by probes.Probe.key
    metrics: Scrapes | None = None  # around the probes: the error metrics must count the refusals

    def reply(self, probe: probes.Probe) -> api_client.Reply:
        return self.replies[probe.key]


async def _gather_access(run: context.Session) -> AccessEvidence:
    minter, both = tokens.from_session(run), tenants(run.spec)
    timeouts = probes.Timeouts(chat=query_timeout(run.spec), admin=request_timeout(run.spec))
    before = await _scrape_first(run)
    replies = await _send(run, {p.key: p.request(minter, both, timeouts) for p in probes.to_send(both)})
    return AccessEvidence(both[0], replies, Scrapes(before, await _scrape(run)))


ACCESS = registry.Source[AccessEvidence](
    name="payscope.access",
    gather=_gather_access,
    configured=auth_configured,
    absent="spec.api.auth is not set: the audit cannot mint the tokens its access probes forge.",
    timeout=lambda s: query_timeout(s) + 2 * request_timeout(s) + MARGIN_S,
)
