"""Evidence from Postgres (and TimescaleDB, on the same server): the catalogs and the cross-tenant probe.

Why this module exists: dimensions A, B, C and G judge what the Postgres catalogs
say about the declared tables, the app role, the migration table, TimescaleDB's
information views and the audit log. The tables' existence, row-level security and
owner, the app role and TimescaleDB's state are what the pass's provisioning observed
(``context.Observations``: one read per pass, shared); ``postgres.catalog`` adds over
one connection what no plan needs (policies, indexes, foreign keys, columns, migration
versions, the audit log), a fixed number of queries whatever the number of tables;
``postgres.isolation`` acts as the app role for one tenant on every declared RLS table
that exists, in one statement set inside a transaction that is always rolled back: it
plants a row of the other tenant (unless ``spec.audit.writeProbes`` is false) and must
not see it, then must be refused writing one (``backends.postgres.isolation``). Every
statement against tenant data is bounded whatever the table's size: equality on the
tenant key with LIMIT 1, the audit log's newest rows by its ordering index.
A Postgres whose observation failed in this pass is not tried again: both sources
report that error.

A query of the catalog source that fails while the server answers turns only
the checks that read that piece Unknown (:data:`TABLES`, :data:`MIGRATIONS`,
:data:`TIMESCALE`, :data:`AUDIT_LOG`); only a server that does not answer fails
``A.dependencies.postgres``.

What it must not do: judge the evidence (``checks`` do), change data, or paste a
name into SQL (``backends.postgres.evidence`` builds every statement).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from payscope_operator import errors
from payscope_operator.api import fields, postgres_spec, spec
from payscope_operator.audit import context, registry
from payscope_operator.backends.postgres import client as pg_client
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.backends.postgres import isolation as pg_isolation
from payscope_operator.backends.postgres import model as pg_model
from payscope_operator.backends.timescale import model as ts_model

T = TypeVar("T")


@dataclass(frozen=True)
class PostgresEvidence:
    host: str
    catalog: pg_evidence.Catalog
    migrations: tuple[str, ...] | None
    timescale: ts_model.Observed | None
    audit_log: pg_evidence.AuditLogFacts
    unreadable: dict[str, str] = field(default_factory=dict)
    """Pieces (``catalog``, ``migrations``, ``timescale``, ``audit_log``) whose queries failed, and why; their
    fields then hold empty stand-ins that no check reads: each check selects its piece through a part below."""


@dataclass(frozen=True)
class IsolationEvidence:
    probes: tuple[pg_isolation.IsolationFacts, ...]


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


async def _piece(conn: Any, unreadable: dict[str, str], piece: str, read: Awaitable[T], empty: T) -> T:
    """One piece of the evidence; a query that fails is noted and the next piece is read. A lost
    connection is no failed query: it fails the whole source (the store is unreachable)."""
    got = await pg_evidence.read_or_note(conn, read)
    if isinstance(got, pg_evidence.Unreadable):
        unreadable[piece] = got.why
        return empty
    return got


async def _gather_catalog(run: context.Session) -> PostgresEvidence:
    declared = section(run.spec)
    tenant_key = run.spec.tenancy.tenant_key if run.spec.tenancy else None
    unreadable: dict[str, str] = {}
    observed, hyper = None, None
    if declared.tables:
        observed = await context.observed(run, pg_model.SYSTEM, pg_model.Observed)  # unreachable: the source fails
    if any(t.hypertable is not None for t in declared.tables):
        seen = context.observed(run, ts_model.SYSTEM, ts_model.Observed)
        hyper = await _piece(None, unreadable, "timescale", seen, None)
    dsn = run.stores.postgres_dsn()
    async with run.stores.postgres(dsn) as conn:
        tables = [key(t) for t in declared.tables]
        read = pg_evidence.read_catalog(conn, tables, observed, tenant_key=tenant_key, app_role=declared.app_role)
        catalog = await _piece(conn, unreadable, "catalog", read, pg_evidence.Catalog({}, None, 0))
        migrations = None
        if declared.migrations is not None:
            m = declared.migrations
            versions = pg_evidence.read_migration_versions(conn, m.schema_name, m.table, m.column)
            migrations = await _piece(conn, unreadable, "migrations", versions, None)
        log = declared.audit_log
        chain = pg_evidence.read_audit_log(conn, log.schema_name, log.table, log.order_column, declared.app_role)
        audit_log = await _piece(conn, unreadable, "audit_log", chain, pg_evidence.AuditLogFacts(exists=False))
    return PostgresEvidence(pg_client.host(dsn), catalog, migrations, hyper, audit_log, unreadable)


CATALOG = registry.Source[PostgresEvidence](
    name="postgres.catalog",
    gather=_gather_catalog,
    configured=lambda s: s.postgres is not None,
    absent="spec.postgres is absent.",
    timeout=_timeout,
)


_PIECES = {
    "catalog": "the catalogs of the declared tables could not be read",
    "migrations": "the migration table could not be read",
    "timescale": "TimescaleDB's information views could not be read",
    "audit_log": "the audit log could not be read",
}


def _needs(piece: str) -> registry.Part[PostgresEvidence]:
    def select(evidence: PostgresEvidence) -> PostgresEvidence | registry.Finding:
        why = evidence.unreadable.get(piece)
        if why is not None:
            return registry.Finding.unknown(f"Postgres at {evidence.host} answered, but {_PIECES[piece]}: {why}")
        return evidence

    return CATALOG.part(select)


TABLES = _needs("catalog")
"""The catalog evidence for checks of the declared tables and the app role; Unknown when those queries failed."""
MIGRATIONS = _needs("migrations")
TIMESCALE = _needs("timescale")
AUDIT_LOG = _needs("audit_log")


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
    probe = pg_isolation.Probe(
        tenant_key=tenancy.tenant_key,
        session_variable=tenancy.session_variable,
        app_role=role,
        tenants=(tenants[0], tenants[1]),
        write=run.spec.audit.write_probes,
    )
    async with run.stores.postgres(dsn) as conn:
        probes = await pg_isolation.probe_isolation(conn, probe, probed)
    return IsolationEvidence(probes)


ISOLATION = registry.Source[IsolationEvidence](
    name="postgres.isolation",
    gather=_gather_isolation,
    configured=_isolation_configured,
    absent="Needs spec.postgres with an RLS table, spec.tenancy and spec.audit.probeTenants.",
    timeout=_timeout,
)
