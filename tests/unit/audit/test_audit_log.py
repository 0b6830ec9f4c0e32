"""The audit log's query and operation logging, table-tested: the operator's own requests and the new rows in.

A request is recorded when a row appended after the newest row seen before it
was sent carries its trace id under the right operation; a request that was not
answered leaves nothing to look for (Unknown), one that was answered but left no
row fails.
"""

from __future__ import annotations

import pytest

from payscope_operator.api import status
from payscope_operator.audit.checks import audit_log
from payscope_operator.audit.sources import trail
from payscope_operator.backends.payscope_api import client as api_client
from payscope_operator.backends.postgres import trail as pg_trail
from tests.unit.audit import evidence as ev

S = status.CheckStatus
CHECKS = {c.id: c for c in audit_log.CHECKS}
CHAT = api_client.Reply("POST /chat/query", 200, trace_header="t-chat")
ADMIN = api_client.Reply("GET /admin/agents", 200, trace_header="t-admin")
ROWS = (
    pg_trail.Row(42, "admin.read", "t-admin"),
    pg_trail.Row(41, "chat.query", "t-chat"),
    pg_trail.Row(40, "x", None),
)


def _trail(rows: tuple[pg_trail.Row, ...] = ROWS, **sent: api_client.Reply) -> trail.TrailEvidence:
    replies = {trail.CHAT_OPERATION: CHAT, trail.ADMIN_OPERATION: ADMIN}
    replies.update({trail.CHAT_OPERATION if k == "chat" else trail.ADMIN_OPERATION: v for k, v in sent.items()})
    return trail.TrailEvidence("public.audit_log", replies, rows, 39, 0.3)


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        ("G.audit_log.query_logging", _trail(), S.PASS, "recorded as a new chat.query row"),
        ("G.audit_log.operation_logging", _trail(), S.PASS, "recorded as a new admin.read row"),
        (
            "G.audit_log.query_logging",
            _trail(ROWS[:1]),
            S.FAIL,
            "left no row carrying its trace id in public.audit_log",
        ),
        ("G.audit_log.operation_logging", _trail(ROWS[1:]), S.FAIL, "left no row"),
        ("G.audit_log.operation_logging", _trail((pg_trail.Row(9, "chat.query", "t-admin"),)), S.FAIL, "'chat.query'"),
        ("G.audit_log.query_logging", _trail(chat=api_client.Reply("POST /chat/query", 500)), S.UNKNOWN, "500"),
        (
            "G.audit_log.query_logging",
            _trail(chat=api_client.Reply("POST /chat/query", None, failure="no answer within 30s")),
            S.UNKNOWN,
            "no answer within 30s",
        ),
        ("G.audit_log.query_logging", _trail((), chat=api_client.Reply("x", 200)), S.UNKNOWN, "without an X-Trace-Id"),
    ],
)
def test_evaluate(check_id: str, evidence: trail.TrailEvidence, expected: status.CheckStatus, fragment: str) -> None:
    finding = CHECKS[check_id].judge(evidence, ev.SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message
