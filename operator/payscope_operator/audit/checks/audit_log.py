"""Dimension G's audit log: a hash chain that verifies, out of the app role's reach, recording what happens.

Why this module exists: what happened in a multi-tenant installation must stay on
record and beyond rewriting. Evidence: the audit-log table's newest rows and the
app role's privileges in the Postgres catalogs (``postgres.catalog``), and the
operator's own chat query and admin read looked up by their trace ids among the
rows appended after them (``payscope.trail``): a log that merely holds rows
proves nothing about whether today's requests are recorded.

What it must not do: write to the audit log, put a payload into a finding (only
ids, operations and trace ids of the operator's own requests), or do I/O.
"""

from __future__ import annotations

from payscope_operator.api import spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.sources import payscope_api, postgres, trail

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
CHECKS = registry.Registry()


def _log_table(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> tuple[str, Finding | None]:
    """``schema.table on host``, and a Fail when the audit log table does not exist."""
    log = postgres.section(desired).audit_log
    where = f"{log.schema_name}.{log.table} on {evidence.host}"
    if not evidence.audit_log.exists:
        return where, Finding.failed(f"Audit log table {log.schema_name}.{log.table} does not exist.", where)
    return where, None


@CHECKS.check(
    "G.audit_log.hash_chain",
    fix="Find the first row whose prev_hash or hash does not verify; restore it from backup and investigate"
    " who wrote it.",
    source=postgres.AUDIT_LOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="The audit log's hash chain verifies.",
    passes_when="Each of the newest rows' prev_hash equals the previous row's hash and each hash matches its content"
    " (an empty log: Unknown).",
    covers=(
        "G/Audit Logging/Fallback hash log (if Fabric disabled)",
        "G/Audit Logging/Operation logging",
        "F/Logging/Audit logging",
    ),
)
def hash_chain(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    where, missing = _log_table(evidence, desired)
    if missing is not None:
        return missing
    facts = evidence.audit_log
    if facts.first_break:
        return Finding.failed(
            f"The audit log's hash chain is broken at {facts.first_break}: investigate tampering.", where
        )
    if not facts.rows_checked:
        return Finding.unknown("The audit log is empty: there is no chain to verify.", where)
    # No row count in the message: every recorded request adds a row, and status must not move with them.
    return Finding.passed("The hash chain verifies over its newest rows.", where)


def _recorded(evidence: trail.TrailEvidence, operation: str, what: str) -> Finding:
    """Pass when the request sent for ``operation`` appears as a new row of that operation, by its trace id."""
    reply = evidence.sent[operation]
    where = f"{reply.describe()}, looked up by its X-Trace-Id in {evidence.table}"  # no id: each pass sends anew
    if reply.status is None:
        return Finding.unknown(payscope_api.explain(reply))
    if reply.status != 200:
        return Finding.unknown(
            f"The operator's {what} was not served, so there is no row to look for: {payscope_api.explain(reply)}.",
            evidence=where,
        )
    if not reply.trace_header:
        return Finding.unknown(
            f"The operator's {what} was answered 200 without an X-Trace-Id header to look for.", evidence=where
        )
    row = evidence.logged(operation)
    if row is None:
        return Finding.failed(
            f"The operator's {what} left no row carrying its trace id in {evidence.table} within "
            f"{trail.WAIT_S:g}s: record every {operation} with its trace_id (contract section 12.3).",
            evidence=where,
        )
    if row.operation != operation:
        return Finding.failed(
            f"The operator's {what} was recorded as {row.operation!r}, not {operation!r}.", evidence=where
        )
    return Finding.passed(f"The operator's {what} was recorded as a new {operation} row.", evidence=where)


@CHECKS.check(
    "G.audit_log.query_logging",
    fix="Write an audit-log row (operation chat.query, payload with trace_id and intent) for every chat"
    " query, within 5 seconds.",
    source=trail.TRAIL,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="The operator's own chat query, looked up by its trace id among the audit-log rows appended after it.",
    passes_when=f"A new chat.query row carries the query's trace_id within {trail.WAIT_S:g}s.",
    covers=("G/Audit Logging/Query logging", "F/Logging/Query logging"),
)
def query_logging(evidence: trail.TrailEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _recorded(evidence, trail.CHAT_OPERATION, "chat query")


@CHECKS.check(
    "G.audit_log.operation_logging",
    fix="Write an audit-log row (operation admin.read, payload with path and trace_id) for every admin read"
    " and state change.",
    source=trail.TRAIL,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title=f"The operator's own admin read (GET {trail.ADMIN_PATH}), looked up by its trace id among the audit-log "
    "rows appended after it.",
    passes_when=f"A new admin.read row carries the read's trace_id within {trail.WAIT_S:g}s.",
    covers=("G/Audit Logging/Operation logging", "F/Logging/Audit logging"),
)
def operation_logging(evidence: trail.TrailEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _recorded(evidence, trail.ADMIN_OPERATION, "admin read")


@CHECKS.check(
    "G.audit_log.immutable",
    fix="REVOKE UPDATE, DELETE, TRUNCATE ON the audit log FROM the app role, and give its ownership to another role.",
    source=postgres.AUDIT_LOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="The app role cannot rewrite the audit log.",
    passes_when="The app role holds no UPDATE, DELETE or TRUNCATE on it and does not own it.",
    covers=("G/Audit Logging/Immutability guarantees",),
    applies=lambda s: s.postgres is not None and s.postgres.app_role is not None,
)
def immutable(evidence: postgres.PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    section = postgres.section(desired)
    log, facts = section.audit_log, evidence.audit_log
    where = f"{log.schema_name}.{log.table} privileges of {section.app_role}"
    if not facts.exists:
        return Finding.failed(f"Audit log table {log.schema_name}.{log.table} does not exist.", where)
    if facts.app_role_owns:
        return Finding.failed(f"{section.app_role} owns the audit log and could rewrite it.", where)
    if facts.app_role_writes:
        return Finding.failed(
            f"REVOKE {', '.join(facts.app_role_writes)} ON {log.table} FROM {section.app_role}.", where
        )
    return Finding.passed(f"{section.app_role} can neither update, delete nor truncate the audit log.", where)


NOT_OBSERVABLE: tuple[registry.NotObservable, ...] = (
    registry.NotObservable(
        "G/Audit Logging/Fabric integration (if enabled)",
        "Contract version 1 exposes no Fabric ledger to the operator; with Fabric enabled the same records go to"
        " a ledger only PayScope can reach. The Postgres hash log is audited by G.audit_log.*.",
    ),
)
