"""Checks on Postgres and TimescaleDB (B), the ingestion key (C), the audit log and RLS probe (G).

Two sources: ``postgres.catalog`` reads the catalogs, the migration table,
TimescaleDB's information views and the audit log's tail in one connection
with a fixed number of queries, whatever the number of tables; and
``postgres.isolation`` acts as the app role for one tenant inside a
transaction that is always rolled back. Evaluations are pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from payscope_operator.api import fields, postgres_spec, spec, status
from payscope_operator.backends import postgres, timescale
from payscope_operator.reconcile import checks, clients, session

Severity = status.Severity
Finding = checks.Finding
MAX_ISOLATION_WRITE_PROBES = 3


@dataclass(frozen=True)
class PostgresEvidence:
    host: str
    catalog: postgres.evidence.Catalog
    migrations: tuple[str, ...] | None
    timescale: timescale.model.Observed | None
    audit_log: postgres.evidence.AuditLogFacts


def _postgres(desired: spec.PayScopeSpec) -> postgres_spec.Postgres:
    assert desired.postgres is not None
    return desired.postgres


def _tables(desired: spec.PayScopeSpec) -> tuple[postgres_spec.PostgresTable, ...]:
    return desired.postgres.tables if desired.postgres is not None else ()


def _key(table: postgres_spec.PostgresTable) -> tuple[str, str]:
    return (table.schema_name, table.name)


def _name(table: postgres_spec.PostgresTable) -> str:
    return f"{table.schema_name}.{table.name}"


def _timeout(desired: spec.PayScopeSpec) -> float:
    return 3 * fields.parse_duration(desired.audit.probe_timeout).total_seconds()


async def _gather_catalog(run: session.PassSession) -> PostgresEvidence:
    section = _postgres(run.spec)
    tenant_key = run.spec.tenancy.tenant_key if run.spec.tenancy else None
    dsn = clients.postgres_dsn(run)
    async with clients.postgres(run, dsn) as conn:
        catalog = await postgres.evidence.read_catalog(
            conn, [_key(t) for t in section.tables], tenant_key=tenant_key, app_role=section.app_role
        )
        migrations = None
        if section.migrations is not None:
            m = section.migrations
            migrations = await postgres.evidence.read_migration_versions(conn, m.schema_name, m.table, m.column)
        hyper = None
        if any(t.hypertable is not None for t in section.tables):
            hyper = await timescale.provisioner.TimescaleProvisioner(conn, section).observe()
        log = section.audit_log
        audit_log = await postgres.evidence.read_audit_log(
            conn, log.schema_name, log.table, log.order_column, section.app_role
        )
    return PostgresEvidence(postgres.client.host(dsn), catalog, migrations, hyper, audit_log)


CATALOG = checks.Source[PostgresEvidence](
    name="postgres.catalog",
    gather=_gather_catalog,
    configured=lambda s: s.postgres is not None,
    absent="spec.postgres is absent.",
    timeout=_timeout,
)


def _each(
    desired: spec.PayScopeSpec,
    evidence: PostgresEvidence,
    wanted: Any,
    test: Any,
    what: str,
) -> Finding:
    """Pass when ``test(table, facts)`` holds (returns None) for every table ``wanted`` selects."""
    selected = [t for t in _tables(desired) if wanted(t)]
    problems: list[str] = []
    for table in selected:
        facts = evidence.catalog.tables.get(_key(table))
        if facts is None or not facts.exists:
            problems.append(f"{_name(table)}: table not found")
            continue
        problem = test(table, facts)
        if problem:
            problems.append(f"{_name(table)}: {problem}")
    where = f"postgres {evidence.host}: " + ", ".join(_name(t) for t in selected)
    if problems:
        return Finding.failed(f"Fix {what}: " + "; ".join(problems[:6]), evidence=where)
    return Finding.passed(f"{what} holds on {len(selected)} table(s).", evidence=where)


def _rls(t: postgres_spec.PostgresTable) -> bool:
    return t.row_level_security is not None and t.row_level_security.enabled


def _reachable(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return Finding.passed(f"Postgres at {evidence.host} answered.", evidence=f"postgres {evidence.host}")


def _tables_exist(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _each(desired, evidence, lambda t: True, lambda t, f: None, "the declared tables exist")


def _migrations(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    m = _postgres(desired).migrations
    assert m is not None
    where = f"{m.schema_name}.{m.table}.{m.column}"
    if evidence.migrations is None:
        return Finding.failed(f"Migration table {m.schema_name}.{m.table} does not exist: run the migrations.", where)
    if len(evidence.migrations) != 1:
        found = ", ".join(evidence.migrations) or "none"
        return Finding.failed(f"Expected exactly one applied version, found {found}.", where)
    applied = evidence.migrations[0]
    if m.expected is not None and applied != m.expected:
        return Finding.failed(f"Database is at migration {applied}, expected {m.expected}: run the migrations.", where)
    return Finding.passed(f"Database is at migration {applied}.", where)


def _rls_enabled(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _each(
        desired, evidence, _rls, lambda t, f: None if f.rls_enabled else "ROW LEVEL SECURITY is disabled", "RLS enabled"
    )


def _rls_forced(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    def wanted(t: postgres_spec.PostgresTable) -> bool:
        return _rls(t) and t.row_level_security is not None and t.row_level_security.force

    return _each(
        desired,
        evidence,
        wanted,
        lambda t, f: None if f.rls_forced else "RLS is not FORCEd (the owner bypasses it)",
        "RLS forced",
    )


def _policy_uses_session_variable(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    tenancy = desired.tenancy or spec.Tenancy()
    variable = f"current_setting('{tenancy.session_variable}'"
    column = re.compile(rf"\b{re.escape(tenancy.tenant_key)}\b")

    def compares(expr: str) -> bool:
        # The variable's own name (app.current_bank_id) may contain the key: look for the column elsewhere.
        return variable in expr and column.search(expr.replace(variable, "")) is not None

    def test(t: postgres_spec.PostgresTable, f: postgres.evidence.TableFacts) -> str | None:
        for _, using, check in f.policies:
            if compares(using) and compares(check):
                return None
        return f"no policy compares {tenancy.tenant_key} with {tenancy.session_variable} in USING and WITH CHECK"

    return _each(desired, evidence, _rls, test, "tenant policies")


def _tenant_indexes(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    key = desired.tenancy.tenant_key if desired.tenancy else "bank_id"
    return _each(
        desired,
        evidence,
        lambda t: t.tenant_index,
        lambda t, f: None if f.tenant_indexed else f"no valid index leads with {key}",
        "tenant indexes",
    )


def _foreign_keys(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _each(
        desired,
        evidence,
        lambda t: t.expect_foreign_keys,
        lambda t, f: None if f.foreign_keys else "no FOREIGN KEY constraint",
        "foreign keys",
    )


def _app_role(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    role = evidence.catalog.role
    assert role is not None
    if not role.exists:
        return Finding.failed(f"App role {role.name} does not exist.", evidence=f"pg_roles {role.name}")
    problems = [p for p, bad in (("is superuser", role.superuser), ("has BYPASSRLS", role.bypass_rls)) if bad]
    owned = [f"{f.schema}.{f.name}" for f in evidence.catalog.tables.values() if f.exists and f.owner == role.name]
    if owned:
        problems.append("owns " + ", ".join(owned))
    if problems:
        return Finding.failed(
            f"App role {role.name} " + "; ".join(problems) + ": RLS does not bind it.", f"pg_roles {role.name}"
        )
    return Finding.passed(
        f"App role {role.name} is bound by RLS (not superuser, no BYPASSRLS, owns no table).", f"pg_roles {role.name}"
    )


def _idempotency_key(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    def test(t: postgres_spec.PostgresTable, f: postgres.evidence.TableFacts) -> str | None:
        want = tuple(sorted(t.idempotency_key))
        return (
            None
            if want in f.unique_keys
            else f"no UNIQUE constraint or index on exactly ({', '.join(t.idempotency_key)})"
        )

    return _each(desired, evidence, lambda t: bool(t.idempotency_key), test, "idempotency keys")


def _hyper(desired: spec.PayScopeSpec, aspect: str = "hypertable") -> list[postgres_spec.PostgresTable]:
    """The hypertables declaring ``aspect``: all of them, or those with a retention or compression."""
    return [
        t
        for t in _tables(desired)
        if t.hypertable is not None and (aspect == "hypertable" or getattr(t.hypertable, aspect) is not None)
    ]


def _timescale(evidence: PostgresEvidence, desired: spec.PayScopeSpec, aspect: str) -> Finding:
    observed = evidence.timescale
    assert observed is not None
    if observed.extension.installed is None:
        why = "available but not installed" if observed.extension.available else "not available on this server"
        return Finding.failed(f"The timescaledb extension is {why}.", evidence=f"postgres {evidence.host}")
    problems = []
    selected = _hyper(desired, aspect)
    for table in selected:
        want = table.hypertable
        assert want is not None
        seen = observed.table(timescale.model.table_ref(table))
        got = seen.hypertable if seen is not None else None
        if got is None:
            problems.append(f"{_name(table)}: not a hypertable")
            continue
        if aspect == "hypertable" and got.time_column != want.time_column:
            problems.append(f"{_name(table)}: partitioned by {got.time_column}, not {want.time_column}")
        if aspect == "retention" and want.retention is not None:
            problems += _policy_problem(table, "retention", got.retention, want.retention)
        if aspect == "compression" and want.compression is not None:
            if not got.compression_enabled:
                problems.append(f"{_name(table)}: compression is not enabled")
            elif tuple(want.compression.segment_by) != got.segment_by:
                problems.append(
                    f"{_name(table)}: segmentby is {list(got.segment_by)}, not {list(want.compression.segment_by)}"
                )
            problems += _policy_problem(table, "compression", got.compression, want.compression.after)
    where = f"timescaledb_information on {evidence.host}"
    if problems:
        return Finding.failed("; ".join(problems[:6]), evidence=where)
    return Finding.passed(f"{aspect} as declared on {len(selected)} hypertable(s).", evidence=where)


def _policy_problem(table: postgres_spec.PostgresTable, kind: str, job: Any, want: str) -> list[str]:
    seconds = fields.parse_duration(want).total_seconds()
    if job is None:
        return [f"{_name(table)}: no {kind} policy (want {want})"]
    if job.seconds is None or abs(job.seconds - seconds) > 1:
        return [f"{_name(table)}: {kind} policy interval differs from {want}"]
    return []


def _hash_chain(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    log = _postgres(desired).audit_log
    where = f"{log.schema_name}.{log.table} on {evidence.host}"
    facts = evidence.audit_log
    if not facts.exists:
        return Finding.failed(f"Audit log table {log.schema_name}.{log.table} does not exist.", where)
    if facts.first_break:
        return Finding.failed(
            f"The audit log's hash chain is broken at {facts.first_break}: investigate tampering.", where
        )
    return Finding.passed(f"The hash chain verifies over the newest {facts.rows_checked} row(s).", where)


def _immutable(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    section = _postgres(desired)
    log = section.audit_log
    facts = evidence.audit_log
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


def _query_logging(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    log = _postgres(desired).audit_log
    where = f"{log.schema_name}.{log.table} on {evidence.host}"
    facts = evidence.audit_log
    if not facts.exists:
        return Finding.failed(f"Audit log table {log.schema_name}.{log.table} does not exist.", where)
    counts = dict(facts.operations)
    if not counts.get("chat.query"):
        return Finding.failed("The audit log records no chat.query operation: queries are not logged.", where)
    if not facts.traced_queries:
        return Finding.failed("chat.query rows carry no trace_id and intent: queries cannot be traced.", where)
    shown = ", ".join(f"{op}: {n}" for op, n in sorted(counts.items()))
    return Finding.passed(f"Queries are logged with trace ids ({shown} in the verified rows).", where)


def _has_app_role(s: spec.PayScopeSpec) -> bool:
    return s.postgres is not None and s.postgres.app_role is not None


def _check(
    check_id: str, title: str, passes: str, severity: Severity, evaluate: Any, covers: tuple[str, ...], **kw: Any
) -> checks.Check[Any]:
    return checks.Check(check_id, title, passes, severity, CATALOG, evaluate, covers, **kw)


CHECKS: tuple[checks.Check[Any], ...] = (
    _check(
        "A.dependencies.postgres",
        "Postgres answers within its timeout.",
        "A connection and the catalog queries succeed.",
        Severity.CRITICAL,
        _reachable,
        ("A/Startup & Dependencies/Dependency readiness checks", "F/Health Checks/Dependency checks"),
        fails_when_unreachable=True,
    ),
    _check(
        "B.postgres.tables",
        "Every declared table exists.",
        "Each spec.postgres.tables entry exists.",
        Severity.HIGH,
        _tables_exist,
        (),
        applies=lambda s: bool(_tables(s)),
    ),
    _check(
        "B.postgres.migrations",
        "The migration table records the expected version.",
        "Exactly one version is applied and it equals migrations.expected (when set).",
        Severity.HIGH,
        _migrations,
        ("B/Postgres/Migrations present and ordered",),
        applies=lambda s: s.postgres is not None and s.postgres.migrations is not None,
    ),
    _check(
        "B.postgres.rls_enabled",
        "ROW LEVEL SECURITY is enabled on every table that declares it.",
        "pg_class.relrowsecurity is true.",
        Severity.CRITICAL,
        _rls_enabled,
        ("B/Postgres/RLS policies active", "E/Bank Isolation/DB RLS enforcement"),
        applies=lambda s: any(map(_rls, _tables(s))),
    ),
    _check(
        "B.postgres.rls_forced",
        "ROW LEVEL SECURITY is FORCEd where declared, so the owner is bound too.",
        "pg_class.relforcerowsecurity is true.",
        Severity.HIGH,
        _rls_forced,
        ("G/Bank Isolation/DB RLS enforcement",),
        applies=lambda s: any(
            _rls(t) and t.row_level_security is not None and t.row_level_security.force for t in _tables(s)
        ),
    ),
    _check(
        "B.postgres.policy_session_variable",
        "A policy compares the tenant column with the session variable.",
        "USING and WITH CHECK both reference current_setting('<sessionVariable>') and the tenant key.",
        Severity.CRITICAL,
        _policy_uses_session_variable,
        ("B/Postgres/Session variables set (app.current_bank_id)",),
        applies=lambda s: any(map(_rls, _tables(s))),
    ),
    _check(
        "B.postgres.tenant_indexes",
        "Tables declaring tenantIndex have a valid index leading with the tenant key.",
        "pg_index has a valid index whose first column is tenancy.tenantKey.",
        Severity.MEDIUM,
        _tenant_indexes,
        ("B/Postgres/Indexes present",),
        applies=lambda s: any(t.tenant_index for t in _tables(s)),
    ),
    _check(
        "B.postgres.foreign_keys",
        "Tables declaring expectForeignKeys have foreign keys.",
        "At least one FOREIGN KEY constraint per such table.",
        Severity.MEDIUM,
        _foreign_keys,
        ("B/Postgres/Foreign keys defined",),
        applies=lambda s: any(t.expect_foreign_keys for t in _tables(s)),
    ),
    _check(
        "B.postgres.app_role",
        "PayScope's app role is bound by RLS.",
        "The role exists, is not superuser, has no BYPASSRLS and owns no declared table.",
        Severity.CRITICAL,
        _app_role,
        ("G/Bank Isolation/No data leakage paths",),
        applies=_has_app_role,
    ),
    _check(
        "B.timescale.hypertables",
        "Declared hypertables exist, partitioned by their time column.",
        "timescaledb_information.hypertables/dimensions list each on timeColumn.",
        Severity.HIGH,
        lambda e, s: _timescale(e, s, "hypertable"),
        ("B/TimescaleDB/Hypertables created",),
        applies=lambda s: bool(_hyper(s)),
    ),
    _check(
        "B.timescale.retention",
        "Declared retention policies exist with the declared interval.",
        "A policy_retention job with drop_after equal to retention.",
        Severity.HIGH,
        lambda e, s: _timescale(e, s, "retention"),
        ("B/TimescaleDB/Retention policies",),
        applies=lambda s: any(t.hypertable is not None and t.hypertable.retention for t in _tables(s)),
    ),
    _check(
        "B.timescale.compression",
        "Declared compression settings and policies exist.",
        "Compression enabled with the declared segmentby, and a policy_compression job with compress_after.",
        Severity.MEDIUM,
        lambda e, s: _timescale(e, s, "compression"),
        ("B/TimescaleDB/Compression policies",),
        applies=lambda s: any(t.hypertable is not None and t.hypertable.compression for t in _tables(s)),
    ),
    _check(
        "C.ingestion.idempotency_key",
        "Ingestion tables carry a unique idempotency key.",
        "A valid UNIQUE index or constraint covers exactly the idempotencyKey columns.",
        Severity.HIGH,
        _idempotency_key,
        ("C/Ingestion/Idempotency guarantees", "C/Ingestion/Checksums or unique keys"),
        applies=lambda s: any(t.idempotency_key for t in _tables(s)),
    ),
    _check(
        "G.audit_log.hash_chain",
        "The audit log's hash chain verifies.",
        "Each of the newest rows' prev_hash equals the previous row's hash and each hash matches its content.",
        Severity.CRITICAL,
        _hash_chain,
        (
            "G/Audit Logging/Fallback hash log (if Fabric disabled)",
            "G/Audit Logging/Operation logging",
            "F/Logging/Audit logging",
        ),
    ),
    _check(
        "G.audit_log.query_logging",
        "The audit log records chat queries with their trace id and intent.",
        "The verified rows include chat.query operations whose payload carries trace_id and intent.",
        Severity.MEDIUM,
        _query_logging,
        ("G/Audit Logging/Query logging", "F/Logging/Query logging"),
    ),
    _check(
        "G.audit_log.immutable",
        "The app role cannot rewrite the audit log.",
        "The app role holds no UPDATE, DELETE or TRUNCATE on it and does not own it.",
        Severity.CRITICAL,
        _immutable,
        ("G/Audit Logging/Immutability guarantees",),
        applies=_has_app_role,
    ),
)


# Cross-tenant probe ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IsolationEvidence:
    probes: tuple[postgres.evidence.IsolationFacts, ...]


def _isolation_configured(s: spec.PayScopeSpec) -> bool:
    return (
        s.postgres is not None
        and s.tenancy is not None
        and s.audit.probe_tenants is not None
        and any(map(_rls, _tables(s)))
    )


async def _gather_isolation(run: session.PassSession) -> IsolationEvidence:
    section = _postgres(run.spec)
    tenancy = run.spec.tenancy
    tenants = run.spec.audit.probe_tenants
    assert tenancy is not None
    assert tenants is not None
    dsn = clients.postgres_dsn(run)
    role = section.app_role
    if section.app_connection is not None:
        ref = section.app_connection.secret_ref
        dsn, role = clients.reveal(run, ref.name, ref.key), None  # connect as the app role itself
    probes = []
    async with clients.postgres(run, dsn) as conn:
        for table in [t for t in section.tables if _rls(t)][:MAX_ISOLATION_WRITE_PROBES]:
            probes.append(
                await postgres.evidence.probe_isolation(
                    conn,
                    schema=table.schema_name,
                    table=table.name,
                    tenant_key=tenancy.tenant_key,
                    session_variable=tenancy.session_variable,
                    app_role=role,
                    tenants=(tenants[0], tenants[1]),
                )
            )
    return IsolationEvidence(tuple(probes))


ISOLATION = checks.Source[IsolationEvidence](
    name="postgres.isolation",
    gather=_gather_isolation,
    configured=_isolation_configured,
    absent="Needs spec.postgres with an RLS table, spec.tenancy and spec.audit.probeTenants.",
    timeout=_timeout,
)


def _cross_tenant(evidence: IsolationEvidence, desired: spec.PayScopeSpec) -> Finding:
    problems = []
    for p in evidence.probes:
        own, other = p.tenants
        if p.visible_foreign_rows:
            problems.append(
                f"{p.table}: as {p.role} for {own}, {p.visible_foreign_rows} other tenants' row(s) are visible"
            )
        if not p.foreign_write.startswith("refused"):
            problems.append(f"{p.table}: as {p.role} for {own}, a row for {other} was {p.foreign_write}")
    where = "; ".join(f"{p.table} as {p.role}" for p in evidence.probes) + " (rolled back)"
    if problems:
        return Finding.failed("Tenant isolation is broken: " + "; ".join(problems[:4]), evidence=where)
    return Finding.passed(
        f"As the app role, {len(evidence.probes)} table(s) hide other tenants' rows and refuse writes for them.",
        evidence=where,
    )


ISOLATION_CHECKS: tuple[checks.Check[Any], ...] = (
    checks.Check(
        "G.isolation.rls_probe",
        "As the app role with the session variable set to one tenant, no other tenant's row is visible or writable.",
        "Zero foreign rows visible and an insert for another tenant refused, inside a rolled-back transaction.",
        Severity.CRITICAL,
        ISOLATION,
        _cross_tenant,
        ("G/Bank Isolation/DB RLS enforcement", "G/Bank Isolation/JWT bank_id validation"),
    ),
)


NOT_OBSERVABLE: tuple[checks.NotObservable, ...] = (
    checks.NotObservable(
        "G/Audit Logging/Fabric integration (if enabled)",
        "Contract version 1 exposes no Fabric ledger to the operator; with Fabric enabled the same records go to"
        " a ledger only PayScope can reach. The Postgres hash log is audited by G.audit_log.*.",
    ),
)
