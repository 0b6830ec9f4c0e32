"""Dimension B's Postgres and TimescaleDB checks, C's idempotency key and G's audit log and RLS probe, table-tested.

Catalog facts, migration versions, TimescaleDB observations, audit-log facts and
isolation probes in, findings out; no server. The evidence is healthy by default
and each case breaks one thing, asserting the status and the words an on-call
engineer acts on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.audit.sources import postgres
from payscope_operator.backends.postgres import evidence as pg_evidence
from payscope_operator.backends.postgres import isolation as pg_isolation
from payscope_operator.backends.timescale import model as ts_model

S = status.CheckStatus
CHECKS = {c.id: c for c in catalog.CATALOG if c.source in (postgres.CATALOG, postgres.ISOLATION)}
HOST = "db.payscope:5432"
ROLE = "payscope_app"
POSTGRES: dict[str, Any] = {
    "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
    "appRole": ROLE,
    "migrations": {"table": "alembic_version", "column": "version_num", "expected": "0042"},
    "tables": [
        {
            "name": "transactions",
            "rowLevelSecurity": {"enabled": True, "force": True},
            "tenantIndex": True,
            "idempotencyKey": ["file_sha256", "bank_id"],
            "expectForeignKeys": True,
            "hypertable": {
                "timeColumn": "created_at",
                "chunkInterval": "7d",
                "retention": "400d",
                "compression": {"after": "30d", "segmentBy": ["bank_id"]},
            },
        }
    ],
}
SPEC = spec.PayScopeSpec.model_validate(
    {"tenancy": {}, "postgres": POSTGRES, "audit": {"probeTenants": ["bank-a", "bank-b"]}}
)
assert SPEC.postgres is not None
TABLE = SPEC.postgres.tables[0]
KEY = (TABLE.schema_name, TABLE.name)
POLICY = "(bank_id = current_setting('app.current_bank_id'::text))"
TABLE_FACTS = pg_evidence.TableFacts(
    schema="public",
    name="transactions",
    exists=True,
    rls_enabled=True,
    rls_forced=True,
    owner="payscope_owner",
    policies=(pg_evidence.PolicyFacts("payscope_tenant_isolation", using=POLICY, with_check=POLICY),),
    tenant_indexed=True,
    foreign_keys=1,
    unique_keys=(("bank_id", "file_sha256"), ("id",)),
    columns=("id", "bank_id", "file_sha256", "created_at"),
)
DAY = 86400.0
HYPERTABLE = ts_model.ObservedHypertable(
    time_column="created_at",
    chunk_seconds=7 * DAY,
    compression_enabled=True,
    segment_by=("bank_id",),
    order_by=(),
    retention=ts_model.ObservedJob(1000, 400 * DAY),
    compression=ts_model.ObservedJob(1001, 30 * DAY),
)
OBSERVED_TABLE = ts_model.ObservedTable(
    ref=ts_model.table_ref(TABLE),
    manageable=True,
    row_security=True,
    time_type="timestamp with time zone",
    time_present=True,
    blocking=(),
    hypertable=HYPERTABLE,
)
TIMESCALE = ts_model.Observed(ts_model.ExtensionState(True, "2.23.0"), (OBSERVED_TABLE,))
AUDIT_LOG = pg_evidence.AuditLogFacts(
    exists=True, rows_checked=120, operations=(("chat.query", 40), ("ingest.file", 80)), traced_queries=40
)
HEALTHY = postgres.PostgresEvidence(
    host=HOST,
    catalog=pg_evidence.Catalog({KEY: TABLE_FACTS}, pg_evidence.RoleFacts(ROLE, True), queries=6),
    migrations=("0042",),
    timescale=TIMESCALE,
    audit_log=AUDIT_LOG,
)


def pg(**changes: Any) -> postgres.PostgresEvidence:
    """HEALTHY with whole fields replaced (migrations, timescale, audit_log...)."""
    return dataclasses.replace(HEALTHY, **changes)


def table(**changes: Any) -> postgres.PostgresEvidence:
    """HEALTHY with the facts of public.transactions changed."""
    return pg_catalog({KEY: dataclasses.replace(TABLE_FACTS, **changes)})


def pg_catalog(
    tables: dict[tuple[str, str], pg_evidence.TableFacts] | None = None,
    role: pg_evidence.RoleFacts | None = None,
) -> postgres.PostgresEvidence:
    found = pg_evidence.Catalog(
        HEALTHY.catalog.tables if tables is None else tables, role or HEALTHY.catalog.role, queries=6
    )
    return pg(catalog=found)


def hypertable(**changes: Any) -> postgres.PostgresEvidence:
    """HEALTHY with the observed hypertable of public.transactions changed."""
    seen = dataclasses.replace(OBSERVED_TABLE, hypertable=dataclasses.replace(HYPERTABLE, **changes))
    return pg(timescale=ts_model.Observed(TIMESCALE.extension, (seen,)))


def log(**changes: Any) -> postgres.PostgresEvidence:
    return pg(audit_log=dataclasses.replace(AUDIT_LOG, **changes))


def policy(expression: str, **changes: Any) -> pg_evidence.PolicyFacts:
    """A FOR ALL policy using ``expression`` in both USING and WITH CHECK, as pg_get_expr deparses it."""
    return pg_evidence.PolicyFacts("payscope_tenant_isolation", using=expression, with_check=expression, **changes)


TENANT = policy(POLICY)
OPEN = "true"


REFUSED = 'refused: new row violates row-level security policy for table "transactions"'


def probe(visible: int = 0, write: str = REFUSED, **facts: str) -> postgres.IsolationEvidence:
    tenants = ("bank-a", "bank-b")
    found = pg_isolation.IsolationFacts("public.transactions", visible, write, ROLE, tenants, **facts)
    return postgres.IsolationEvidence((found,))


NOTHING_TO_HIDE = "bank-b has no row here to hide, and writeProbes is false"


NO_EXTENSION = pg(timescale=ts_model.Observed(ts_model.ExtensionState(False, None), (OBSERVED_TABLE,)))
NOT_INSTALLED = pg(timescale=ts_model.Observed(ts_model.ExtensionState(True, None), (OBSERVED_TABLE,)))
TABLE_NOT_OBSERVED = pg(timescale=ts_model.Observed(TIMESCALE.extension, ()))
PLAIN_TABLE = pg(
    timescale=ts_model.Observed(TIMESCALE.extension, (dataclasses.replace(OBSERVED_TABLE, hypertable=None),))
)
TABLE_MISSING = table(exists=False)
TABLE_UNREAD = pg_catalog({})


@pytest.mark.parametrize(
    ("check_id", "evidence", "expected", "fragment"),
    [
        pytest.param("A.dependencies.postgres", HEALTHY, S.PASS, f"Postgres at {HOST} answered", id="reachable"),
        pytest.param("B.postgres.tables", HEALTHY, S.PASS, "on 1 table(s)", id="tables-ok"),
        pytest.param(
            "B.postgres.tables", TABLE_MISSING, S.FAIL, "public.transactions: table not found", id="tables-missing"
        ),
        pytest.param(
            "B.postgres.tables", TABLE_UNREAD, S.FAIL, "public.transactions: table not found", id="tables-unread"
        ),
        pytest.param("B.postgres.migrations", HEALTHY, S.PASS, "at migration 0042", id="migrations-ok"),
        pytest.param(
            "B.postgres.migrations",
            pg(migrations=None),
            S.FAIL,
            "public.alembic_version does not exist: run the migrations",
            id="migrations-table-missing",
        ),
        pytest.param("B.postgres.migrations", pg(migrations=()), S.FAIL, "found none", id="migrations-none-applied"),
        pytest.param(
            "B.postgres.migrations",
            pg(migrations=("0041", "0042")),
            S.FAIL,
            "Expected exactly one applied version, found 0041, 0042",
            id="migrations-several-versions",
        ),
        pytest.param(
            "B.postgres.migrations",
            pg(migrations=("0041",)),
            S.FAIL,
            "at migration 0041, expected 0042",
            id="migrations-wrong-version",
        ),
        pytest.param("B.postgres.rls_enabled", HEALTHY, S.PASS, "RLS enabled holds on 1", id="rls-enabled-ok"),
        pytest.param(
            "B.postgres.rls_enabled",
            table(rls_enabled=False),
            S.FAIL,
            "public.transactions: ROW LEVEL SECURITY is disabled",
            id="rls-disabled",
        ),
        pytest.param(
            "B.postgres.rls_enabled", TABLE_MISSING, S.FAIL, "table not found", id="rls-enabled-table-missing"
        ),
        pytest.param("B.postgres.rls_forced", HEALTHY, S.PASS, "RLS forced holds on 1", id="rls-forced-ok"),
        pytest.param(
            "B.postgres.rls_forced",
            table(rls_forced=False),
            S.FAIL,
            "RLS is not FORCEd (the owner bypasses it)",
            id="rls-not-forced",
        ),
        pytest.param("B.postgres.rls_forced", TABLE_MISSING, S.FAIL, "table not found", id="rls-forced-table-missing"),
        pytest.param("B.postgres.policy_session_variable", HEALTHY, S.PASS, "tenant policies", id="policy-ok"),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(policy("((bank_id)::text = current_setting('app.current_bank_id'::text, true))"),)),
            S.PASS,
            "tenant policies",
            id="policy-varchar-cast-ok",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(
                policies=(
                    policy("(bank_id = (NULLIF(current_setting('app.current_bank_id'::text, true), ''::text))::uuid)"),
                )
            ),
            S.PASS,
            "tenant policies",
            id="policy-uuid-cast-ok",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=()),
            S.FAIL,
            "no policy for SELECT that reaches the app role compares bank_id with app.current_bank_id; no policy for"
            " INSERT",
            id="policy-none",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(pg_evidence.PolicyFacts("p", using=POLICY),)),
            S.PASS,
            "tenant policies holds",
            id="for-all-using-only-is-its-own-check",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(pg_evidence.PolicyFacts("p", command="UPDATE", using=POLICY), TENANT)),
            S.PASS,
            "tenant policies holds",
            id="for-update-using-only-is-its-own-check",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(pg_evidence.PolicyFacts("p", command="SELECT", using=POLICY),)),
            S.FAIL,
            "no policy for INSERT that reaches the app role compares",
            id="select-only",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(TENANT, pg_evidence.PolicyFacts("open", command="SELECT", using=OPEN))),
            S.FAIL,
            "open (SELECT, permissive, PUBLIC) does not compare bank_id with app.current_bank_id in USING",
            id="extra-permissive-select",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(TENANT, pg_evidence.PolicyFacts("open", command="INSERT", with_check=OPEN))),
            S.FAIL,
            "open (INSERT, permissive, PUBLIC) does not compare bank_id with app.current_bank_id in WITH CHECK",
            id="extra-permissive-insert",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(TENANT, pg_evidence.PolicyFacts("p", command="DELETE", using=OPEN, roles=(ROLE,)))),
            S.FAIL,
            f"p (DELETE, permissive, {ROLE}) does not compare",
            id="extra-permissive-delete-for-the-app-role",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(
                policies=(
                    TENANT,
                    pg_evidence.PolicyFacts("p", using=OPEN, roles=("auditor",), applies_to_app_role=False),
                )
            ),
            S.PASS,
            "tenant policies holds",
            id="extra-permissive-for-another-role",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(policy(POLICY, permissive=False),)),
            S.FAIL,
            "no policy for SELECT",  # restrictive alone lets nothing through: there is no permissive one at all
            id="restrictive-without-permissive",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(pg_evidence.PolicyFacts("open", using=OPEN), policy(POLICY, permissive=False), TENANT)),
            S.PASS,
            "tenant policies holds",
            id="open-permissive-bound-by-restrictive",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(pg_evidence.PolicyFacts("open", using=OPEN), policy(POLICY, permissive=False))),
            S.FAIL,
            "no policy for SELECT that reaches the app role compares",  # bound, but no permissive policy compares
            id="only-open-permissive-and-restrictive",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(TENANT, pg_evidence.PolicyFacts("loose", using=POLICY, with_check=OPEN))),
            S.FAIL,
            "loose (ALL, permissive, PUBLIC) does not compare bank_id with app.current_bank_id in WITH CHECK",
            id="extra-permissive-loose-with-check",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(policy("(bank_id = current_setting('app.bank'::text))"),)),
            S.FAIL,
            "does not compare bank_id with app.current_bank_id",
            id="policy-other-session-variable",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            table(policies=(policy("(owner_id = current_setting('app.current_bank_id'::text))"),)),
            S.FAIL,
            "does not compare bank_id",
            id="policy-other-column-named-like-the-variable",
        ),
        pytest.param("B.postgres.tenant_indexes", HEALTHY, S.PASS, "tenant indexes holds", id="tenant-index-ok"),
        pytest.param(
            "B.postgres.tenant_indexes",
            table(tenant_indexed=False),
            S.FAIL,
            "no valid index leads with bank_id",
            id="tenant-index-missing",
        ),
        pytest.param("B.postgres.foreign_keys", HEALTHY, S.PASS, "foreign keys holds", id="foreign-keys-ok"),
        pytest.param(
            "B.postgres.foreign_keys",
            table(foreign_keys=0),
            S.FAIL,
            "no FOREIGN KEY constraint",
            id="foreign-keys-none",
        ),
        pytest.param("B.postgres.app_role", HEALTHY, S.PASS, "payscope_app is bound by RLS", id="app-role-ok"),
        pytest.param(
            "B.postgres.app_role",
            pg_catalog(role=pg_evidence.RoleFacts(ROLE, False)),
            S.FAIL,
            "App role payscope_app does not exist",
            id="app-role-missing",
        ),
        pytest.param(
            "B.postgres.app_role",
            pg_catalog(role=pg_evidence.RoleFacts(ROLE, True, superuser=True)),
            S.FAIL,
            "payscope_app is superuser: RLS does not bind it",
            id="app-role-superuser",
        ),
        pytest.param(
            "B.postgres.app_role",
            pg_catalog(role=pg_evidence.RoleFacts(ROLE, True, bypass_rls=True)),
            S.FAIL,
            "payscope_app has BYPASSRLS: RLS does not bind it",
            id="app-role-bypassrls",
        ),
        pytest.param(
            "B.postgres.app_role",
            table(owner=ROLE, app_role_is_owner=True),
            S.FAIL,
            "payscope_app owns public.transactions: RLS does not bind it",
            id="app-role-owns-table",
        ),
        pytest.param(
            "B.postgres.app_role",
            table(app_role_is_owner=True),
            S.FAIL,
            "payscope_app is a member of payscope_owner, which owns public.transactions: RLS does not bind it",
            id="app-role-member-of-the-owner",
        ),
        pytest.param(
            "B.postgres.app_role",
            pg_catalog(role=pg_evidence.RoleFacts(ROLE, True, privileged_memberships=(("etl", "BYPASSRLS"),))),
            S.FAIL,
            "payscope_app is a member of etl, which has BYPASSRLS",
            id="app-role-member-of-a-bypassrls-role",
        ),
        pytest.param(
            "B.postgres.app_role",
            pg_catalog(role=pg_evidence.RoleFacts(ROLE, True, privileged_memberships=(("postgres", "superuser"),))),
            S.FAIL,
            "payscope_app is a member of postgres, which is superuser",
            id="app-role-member-of-a-superuser",
        ),
        pytest.param("C.ingestion.idempotency_key", HEALTHY, S.PASS, "idempotency keys holds", id="idempotency-ok"),
        pytest.param(
            "C.ingestion.idempotency_key",
            table(unique_keys=(("id",),)),
            S.FAIL,
            "no UNIQUE constraint or index on exactly (file_sha256, bank_id)",
            id="idempotency-missing",
        ),
        pytest.param(
            "C.ingestion.idempotency_key",
            table(unique_keys=(("bank_id",), ("bank_id", "file_sha256", "id"))),
            S.FAIL,
            "on exactly (file_sha256, bank_id)",
            id="idempotency-other-columns",
        ),
        pytest.param("B.timescale.hypertables", HEALTHY, S.PASS, "on 1 hypertable(s)", id="hypertable-ok"),
        pytest.param(
            "B.timescale.hypertables",
            NO_EXTENSION,
            S.FAIL,
            "timescaledb extension is not available on this server",
            id="hypertable-extension-unavailable",
        ),
        pytest.param(
            "B.timescale.hypertables",
            NOT_INSTALLED,
            S.FAIL,
            "timescaledb extension is available but not installed",
            id="hypertable-extension-not-installed",
        ),
        pytest.param(
            "B.timescale.hypertables",
            PLAIN_TABLE,
            S.FAIL,
            "public.transactions: not a hypertable",
            id="hypertable-plain-table",
        ),
        pytest.param(
            "B.timescale.hypertables",
            TABLE_NOT_OBSERVED,
            S.FAIL,
            "public.transactions: not a hypertable",
            id="hypertable-table-not-observed",
        ),
        pytest.param(
            "B.timescale.hypertables",
            hypertable(time_column="ts"),
            S.FAIL,
            "partitioned by ts, not created_at",
            id="hypertable-wrong-time-column",
        ),
        pytest.param("B.timescale.retention", HEALTHY, S.PASS, "retention as declared", id="retention-ok"),
        pytest.param(
            "B.timescale.retention",
            hypertable(retention=ts_model.ObservedJob(1000, 30 * DAY)),
            S.FAIL,
            "retention policy interval differs from 400d",
            id="retention-interval-differs",
        ),
        pytest.param(
            "B.timescale.retention",
            hypertable(retention=ts_model.ObservedJob(1000, None)),
            S.FAIL,
            "retention policy interval differs from 400d",
            id="retention-not-an-interval",
        ),
        pytest.param(
            "B.timescale.retention",
            hypertable(retention=None),
            S.FAIL,
            "no retention policy (want 400d)",
            id="retention-missing",
        ),
        pytest.param(
            "B.timescale.retention", NO_EXTENSION, S.FAIL, "not available", id="retention-extension-unavailable"
        ),
        pytest.param("B.timescale.compression", HEALTHY, S.PASS, "compression as declared", id="compression-ok"),
        pytest.param(
            "B.timescale.compression",
            hypertable(compression_enabled=False),
            S.FAIL,
            "public.transactions: compression is not enabled",
            id="compression-not-enabled",
        ),
        pytest.param(
            "B.timescale.compression",
            hypertable(segment_by=("account_id",)),
            S.FAIL,
            "segmentby is ['account_id'], not ['bank_id']",
            id="compression-segmentby-differs",
        ),
        pytest.param(
            "B.timescale.compression",
            hypertable(compression=None),
            S.FAIL,
            "no compression policy (want 30d)",
            id="compression-policy-missing",
        ),
        pytest.param(
            "B.timescale.compression",
            hypertable(compression=ts_model.ObservedJob(1001, 7 * DAY)),
            S.FAIL,
            "compression policy interval differs from 30d",
            id="compression-policy-interval-differs",
        ),
        pytest.param("G.audit_log.hash_chain", HEALTHY, S.PASS, "verifies over its newest rows", id="chain-ok"),
        pytest.param(
            "G.audit_log.hash_chain",
            log(first_break="row 17: hash does not match its content"),
            S.FAIL,
            "broken at row 17: hash does not match its content: investigate tampering",
            id="chain-broken",
        ),
        pytest.param(
            "G.audit_log.hash_chain",
            pg(audit_log=pg_evidence.AuditLogFacts(exists=True)),
            S.UNKNOWN,
            "The audit log is empty: there is no chain to verify.",
            id="chain-empty",
        ),
        pytest.param(
            "G.audit_log.hash_chain",
            pg(audit_log=pg_evidence.AuditLogFacts(exists=False)),
            S.FAIL,
            "Audit log table public.audit_log does not exist",
            id="chain-table-missing",
        ),
        pytest.param(
            "G.audit_log.immutable", HEALTHY, S.PASS, "can neither update, delete nor truncate", id="immutable-ok"
        ),
        pytest.param(
            "G.audit_log.immutable",
            log(app_role_writes=("UPDATE",)),
            S.FAIL,
            "REVOKE UPDATE ON audit_log FROM payscope_app",
            id="immutable-update-held",
        ),
        pytest.param(
            "G.audit_log.immutable",
            log(app_role_writes=("DELETE", "TRUNCATE")),
            S.FAIL,
            "REVOKE DELETE, TRUNCATE ON audit_log FROM payscope_app",
            id="immutable-delete-truncate-held",
        ),
        pytest.param(
            "G.audit_log.immutable",
            log(app_role_owns=True, app_role_writes=("UPDATE",)),
            S.FAIL,
            "payscope_app owns the audit log and could rewrite it",
            id="immutable-owns",
        ),
        pytest.param(
            "G.audit_log.immutable",
            pg(audit_log=pg_evidence.AuditLogFacts(exists=False)),
            S.FAIL,
            "public.audit_log does not exist",
            id="immutable-table-missing",
        ),
        pytest.param(
            "G.isolation.rls_probe", probe(), S.PASS, "hide other tenants' rows and refuse", id="isolation-ok"
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(visible=3),
            S.FAIL,
            "as payscope_app for bank-a, 3 other tenants' row(s) are visible",
            id="isolation-visible-rows",
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(write="accepted"),
            S.FAIL,
            "as payscope_app for bank-a, a row for bank-b was accepted",
            id="isolation-write-accepted",
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(write="inconclusive: NotNullViolation"),
            S.UNKNOWN,
            "whether one can be written is undecided: public.transactions: the write for bank-b failed for another"
            " reason (NotNullViolation)",
            id="isolation-write-inconclusive",
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(visible=2, write="inconclusive: NotNullViolation"),
            S.FAIL,
            "2 other tenants' row(s) are visible",
            id="isolation-visible-rows-beat-an-inconclusive-write",
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(write=pg_isolation.NOT_WRITTEN, unproven=NOTHING_TO_HIDE),
            S.UNKNOWN,
            f"not proven: public.transactions: {NOTHING_TO_HIDE}",
            id="isolation-nothing-to-hide",
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(write=pg_isolation.NOT_WRITTEN),
            S.PASS,
            "hide other tenants' rows",
            id="isolation-read-only-on-existing-rows",
        ),
        pytest.param(
            "G.isolation.rls_probe",
            probe(visible=1, write=pg_isolation.NOT_WRITTEN, unproven=NOTHING_TO_HIDE),
            S.FAIL,
            "1 other tenants' row(s) are visible",
            id="isolation-visible-without-writes",
        ),
    ],
)
def test_evaluate(check_id: str, evidence: object, expected: status.CheckStatus, fragment: str) -> None:
    finding = CHECKS[check_id].judge(evidence, SPEC)
    assert finding.status == expected, finding.message
    assert fragment in finding.message


def test_migrations_without_an_expected_version_accept_any_single_version() -> None:
    desired = spec.PayScopeSpec.model_validate(
        {"postgres": {**POSTGRES, "migrations": {"table": "alembic_version"}, "tables": []}}
    )
    finding = CHECKS["B.postgres.migrations"].judge(pg(migrations=("0007",)), desired)
    assert finding.status == S.PASS
    assert "at migration 0007" in finding.message


def test_forced_rls_is_only_asked_of_tables_that_declare_it() -> None:
    loose = {**POSTGRES["tables"][0], "rowLevelSecurity": {"enabled": True, "force": False}}
    desired = spec.PayScopeSpec.model_validate({"tenancy": {}, "postgres": {**POSTGRES, "tables": [loose]}})
    applies = CHECKS["B.postgres.rls_forced"].applies
    assert applies is not None
    assert not applies(desired)
    assert CHECKS["B.postgres.rls_enabled"].judge(table(rls_forced=False), desired).status == S.PASS


def test_retention_and_compression_judge_only_the_hypertables_that_declare_them() -> None:
    events = {"name": "events", "hypertable": {"timeColumn": "ts"}}
    desired = spec.PayScopeSpec.model_validate(
        {"tenancy": {}, "postgres": {**POSTGRES, "tables": [*POSTGRES["tables"], events]}}
    )
    # events is declared but not (yet) a hypertable: that is the hypertable check's failure, nobody else's.
    assert CHECKS["B.timescale.hypertables"].judge(HEALTHY, desired).message == "public.events: not a hypertable"
    for check_id in ("B.timescale.retention", "B.timescale.compression"):
        finding = CHECKS[check_id].judge(HEALTHY, desired)
        assert finding.status == S.PASS, finding.message
        assert "on 1 hypertable(s)" in finding.message


def test_problems_of_several_tables_are_all_named() -> None:
    accounts = {"name": "accounts", "schema": "ledger", "expectForeignKeys": True}
    desired = spec.PayScopeSpec.model_validate(
        {"tenancy": {}, "postgres": {**POSTGRES, "tables": [*POSTGRES["tables"], accounts]}}
    )
    finding = CHECKS["B.postgres.foreign_keys"].judge(table(foreign_keys=0), desired)
    assert finding.status == S.FAIL
    assert finding.message == (
        "Fix foreign keys: public.transactions: no FOREIGN KEY constraint; ledger.accounts: table not found"
    )
    assert finding.evidence == f"postgres {HOST}: public.transactions, ledger.accounts"


def test_isolation_evidence_says_the_probe_was_rolled_back() -> None:
    finding = CHECKS["G.isolation.rls_probe"].judge(probe(write="accepted"), SPEC)
    assert finding.evidence == "public.transactions as payscope_app (rolled back)"


MINIMAL_POSTGRES: dict[str, Any] = {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}}


@pytest.mark.parametrize(
    ("check_id", "desired"),
    [
        pytest.param("B.postgres.tables", {"postgres": MINIMAL_POSTGRES}, id="tables-none-declared"),
        pytest.param("B.postgres.migrations", {"postgres": MINIMAL_POSTGRES}, id="migrations-undeclared"),
        pytest.param(
            "B.postgres.rls_enabled",
            {
                "postgres": {
                    **MINIMAL_POSTGRES,
                    "tables": [{"name": "t", "rowLevelSecurity": {"enabled": False, "force": False}}],
                }
            },
            id="rls-disabled-in-spec",
        ),
        pytest.param(
            "B.postgres.rls_forced",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t"}]}},
            id="rls-forced-no-rls",
        ),
        pytest.param(
            "B.postgres.policy_session_variable",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t"}]}},
            id="policy-no-rls",
        ),
        pytest.param(
            "B.postgres.tenant_indexes",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t"}]}},
            id="tenant-index-off",
        ),
        pytest.param(
            "B.postgres.foreign_keys",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t"}]}},
            id="foreign-keys-off",
        ),
        pytest.param("B.postgres.app_role", {"postgres": MINIMAL_POSTGRES}, id="app-role-undeclared"),
        pytest.param("G.audit_log.immutable", {"postgres": MINIMAL_POSTGRES}, id="immutable-no-app-role"),
        pytest.param(
            "C.ingestion.idempotency_key",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t"}]}},
            id="idempotency-undeclared",
        ),
        pytest.param(
            "B.timescale.hypertables", {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t"}]}}, id="no-hypertable"
        ),
        pytest.param(
            "B.timescale.retention",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t", "hypertable": {"timeColumn": "ts"}}]}},
            id="retention-undeclared",
        ),
        pytest.param(
            "B.timescale.compression",
            {"postgres": {**MINIMAL_POSTGRES, "tables": [{"name": "t", "hypertable": {"timeColumn": "ts"}}]}},
            id="compression-undeclared",
        ),
    ],
)
def test_check_does_not_apply_without_its_declaration(check_id: str, desired: dict[str, Any]) -> None:
    check = CHECKS[check_id]
    assert check.applies is not None
    assert not check.applies(spec.PayScopeSpec.model_validate(desired))


def test_isolation_probe_needs_tenancy_probe_tenants_and_an_rls_table() -> None:
    source = CHECKS["G.isolation.rls_probe"].source
    assert source.configured(SPEC)
    without_tenants = spec.PayScopeSpec.model_validate({"tenancy": {}, "postgres": POSTGRES})
    assert not source.configured(without_tenants)
    no_rls = {**POSTGRES, "tables": [{"name": "t"}]}
    assert not source.configured(
        spec.PayScopeSpec.model_validate({"tenancy": {}, "postgres": no_rls, "audit": {"probeTenants": ["a", "b"]}})
    )


def test_every_check_applies_to_the_full_spec() -> None:
    for check in CHECKS.values():
        assert check.source.configured(SPEC), check.id
        assert check.applies is None or check.applies(SPEC), check.id


def test_no_check_applies_without_spec_postgres() -> None:
    empty = spec.PayScopeSpec()
    for check in CHECKS.values():
        assert not check.source.configured(empty), check.id
        assert check.applies is None or not check.applies(empty), check.id


@dataclass
class FakeSession:
    spec: spec.PayScopeSpec


async def test_whole_catalog_on_an_empty_spec_is_not_configured_without_io() -> None:
    report = await runner.run(catalog.CATALOG, FakeSession(spec.PayScopeSpec()), today=datetime.date(2026, 11, 28))
    assert len(report.results) == len(catalog.CATALOG)
    assert {r.status for r in report.results} == {S.NOT_CONFIGURED}
    assert report.source_seconds == {}  # no source was gathered
    by_id = {r.id: r for r in report.results}
    assert by_id["B.postgres.app_role"].message == "spec.postgres is absent."
    assert by_id["G.isolation.rls_probe"].message.startswith("Needs spec.postgres")


@pytest.mark.parametrize(
    ("piece", "needing"),
    [
        (
            "catalog",
            (
                "B.postgres.tables",
                "B.postgres.rls_enabled",
                "B.postgres.rls_forced",
                "B.postgres.policy_session_variable",
                "B.postgres.tenant_indexes",
                "B.postgres.foreign_keys",
                "B.postgres.app_role",
                "C.ingestion.idempotency_key",
            ),
        ),
        ("migrations", ("B.postgres.migrations",)),
        ("timescale", ("B.timescale.hypertables", "B.timescale.retention", "B.timescale.compression")),
        ("audit_log", ("G.audit_log.hash_chain", "G.audit_log.query_logging", "G.audit_log.immutable")),
    ],
)
def test_a_piece_that_could_not_be_read_turns_only_its_checks_unknown(piece: str, needing: tuple[str, ...]) -> None:
    evidence = pg(unreadable={piece: "UndefinedColumn"})
    catalog_checks = [c for c in CHECKS.values() if c.source is postgres.CATALOG]
    desired = spec.PayScopeSpec.model_validate(
        {"tenancy": {}, "postgres": {**POSTGRES, "migrations": {"table": "alembic_version", "expected": "0042"}}}
    )
    for check in catalog_checks:
        if check.applies is not None and not check.applies(desired):
            continue
        finding = check.judge(evidence, desired)
        if check.id in needing:
            assert finding.status == S.UNKNOWN, check.id
            assert finding.message.startswith(f"Postgres at {HEALTHY.host} answered, but ")
            assert finding.message.endswith(": UndefinedColumn")
        else:
            assert finding.status == S.PASS, (check.id, finding.message)


class _Conn:
    def __init__(self, *, broken: bool) -> None:
        self.broken, self.closed = broken, False


async def _fails() -> int:
    raise psycopg.errors.UndefinedColumn("column does not exist")


@pytest.mark.parametrize("broken", [False, True], ids=["query-failed", "connection-lost"])
def test_a_failed_query_is_one_unreadable_piece_but_a_lost_connection_fails_the_source(broken: bool) -> None:
    unreadable: dict[str, str] = {}
    gathered = postgres._piece(_Conn(broken=broken), unreadable, "audit_log", _fails(), -1)
    if broken:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            asyncio.run(gathered)
    else:
        assert asyncio.run(gathered) == -1
        assert unreadable == {"audit_log": "UndefinedColumn"}
