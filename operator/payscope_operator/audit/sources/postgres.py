"""Evidence from Postgres (and TimescaleDB, on the same server): the catalogs and the cross-tenant probe.

Why this module exists: dimensions A, B, C and G judge what the Postgres catalogs
say about the declared tables, the app role, the migration table, TimescaleDB's
information views and the audit log. The tables' existence, row-level security and
owner, the app role and TimescaleDB's state are what the pass's provisioning observed
(``context.Observations``: one read per pass, shared); ``postgres.catalog`` adds over
one connection what no plan needs (policies, indexes, foreign keys, columns, migration
versions, the audit log), a fixed number of queries whatever the number of tables;
``postgres.isolation`` acts as the app role for one tenant on every declared RLS table
that exists, in one statement set inside a transaction that is always rolled back.
A Postgres whose observation failed in this pass is not tried again: both sources
report that error.

What it must not do: judge the evidence (``checks`` do), change data, or paste a
name into SQL (``backends.postgres.evidence`` builds every statement).
"""

from __future__ import annotations

from dataclasses import dataclass

from payscope_operator import errors
from payscope_operator.api import fields, postgres_spec, spec
from payscope_operator.audit import context, registry
from payscope_operator.backends.postgres import client as pg_client
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.backends.postgres import model as pg_model
from payscope_operator.backends.timescale import model as ts_model


@dataclass(frozen=True)
class PostgresEvidence:
    host: str
    catalog: pg_evidence.Catalog
    migrations: tuple[str, ...] | None
    timescale: ts_model.Observed | None
    audit_log: pg_evidence.AuditLogFacts


@dataclass(frozen=True)
class IsolationEvidence:
    probes: tuple[pg_evidence.IsolationFacts, ...]


def section(desired: spec.PayScopeSpec) -> postgres_spec.Postgres:
    assert desired.postgres is not None  # the sources are configured only when spec.postgres is set
    return desired.postgres


def tables(desired: spec.PayScopeSpec) -> tuple[postgres_spec.PostgresTable, ...]:
    return desired.postgres.tables if desired.postgres is not None else ()


def key(table: postgres_spec.PostgresTable) -> tuple[str, str]:
    return (table.schema_name, table.name)


def declares_rls(table: postgres_spec.PostgresTable) -> bool:
    return table.row_level_security is not None and table.row_level_security.enabled


def _timeout(desired: spec.PayScopeSpec) -> float:
    return 3 * fields.parse_duration(desired.audit.probe_timeout).total_seconds()


async def _gather_catalog(run: context.Session) -> PostgresEvidence:
    declared = section(run.spec)
    tenant_key = run.spec.tenancy.tenant_key if run.spec.tenancy else None
    observed, hyper = None, None
    if declared.tables:
        observed = await context.observed(run, pg_model.SYSTEM, pg_model.Observed)
    if any(t.hypertable is not None for t in declared.tables):
        hyper = await context.observed(run, ts_model.SYSTEM, ts_model.Observed)
    dsn = run.stores.postgres_dsn()
    async with run.stores.postgres(dsn) as conn:
        catalog = await pg_evidence.read_catalog(
            conn, [key(t) for t in declared.tables], observed, tenant_key=tenant_key, app_role=declared.app_role
        )
        migrations = None
        if declared.migrations is not None:
            m = declared.migrations
            migrations = await pg_evidence.read_migration_versions(conn, m.schema_name, m.table, m.column)
        log = declared.audit_log
        audit_log = await pg_evidence.read_audit_log(
            conn, log.schema_name, log.table, log.order_column, declared.app_role
        )
    return PostgresEvidence(pg_client.host(dsn), catalog, migrations, hyper, audit_log)


CATALOG = registry.Source[PostgresEvidence](
    name="postgres.catalog",
    gather=_gather_catalog,
    configured=lambda s: s.postgres is not None,
    absent="spec.postgres is absent.",
    timeout=_timeout,
)


def _isolation_configured(s: spec.PayScopeSpec) -> bool:
    return (
        s.postgres is not None
        and s.tenancy is not None
        and s.audit.probe_tenants is not None
        and any(map(declares_rls, tables(s)))
    )


async def _gather_isolation(run: context.Session) -> IsolationEvidence:
    declared = section(run.spec)
    tenancy, tenants = run.spec.tenancy, run.spec.audit.probe_tenants
    assert tenancy is not None
    assert tenants is not None
    observed = await context.observed(run, pg_model.SYSTEM, pg_model.Observed)  # which tables exist
    existing = {(t.ref.schema, t.ref.name) for t in observed.tables}
    probed = [key(t) for t in declared.tables if declares_rls(t) and key(t) in existing]
    if not probed:
        raise errors.DependencyUnavailable("none of the tables that declare rowLevelSecurity exists yet")
    dsn, role = run.stores.postgres_dsn(), declared.app_role
    if declared.app_connection is not None:
        ref = declared.app_connection.secret_ref
        dsn, role = run.stores.reveal(ref.name, ref.key), None  # connect as the app role itself
    async with run.stores.postgres(dsn) as conn:
        probes = await pg_evidence.probe_isolation(
            conn,
            tables=probed,
            tenant_key=tenancy.tenant_key,
            session_variable=tenancy.session_variable,
            app_role=role,
            tenants=(tenants[0], tenants[1]),
        )
    return IsolationEvidence(probes)


ISOLATION = registry.Source[IsolationEvidence](
    name="postgres.isolation",
    gather=_gather_isolation,
    configured=_isolation_configured,
    absent="Needs spec.postgres with an RLS table, spec.tenancy and spec.audit.probeTenants.",
    timeout=_timeout,
)
