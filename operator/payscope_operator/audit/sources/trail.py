"""Evidence that PayScope records what it does: the operator's own requests, looked up in the audit log.

Why this module exists: an audit log that holds rows proves only that something
was once written; that PayScope records every query and operation shows when a
request the operator itself sent appears as a new row. One gathering notes the
newest row of the audit-log table (``spec.postgres.auditLog``), sends one chat
query as the probe tenant and one admin read, and looks for their trace ids
(``X-Trace-Id``) among the rows appended since, for up to :data:`WAIT_S` seconds
(contract section 12.3). The chat query runs an agent, so this source repeats at
most once per ``spec.audit.agentProbeInterval``.

What it must not do: write to the audit log, keep a payload beyond its trace id,
hold a Postgres connection while it waits (the pass's connections are shared one
at a time), or judge anything.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from payscope_operator.api import fields, spec
from payscope_operator.audit import context, registry, tokens
from payscope_operator.audit.sources import payscope_api, postgres
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.postgres import model as pg_model
from payscope_operator.backends.postgres import trail

WAIT_S = 5.0
"""How long PayScope has to write its rows after answering (contract section 12.3)."""
FIRST_POLL_S = 0.1
"""The first pause between two looks; each next one doubles (at most seven looks within WAIT_S)."""
CHAT_OPERATION, ADMIN_OPERATION = "chat.query", "admin.read"
ADMIN_PATH = "/admin/agents"


@dataclass(frozen=True)
class TrailEvidence:
    """What was sent (by operation: the reply), and the rows found after the newest row seen before sending."""

    table: str
    sent: dict[str, api_client.Reply]  # by the operation it must be logged as
    rows: tuple[trail.Row, ...]
    before: int | None
    waited_s: float

    def logged(self, operation: str) -> trail.Row | None:
        """The row recording the request sent for ``operation``, by its trace id (None: not found)."""
        trace = self.sent[operation].trace_header
        return next((r for r in self.rows if trace is not None and r.trace_id == trace), None)


def configured(desired: spec.PayScopeSpec) -> bool:
    return payscope_api.auth_configured(desired) and desired.postgres is not None


async def _look(run: context.Session, after: int | None) -> tuple[trail.Row, ...]:
    log = postgres.section(run.spec).audit_log
    async with run.stores.postgres() as conn:
        return await trail.rows_after(conn, log.schema_name, log.table, log.order_column, after)


async def _gather(run: context.Session) -> TrailEvidence:
    log = postgres.section(run.spec).audit_log
    if postgres.tables(run.spec):  # a Postgres this pass could not observe is not tried again (nor waited for)
        await context.observed(run, pg_model.SYSTEM, pg_model.Observed)
    async with run.stores.postgres() as conn:
        before = await trail.newest_id(conn, log.schema_name, log.table, log.order_column)
    minter, bank = tokens.from_session(run), payscope_api.tenants(run.spec)[0]
    chat_token = minter.mint(bank_id=bank, roles=tokens.ANALYST_ROLES)
    body = json.dumps({"query": payscope_api.PROBE_QUERIES["DESCRIBE"], "intent": "DESCRIBE"}).encode()
    requests = {
        CHAT_OPERATION: api_client.Request(
            "POST", api_client.CHAT_PATH, payscope_api.query_timeout(run.spec), chat_token, bank, body
        ),
        ADMIN_OPERATION: api_client.Request(
            "GET",
            ADMIN_PATH,
            payscope_api.request_timeout(run.spec),
            minter.mint(bank_id=bank, roles=tokens.ADMIN_ROLES),
        ),
    }
    sent = await payscope_api.send(run, requests)
    wanted = {r.trace_header for r in sent.values() if r.status == 200 and r.trace_header}
    started, pause = time.monotonic(), FIRST_POLL_S
    rows = await _look(run, before)
    while wanted - {r.trace_id for r in rows} and time.monotonic() - started + pause < WAIT_S:
        await asyncio.sleep(pause)
        rows, pause = await _look(run, before), pause * 2
    return TrailEvidence(f"{log.schema_name}.{log.table}", sent, rows, before, time.monotonic() - started)


TRAIL = registry.Source[TrailEvidence](
    name="payscope.trail",
    gather=_gather,
    configured=configured,
    absent="spec.api.auth or spec.postgres is not set: the operator's own requests cannot be sent and looked up "
    "in the audit log.",
    timeout=lambda s: payscope_api.query_timeout(s) + WAIT_S + 2 * payscope_api.MARGIN_S,
    # The chat query runs one of PayScope's agents: at most once per agentProbeInterval.
    reuse_for=lambda s: fields.parse_duration(s.audit.agent_probe_interval).total_seconds(),
)
