"""The Postgres checks against a real server, where a reviewer found them wrong.

Each test builds a small PayScope database of its own (a tenant table under
forced row-level security, an app role, the contract's audit log), changes one
thing the way a DBA would, and runs the whole catalog through the operator's
own sources (``postgres.catalog``, ``postgres.isolation``) in a real
``PassSession``. The cases: a FOR ALL policy with USING only is correct (Postgres
uses USING as WITH CHECK); an extra permissive policy such as ``USING (true)``
defeats isolation, unless it is for another role or a restrictive policy still
binds; the app role is judged by role membership, not by the owner's name; an
isolation write probe that fails for another reason is Unknown; one evidence
query that fails turns only the checks that need it Unknown; an empty audit log
is no pass.

What it must not do: leave a role behind (roles are cluster-wide).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

from payscope_operator.api import spec, status
from payscope_operator.audit import catalog, runner
from payscope_operator.reconcile import provision, secrets, session, systems
from tests import empty_cluster
from tests.conftest import unique
from tests.payscope_api import auditlog

pytestmark = pytest.mark.integration

S = status.CheckStatus
TODAY = datetime.date(2026, 11, 28)
TENANT = "(bank_id = current_setting('app.current_bank_id', true))"


@dataclass(frozen=True)
class Db:
    dsn: str
    app: str
    owner: str  # a NOLOGIN role that owns the tables, as migrations usually leave them
    other: str  # an unrelated role

    def run(self, statement: str, *params: Any) -> None:
        """One statement with {app}, {owner} and {other} replaced by the quoted role names."""
        roles = {k: sql.Identifier(getattr(self, k)) for k in ("app", "owner", "other")}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(**roles), params or None)


@pytest.fixture
def db(pg_dsn: str) -> Iterator[Db]:
    prefix = unique("r_")
    found = Db(pg_dsn, f"{prefix}_app", f"{prefix}_owner", f"{prefix}_other")
    found.run("CREATE ROLE {app}; CREATE ROLE {owner}; CREATE ROLE {other}")
    found.run("CREATE TABLE transactions (id bigserial PRIMARY KEY, bank_id text NOT NULL, amount numeric)")
    found.run("INSERT INTO transactions (bank_id, amount) VALUES ('bank-a', 1), ('bank-a', 2), ('bank-b', 3)")
    found.run("ALTER TABLE transactions OWNER TO {owner}")
    found.run("ALTER TABLE transactions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    found.run("GRANT SELECT, INSERT ON transactions TO {app}")
    found.run("GRANT USAGE ON SEQUENCE transactions_id_seq TO {app}")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for statement in auditlog.ddl("audit_log", found.app):
            conn.execute(statement)
        for row in auditlog.chain(auditlog.GOLDEN_ENTRIES):
            conn.execute(
                "INSERT INTO audit_log (id, ts, bank_id, actor, operation, payload, prev_hash, hash)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
                (row["id"], row["ts"], row["bank_id"], row["actor"], row["operation"],
                 auditlog.canonical_json(row["payload"]), row["prev_hash"], row["hash"]),
            )  # fmt: skip
    yield found
    found.run("DROP OWNED BY {app}, {owner}, {other}; DROP ROLE {app}, {owner}, {other}")


def _spec(db: Db, **postgres: Any) -> spec.PayScopeSpec:
    section = {
        "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
        "appRole": db.app,
        "tables": [{"name": "transactions", "rowLevelSecurity": {"enabled": True, "force": True}}],
        **postgres,
    }
    return spec.PayScopeSpec.model_validate(
        {"tenancy": {}, "postgres": section, "audit": {"probeTenants": ["bank-a", "bank-b"]}}
    )


async def _audit(db: Db, desired: spec.PayScopeSpec | None = None) -> dict[str, status.CheckResult]:
    run = session.PassSession(
        desired or _spec(db),
        "ns",
        "psd",
        secrets.Secrets({("pg", "dsn"): SecretStr(db.dsn)}),
        missing=(),
        cluster=empty_cluster.EmptyCluster(),
        clients=session.ClientCache(),
    )
    run.observations = provision.ledger(systems.PROVISIONERS, run)  # the audit reads what Postgres observed
    try:
        report = await runner.run(catalog.CATALOG, run, today=TODAY)
    finally:
        await run.clients.close()
    return {r.id: r for r in report.results}


def _status(results: dict[str, status.CheckResult], *ids: str) -> dict[str, status.CheckStatus]:
    return {i: results[i].status for i in ids}


ISOLATION = ("B.postgres.policy_session_variable", "G.isolation.rls_probe")


async def test_a_proper_policy_isolates_and_every_postgres_check_passes(db: Db) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    results = await _audit(db)
    mine = [i for i, r in results.items() if i.startswith(("A.dependencies.postgres", "B.postgres.", "G."))]
    assert {i: results[i].status for i in mine if results[i].status != S.NOT_CONFIGURED} == dict.fromkeys(
        [i for i in mine if results[i].status != S.NOT_CONFIGURED], S.PASS
    )
    assert _status(results, *ISOLATION, "B.postgres.app_role") == dict.fromkeys(
        (*ISOLATION, "B.postgres.app_role"), S.PASS
    )


async def test_a_for_all_policy_with_using_only_is_correct(db: Db) -> None:
    """Postgres applies USING as WITH CHECK when a FOR ALL (or UPDATE) policy has none."""
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT}")
    results = await _audit(db)
    assert _status(results, *ISOLATION) == dict.fromkeys(ISOLATION, S.PASS), results[ISOLATION[0]].message


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("CREATE POLICY open ON transactions FOR SELECT USING (true)", "open (SELECT, permissive, PUBLIC)"),
        ("CREATE POLICY open ON transactions FOR ALL TO {app} USING (true)", "open (ALL, permissive,"),
        ("CREATE POLICY open ON transactions FOR INSERT WITH CHECK (true)", "open (INSERT, permissive, PUBLIC)"),
    ],
    ids=["select-for-everyone", "all-for-the-app-role", "insert-for-everyone"],
)
async def test_an_extra_permissive_policy_defeats_isolation(db: Db, extra: str, words: str) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run(extra)
    results = await _audit(db)
    check = results["B.postgres.policy_session_variable"]
    assert check.status == S.FAIL, check.message
    assert words in check.message
    assert "does not compare bank_id with app.current_bank_id" in check.message
    assert results["G.isolation.rls_probe"].status == S.FAIL  # and the probe sees it too


@pytest.mark.parametrize(
    "extra",
    [
        "CREATE POLICY open ON transactions FOR SELECT TO {other} USING (true)",
        f"CREATE POLICY open ON transactions USING (true); CREATE POLICY bound ON transactions AS RESTRICTIVE"
        f" USING {TENANT} WITH CHECK {TENANT}",
    ],
    ids=["for-another-role", "bound-by-a-restrictive-policy"],
)
async def test_a_permissive_policy_that_cannot_reach_the_app_roles_rows_is_harmless(db: Db, extra: str) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run(extra)
    results = await _audit(db)
    assert _status(results, *ISOLATION) == dict.fromkeys(ISOLATION, S.PASS), results[ISOLATION[0]].message


@pytest.mark.parametrize(
    ("grant", "words"),
    [
        ("GRANT {owner} TO {app}", "is a member of {owner}, which owns public.transactions"),
        ("ALTER ROLE {other} BYPASSRLS; GRANT {other} TO {app}", "is a member of {other}, which has BYPASSRLS"),
    ],
    ids=["member-of-the-owner", "member-of-a-bypassrls-role"],
)
async def test_the_app_role_is_judged_by_role_membership(db: Db, grant: str, words: str) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run(grant)
    results = await _audit(db)
    check = results["B.postgres.app_role"]
    assert check.status == S.FAIL, check.message
    assert words.format(owner=db.owner, other=db.other) in check.message


async def test_a_write_probe_that_fails_for_another_reason_is_unknown_not_fail(db: Db) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run(
        "CREATE FUNCTION no_direct_inserts() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'inserts go through ingest()'; END $$"
    )
    db.run("CREATE TRIGGER guard BEFORE INSERT ON transactions FOR EACH ROW EXECUTE FUNCTION no_direct_inserts()")
    results = await _audit(db)
    probe = results["G.isolation.rls_probe"]
    assert (probe.status, probe.reason) == (S.UNKNOWN, status.CheckReason.INCONCLUSIVE), probe.message
    assert "public.transactions: the write for bank-b failed for another reason (RaiseException)" in probe.message


async def test_a_failed_evidence_query_turns_only_the_checks_that_need_it_unknown(db: Db) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run("ALTER TABLE audit_log RENAME COLUMN prev_hash TO previous_hash")
    results = await _audit(db)
    assert results["A.dependencies.postgres"].status == S.PASS, results["A.dependencies.postgres"].message
    for check_id in ("G.audit_log.hash_chain", "G.audit_log.immutable"):
        assert results[check_id].status == S.UNKNOWN, results[check_id].message
        assert "the audit log could not be read: UndefinedColumn" in results[check_id].message
    assert _status(results, *ISOLATION, "B.postgres.rls_forced") == dict.fromkeys(
        (*ISOLATION, "B.postgres.rls_forced"), S.PASS
    )


async def test_a_migration_table_without_the_declared_column_leaves_the_rest_judged(db: Db) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run("CREATE TABLE alembic_version (version text)")
    results = await _audit(db, _spec(db, migrations={"expected": "0042"}))
    migrations = results["B.postgres.migrations"]
    assert migrations.status == S.UNKNOWN, migrations.message
    assert "has no column version_num" in migrations.message
    assert results["A.dependencies.postgres"].status == S.PASS
    assert results["G.audit_log.hash_chain"].status == S.PASS


async def test_an_empty_audit_log_is_no_pass(db: Db) -> None:
    db.run(f"CREATE POLICY tenant ON transactions USING {TENANT} WITH CHECK {TENANT}")
    db.run("TRUNCATE audit_log")
    results = await _audit(db)
    chain = results["G.audit_log.hash_chain"]
    assert (chain.status, chain.message) == (S.UNKNOWN, "The audit log is empty: there is no chain to verify.")
