"""Dimension B, data layer, relational side: Postgres and TimescaleDB as declared.

Evidence: the Postgres catalogs, the migration table and TimescaleDB's
information views, read once per pass (``postgres.catalog``). The other stores of
dimension B (Neo4j, Pinecone, object storage) are judged in ``data_layer_stores``:
together the two modules hold more checks than one module should.

What it must not do: change any store, or do I/O in an evaluate function. The
stores' reachability is dimension A's; the ingestion key is C's; the app role's
isolation probe and the audit log are G's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from payscope_operator.api import fields, postgres_spec, spec, status
from payscope_operator.audit import registry
from payscope_operator.audit.checks import per_object
from payscope_operator.audit.sources import postgres
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.backends.timescale import model as ts_model

Severity = status.Severity
Grade = registry.Grade
Finding = registry.Finding
PostgresEvidence = postgres.PostgresEvidence
CHECKS = registry.Registry()

# Postgres ---------------------------------------------------------------------------------------


def forces_rls(t: postgres_spec.PostgresTable) -> bool:
    return postgres.declares_rls(t) and t.row_level_security is not None and t.row_level_security.force


def _any_table(test: Callable[[postgres_spec.PostgresTable], bool]) -> Callable[[spec.PayScopeSpec], bool]:
    return lambda s: any(test(t) for t in postgres.tables(s))


@CHECKS.check(
    "B.postgres.tables",
    fix="Run PayScope's migrations, or correct the table names (and schemas) in spec.postgres.tables.",
    source=postgres.CATALOG,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Every declared table exists.",
    passes_when="Each spec.postgres.tables entry exists.",
    applies=lambda s: bool(postgres.tables(s)),
)
def tables_exist(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return per_object.tables(evidence, desired, lambda t: True, lambda t, f: None, "the declared tables exist")


@CHECKS.check(
    "B.postgres.migrations",
    fix="Apply PayScope's migrations up to spec.postgres.migrations.expected (alembic upgrade head), or"
    " update the expected version.",
    source=postgres.CATALOG,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="The migration table records the expected version.",
    passes_when="Exactly one version is applied and it equals migrations.expected (when set).",
    covers=("B/Postgres/Migrations present and ordered",),
    applies=lambda s: s.postgres is not None and s.postgres.migrations is not None,
)
def migrations(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    m = postgres.section(desired).migrations
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


@CHECKS.check(
    "B.postgres.rls_enabled",
    fix="ALTER TABLE ... ENABLE ROW LEVEL SECURITY (the operator does it under managementPolicy Full).",
    source=postgres.CATALOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="ROW LEVEL SECURITY is enabled on every table that declares it.",
    passes_when="pg_class.relrowsecurity is true.",
    covers=("B/Postgres/RLS policies active", "E/Bank Isolation/DB RLS enforcement"),
    applies=_any_table(postgres.declares_rls),
)
def rls_enabled(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    def test(t: postgres_spec.PostgresTable, f: pg_evidence.TableFacts) -> str | None:
        return None if f.rls_enabled else "ROW LEVEL SECURITY is disabled"

    return per_object.tables(evidence, desired, postgres.declares_rls, test, "RLS enabled")


@CHECKS.check(
    "B.postgres.rls_forced",
    fix="ALTER TABLE ... FORCE ROW LEVEL SECURITY, so the table owner is bound by the policies too (Full"
    " management does it).",
    source=postgres.CATALOG,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="ROW LEVEL SECURITY is FORCEd where declared, so the owner is bound too.",
    passes_when="pg_class.relforcerowsecurity is true.",
    covers=("G/Bank Isolation/DB RLS enforcement",),
    applies=_any_table(forces_rls),
)
def rls_forced(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    def test(t: postgres_spec.PostgresTable, f: pg_evidence.TableFacts) -> str | None:
        return None if f.rls_forced else "RLS is not FORCEd (the owner bypasses it)"

    return per_object.tables(evidence, desired, forces_rls, test, "RLS forced")


@CHECKS.check(
    "B.postgres.policy_session_variable",
    fix="Create a policy USING and WITH CHECK (tenant_key = current_setting('<sessionVariable>')) and drop"
    " permissive policies such as USING (true).",
    source=postgres.CATALOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="A policy compares the tenant column with the session variable.",
    passes_when="USING and WITH CHECK both reference current_setting('<sessionVariable>') and the tenant key.",
    covers=("B/Postgres/Session variables set (app.current_bank_id)",),
    applies=_any_table(postgres.declares_rls),
)
def policy_session_variable(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    tenancy = desired.tenancy or spec.Tenancy()
    variable = f"current_setting('{tenancy.session_variable}'"
    column = re.compile(rf"\b{re.escape(tenancy.tenant_key)}\b")

    def compares(expr: str) -> bool:
        # The variable's own name (app.current_bank_id) may contain the key: look for the column elsewhere.
        return variable in expr and column.search(expr.replace(variable, "")) is not None

    def test(t: postgres_spec.PostgresTable, f: pg_evidence.TableFacts) -> str | None:
        if any(compares(using) and compares(check) for _, using, check in f.policies):
            return None
        return f"no policy compares {tenancy.tenant_key} with {tenancy.session_variable} in USING and WITH CHECK"

    return per_object.tables(evidence, desired, postgres.declares_rls, test, "tenant policies")


@CHECKS.check(
    "B.postgres.tenant_indexes",
    fix="Create an index leading with the tenant key (CREATE INDEX CONCURRENTLY ... (bank_id, ...)); Full"
    " management does it; drop INVALID leftovers.",
    source=postgres.CATALOG,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Tables declaring tenantIndex have a valid index leading with the tenant key.",
    passes_when="pg_index has a valid index whose first column is tenancy.tenantKey.",
    covers=("B/Postgres/Indexes present",),
    applies=_any_table(lambda t: t.tenant_index),
)
def tenant_indexes(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    key = desired.tenancy.tenant_key if desired.tenancy else "bank_id"

    def test(t: postgres_spec.PostgresTable, f: pg_evidence.TableFacts) -> str | None:
        return None if f.tenant_indexed else f"no valid index leads with {key}"

    return per_object.tables(evidence, desired, lambda t: t.tenant_index, test, "tenant indexes")


@CHECKS.check(
    "B.postgres.foreign_keys",
    fix="Add the foreign keys PayScope's schema defines, or drop expectForeignKeys from the table's spec.",
    source=postgres.CATALOG,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Tables declaring expectForeignKeys have foreign keys.",
    passes_when="At least one FOREIGN KEY constraint per such table.",
    covers=("B/Postgres/Foreign keys defined",),
    applies=_any_table(lambda t: t.expect_foreign_keys),
)
def foreign_keys(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    def test(t: postgres_spec.PostgresTable, f: pg_evidence.TableFacts) -> str | None:
        return None if f.foreign_keys else "no FOREIGN KEY constraint"

    return per_object.tables(evidence, desired, lambda t: t.expect_foreign_keys, test, "foreign keys")


@CHECKS.check(
    "B.postgres.app_role",
    fix="Use a dedicated app role: NOSUPERUSER NOBYPASSRLS, not the owner of the tenant tables (ALTER TABLE"
    " ... OWNER TO a migration role).",
    source=postgres.CATALOG,
    severity=Severity.CRITICAL,
    grade=Grade.OBSERVED,
    title="PayScope's app role is bound by RLS.",
    passes_when="The role exists, is not superuser, has no BYPASSRLS and owns no declared table.",
    covers=("G/Bank Isolation/No data leakage paths",),
    applies=lambda s: s.postgres is not None and s.postgres.app_role is not None,
)
def app_role(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    role = evidence.catalog.role
    assert role is not None
    where = f"pg_roles {role.name}"
    if not role.exists:
        return Finding.failed(f"App role {role.name} does not exist.", evidence=where)
    problems = [p for p, bad in (("is superuser", role.superuser), ("has BYPASSRLS", role.bypass_rls)) if bad]
    owned = [f"{f.schema}.{f.name}" for f in evidence.catalog.tables.values() if f.exists and f.owner == role.name]
    if owned:
        problems.append("owns " + ", ".join(owned))
    if problems:
        return Finding.failed(f"App role {role.name} " + "; ".join(problems) + ": RLS does not bind it.", where)
    return Finding.passed(f"App role {role.name} is bound by RLS (not superuser, no BYPASSRLS, owns no table).", where)


# TimescaleDB ------------------------------------------------------------------------------------


def _hyper(desired: spec.PayScopeSpec, aspect: str) -> list[postgres_spec.PostgresTable]:
    """The hypertables declaring ``aspect``: all of them, or those with a retention or compression."""
    return [
        t
        for t in postgres.tables(desired)
        if t.hypertable is not None and (aspect == "hypertable" or getattr(t.hypertable, aspect) is not None)
    ]


def _policy_problem(table: postgres_spec.PostgresTable, kind: str, job: Any, want: str) -> list[str]:
    seconds = fields.parse_duration(want).total_seconds()
    if job is None:
        return [f"{per_object.table_name(table)}: no {kind} policy (want {want})"]
    if job.seconds is None or abs(job.seconds - seconds) > 1:
        return [f"{per_object.table_name(table)}: {kind} policy interval differs from {want}"]
    return []


def _problems(table: postgres_spec.PostgresTable, got: ts_model.ObservedHypertable, aspect: str) -> list[str]:
    want, name = table.hypertable, per_object.table_name(table)
    assert want is not None
    problems: list[str] = []
    if aspect == "hypertable" and got.time_column != want.time_column:
        problems.append(f"{name}: partitioned by {got.time_column}, not {want.time_column}")
    if aspect == "retention" and want.retention is not None:
        problems += _policy_problem(table, "retention", got.retention, want.retention)
    if aspect == "compression" and want.compression is not None:
        if not got.compression_enabled:
            problems.append(f"{name}: compression is not enabled")
        elif tuple(want.compression.segment_by) != got.segment_by:
            problems.append(f"{name}: segmentby is {list(got.segment_by)}, not {list(want.compression.segment_by)}")
        problems += _policy_problem(table, "compression", got.compression, want.compression.after)
    return problems


def _timescale(evidence: PostgresEvidence, desired: spec.PayScopeSpec, aspect: str) -> Finding:
    observed = evidence.timescale
    assert observed is not None
    if observed.extension.installed is None:
        why = "available but not installed" if observed.extension.available else "not available on this server"
        return Finding.failed(f"The timescaledb extension is {why}.", evidence=f"postgres {evidence.host}")
    problems: list[str] = []
    selected = _hyper(desired, aspect)
    for table in selected:
        seen = observed.table(ts_model.table_ref(table))
        if seen is None or seen.hypertable is None:
            problems.append(f"{per_object.table_name(table)}: not a hypertable")
        else:
            problems += _problems(table, seen.hypertable, aspect)
    where = f"timescaledb_information on {evidence.host}"
    if problems:
        return Finding.failed("; ".join(problems[: per_object.MAX_SHOWN]), evidence=where)
    return Finding.passed(f"{aspect} as declared on {len(selected)} hypertable(s).", evidence=where)


@CHECKS.check(
    "B.timescale.hypertables",
    fix="Convert the table with create_hypertable on its time column (Full management does it; migrateData:"
    " true for a populated table).",
    source=postgres.CATALOG,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Declared hypertables exist, partitioned by their time column.",
    passes_when="timescaledb_information.hypertables/dimensions list each on timeColumn.",
    covers=("B/TimescaleDB/Hypertables created",),
    applies=lambda s: bool(_hyper(s, "hypertable")),
)
def hypertables(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _timescale(evidence, desired, "hypertable")


@CHECKS.check(
    "B.timescale.retention",
    fix="add_retention_policy with the declared interval (remove the old one first); Full management does it.",
    source=postgres.CATALOG,
    severity=Severity.HIGH,
    grade=Grade.OBSERVED,
    title="Declared retention policies exist with the declared interval.",
    passes_when="A policy_retention job with drop_after equal to retention.",
    covers=("B/TimescaleDB/Retention policies",),
    applies=lambda s: bool(_hyper(s, "retention")),
)
def retention(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _timescale(evidence, desired, "retention")


@CHECKS.check(
    "B.timescale.compression",
    fix="Enable compression with the declared segmentby and add_compression_policy with compress_after; Full"
    " management does it.",
    source=postgres.CATALOG,
    severity=Severity.MEDIUM,
    grade=Grade.OBSERVED,
    title="Declared compression settings and policies exist.",
    passes_when="Compression enabled with the declared segmentby, and a policy_compression job with compress_after.",
    covers=("B/TimescaleDB/Compression policies",),
    applies=lambda s: bool(_hyper(s, "compression")),
)
def compression(evidence: PostgresEvidence, desired: spec.PayScopeSpec) -> Finding:
    return _timescale(evidence, desired, "compression")
