"""The row-level-security provisioner against the real Postgres 15 of the test environment.

Each test has a database of its own (``pg_dsn``). Idempotency is proven server-side: an
event trigger on ``ddl_command_start`` in that database logs every DDL command the
server receives (even a no-op ``IF NOT EXISTS``), so an unchanged pass must leave it
empty; the catalog rows of tables, policies and indexes must keep their oid and xmin.
Isolation is proven by connecting as a LOGIN app role and reading and writing rows.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from payscope_operator import errors
from payscope_operator.api import postgres_spec, spec, status
from payscope_operator.backends import base, ownership, postgres
from tests.integration import ddl_probe

OWNER = ownership.Owner("1e1e1e1e-0000-4000-8000-000000000123", "payscope", "prod")
READY = status.ProvisionState.READY
APP_PASSWORD = "app-pass-1"
BANK_A, BANK_B = "bank-a", "bank-b"
UUID_A, UUID_B = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
TABLES = """
CREATE TABLE tx (id serial PRIMARY KEY, bank_id text NOT NULL, amount int);
CREATE TABLE accounts (id serial PRIMARY KEY, bank_id uuid NOT NULL, name text);
CREATE TABLE ledger (id serial PRIMARY KEY, bank_id integer NOT NULL, amount int);
INSERT INTO tx (bank_id, amount) VALUES ('bank-a', 1), ('bank-a', 2), ('bank-b', 3);
INSERT INTO accounts (bank_id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'a'),
                                            ('00000000-0000-0000-0000-000000000002', 'b');
INSERT INTO ledger (bank_id, amount) VALUES (1, 10), (2, 20), (2, 30)
"""
FINGERPRINT = """
SELECT 'class ' || relname || ' ' || oid || ' ' || xmin FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND true
UNION ALL SELECT 'policy ' || polname || ' ' || oid || ' ' || xmin FROM pg_policy
UNION ALL SELECT 'index ' || indexrelid || ' ' || xmin || ' ' || indisvalid FROM pg_index
 WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
ORDER BY 1
"""


def spec_of(*names: str, app_role: str | None, force: bool = True) -> postgres.model.Desired:
    tables = [{"name": n, "rowLevelSecurity": {"enabled": True, "force": force}, "tenantIndex": True} for n in names]
    section = postgres_spec.Postgres.model_validate(
        {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "appRole": app_role, "tables": tables}
    )
    return postgres.model.Desired(section, spec.Tenancy(), OWNER)


@pytest.fixture
def app_role(pg_dsn: str) -> Iterator[str]:
    """The test tables, the DDL probe, and a LOGIN role of this test's own with SELECT/INSERT on the tables."""
    name = "app_" + str(conninfo_to_dict(pg_dsn)["dbname"]).removeprefix("t_")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for statement in TABLES.split(";\n"):
            admin.execute(statement.encode())  # test-authored statements
        for probe in ddl_probe.install("public", "ddl_probe"):
            admin.execute(probe)
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name),
                                                                           sql.Literal(APP_PASSWORD)))  # fmt: skip
        admin.execute(sql.SQL("GRANT SELECT, INSERT ON tx, accounts, ledger TO {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    connection = await postgres.client.connect(pg_dsn)
    async with connection:
        yield connection


async def run_pass(provisioner: postgres.provisioner.PostgresProvisioner, *, apply: bool = True) -> base.Plan:
    plan = provisioner.plan(await provisioner.observe())
    if apply:
        for action in plan.actions:
            await provisioner.apply(action)
    return plan


@pytest.fixture
async def ddl(conn: psycopg.AsyncConnection[Any], app_role: str) -> list[str]:
    """Tags of the DDL commands the server ran for ``conn``, as its event trigger reported them."""
    return await ddl_probe.listen(conn, "ddl_probe")


def fingerprint(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as admin:
        return [line for (line,) in admin.execute(FINGERPRINT).fetchall()]


def as_app(dsn: str, role: str, bank: str | None, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(make_conninfo(dsn, user=role, password=APP_PASSWORD), autocommit=True) as app:
        if bank is not None:
            app.execute("SELECT set_config('app.current_bank_id', %s, false)", (bank,))
        cursor = app.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def assert_isolated(dsn: str, role: str) -> None:
    assert as_app(dsn, role, BANK_A, "SELECT bank_id, amount FROM tx ORDER BY amount") == [(BANK_A, 1), (BANK_A, 2)]
    assert as_app(dsn, role, UUID_B, "SELECT name FROM accounts") == [("b",)]
    assert as_app(dsn, role, "1", "SELECT amount FROM ledger") == [(10,)]
    assert as_app(dsn, role, None, "SELECT count(*) FROM tx") == [(0,)]  # no tenant set: no rows
    assert as_app(dsn, role, "", "SELECT count(*) FROM ledger") == [(0,)]  # empty setting: no rows, no error
    for query, params in [
        ("INSERT INTO tx (bank_id, amount) VALUES (%s, 9)", (BANK_B,)),
        ("INSERT INTO accounts (bank_id, name) VALUES (%s, 'x')", (UUID_B,)),
        ("INSERT INTO ledger (bank_id, amount) VALUES (2, 9)", ()),
    ]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            as_app(dsn, role, BANK_A if "tx" in query else (UUID_A if "accounts" in query else "1"), query, params)
    assert as_app(dsn, role, BANK_A, "INSERT INTO tx (bank_id, amount) VALUES ('bank-a', 4) RETURNING amount") == [(4,)]


async def test_first_pass_isolates_banks_for_text_uuid_and_integer_keys(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any], ddl: list[str]
) -> None:
    assert as_app(pg_dsn, app_role, BANK_A, "SELECT count(*) FROM tx") == [(3,)]  # before: no isolation
    provisioner = postgres.provisioner.PostgresProvisioner(conn, spec_of("tx", "accounts", "ledger", app_role=app_role))
    plan = await run_pass(provisioner)
    assert len(plan.actions) == 9
    assert not plan.blockers
    assert provisioner.log.change_count == 18  # 3 x (policy + its owner comment + enable + force + index + comment)
    assert sorted(set(ddl)) == ["ALTER TABLE", "COMMENT", "CREATE INDEX", "CREATE POLICY"]
    converged = provisioner.plan(await provisioner.observe())
    assert converged.converged
    assert {obj.state for obj in converged.objects} == {READY}
    assert_isolated(pg_dsn, app_role)


async def test_an_unchanged_second_pass_sends_no_ddl(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any], ddl: list[str]
) -> None:
    desired = spec_of("tx", "accounts", "ledger", app_role=app_role)
    await run_pass(postgres.provisioner.PostgresProvisioner(conn, desired))
    ddl.clear()
    before = fingerprint(pg_dsn)
    second = postgres.provisioner.PostgresProvisioner(conn, desired)
    plan = await run_pass(second)
    assert plan.actions == ()
    assert second.log.change_count == 0
    assert [kind for kind, _ in second.log.entries] == ["session", "read"]  # one catalog query for three tables
    assert ddl == []  # the server received no DDL at all
    assert fingerprint(pg_dsn) == before


async def test_out_of_band_drift_is_reported_then_corrected(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any], ddl: list[str]
) -> None:
    desired = spec_of("tx", "accounts", "ledger", app_role=app_role)
    await run_pass(postgres.provisioner.PostgresProvisioner(conn, desired))
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("ALTER POLICY payscope_tenant_isolation ON tx USING (true)")  # leaks every bank's rows
        admin.execute("DROP POLICY payscope_tenant_isolation ON accounts")
        admin.execute("ALTER TABLE ledger NO FORCE ROW LEVEL SECURITY")
        admin.execute("DROP INDEX payscope_tx_bank_id_idx")
        admin.execute("DROP INDEX payscope_ledger_bank_id_idx")
        with pytest.raises(psycopg.errors.UniqueViolation):  # an interrupted build leaves an INVALID index
            admin.execute("CREATE UNIQUE INDEX CONCURRENTLY payscope_ledger_bank_id_idx ON ledger (bank_id)")
    assert len(as_app(pg_dsn, app_role, BANK_A, "SELECT * FROM tx")) == 3
    ddl.clear()

    observe_only = await run_pass(postgres.provisioner.PostgresProvisioner(conn, desired), apply=False)
    assert [(a.describe(), a.drift) for a in observe_only.actions] == [
        ("postgres: replace Policy public.tx.payscope_tenant_isolation (USING expression changed)", True),
        (f"postgres: create Policy public.accounts.payscope_tenant_isolation (TO {app_role},"
         " bank_id = current_setting('app.current_bank_id')::uuid)", True),
        ("postgres: update RowLevelSecurity public.ledger (force)", True),
        ("postgres: create Index public.payscope_tx_bank_id_idx (btree (bank_id))", False),
        ("postgres: replace Index public.payscope_ledger_bank_id_idx"
         " (invalid index left by an interrupted concurrent build)", False),
    ]  # fmt: skip
    assert ddl == []  # observing and planning changed nothing

    fixer = postgres.provisioner.PostgresProvisioner(conn, desired)
    await run_pass(fixer)
    assert fixer.log.change_count == 11  # 7 changes, and an owner comment with each policy and index created
    assert postgres.provisioner.PostgresProvisioner(conn, desired).plan(await fixer.observe()).converged
    assert_isolated(pg_dsn, app_role)


async def test_a_missing_table_or_column_fails_while_the_others_proceed(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    await conn.execute("CREATE TABLE no_tenant (id int)")
    provisioner = postgres.provisioner.PostgresProvisioner(conn, spec_of("tx", "gone", "no_tenant", app_role=app_role))
    plan = await run_pass(provisioner)
    failed = {(obj.kind, obj.name): obj.reason for obj in plan.objects if obj.state is status.ProvisionState.FAILED}
    assert failed == {
        ("RowLevelSecurity", "public.gone"): "TableNotFound",
        ("Policy", "public.gone.payscope_tenant_isolation"): "TableNotFound",
        ("Index", "public.payscope_gone_bank_id_idx"): "TableNotFound",
        ("RowLevelSecurity", "public.no_tenant"): "TenantColumnNotFound",
        ("Policy", "public.no_tenant.payscope_tenant_isolation"): "TenantColumnNotFound",
        ("Index", "public.payscope_no_tenant_bank_id_idx"): "TenantColumnNotFound",
    }
    assert {a.target for a in plan.actions} == {
        "public.tx", "public.tx.payscope_tenant_isolation", "public.payscope_tx_bank_id_idx"
    }  # fmt: skip
    again = provisioner.plan(await provisioner.observe())
    assert again.actions == ()
    assert [b.reason for b in again.blockers] == ["TableNotFound", "TenantColumnNotFound"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("ALTER ROLE {role} SUPERUSER", "superuser"),
        ("ALTER ROLE {role} BYPASSRLS", "BYPASSRLS"),
        ("ALTER TABLE tx OWNER TO {role}", "owns (or inherits the owner of) public.tx"),
        ("", None),  # a role that does not exist
    ],
)
async def test_an_app_role_rls_would_not_bind_stalls_the_spec(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any], ddl: list[str], setup: str, message: str | None
) -> None:
    if setup:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL(setup).format(role=sql.Identifier(app_role)))
    ddl.clear()
    desired = spec_of("tx", app_role=app_role if message else app_role + "_missing")
    provisioner = postgres.provisioner.PostgresProvisioner(conn, desired)
    with pytest.raises(errors.SpecUnsatisfiable) as caught:
        provisioner.plan(await provisioner.observe())
    assert caught.value.reason == "AppRoleInvalid"
    assert (message or "does not exist") in caught.value.message
    assert ddl == []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_or_lost_server_is_transient_then_recovers(
    pg_dsn: str, app_role: str, testenv: dict[str, str]
) -> None:
    secret = conninfo_to_dict(pg_dsn)["password"]
    with pytest.raises(errors.DependencyUnavailable) as caught:
        await postgres.client.connect(make_conninfo(pg_dsn, port=closed_port()), connect_timeout=2)
    assert str(secret) not in caught.value.message
    assert "postgres:" not in caught.value.message  # no user info; host:port/db is named for on-call

    desired = spec_of("tx", app_role=app_role)
    conn = await postgres.client.connect(pg_dsn)
    async with conn:
        provisioner = postgres.provisioner.PostgresProvisioner(conn, desired)
        plan = provisioner.plan(await provisioner.observe())
        pid = conn.info.backend_pid
        with psycopg.connect(testenv["PAYSCOPE_PG_DSN"], autocommit=True) as admin:  # the server drops us mid-pass
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(errors.DependencyUnavailable) as lost:
            await provisioner.apply(plan.actions[0])
        assert str(secret) not in lost.value.message
    conn = await postgres.client.connect(pg_dsn)
    async with conn:
        await run_pass(postgres.provisioner.PostgresProvisioner(conn, desired))
        final = postgres.provisioner.PostgresProvisioner(conn, desired)
        assert final.plan(await final.observe()).converged


async def test_a_locked_table_times_out_instead_of_hanging(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    timeouts = postgres.client.Timeouts(statement=5, lock=0.5)
    provisioner = postgres.provisioner.PostgresProvisioner(conn, spec_of("tx", app_role=app_role), timeouts=timeouts)
    with psycopg.connect(pg_dsn) as holder:  # an open transaction holding ACCESS EXCLUSIVE
        holder.execute("LOCK TABLE tx IN ACCESS EXCLUSIVE MODE")
        plan = provisioner.plan(await asyncio.wait_for(provisioner.observe(), 5))  # catalogs are not blocked
        with pytest.raises(errors.DependencyUnavailable, match="lock_timeout") as caught:
            await asyncio.wait_for(provisioner.apply(plan.actions[0]), 5)
        assert caught.value.reason == "DependencyTimeout"
        holder.rollback()
    await run_pass(provisioner)  # the same connection works on


async def test_teardown_drops_only_managed_objects_and_fails_closed(
    pg_dsn: str, app_role: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    await run_pass(postgres.provisioner.PostgresProvisioner(conn, spec_of("tx", "accounts", app_role=app_role)))
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("CREATE POLICY audit_reader ON tx FOR SELECT TO PUBLIC USING (false)")
        admin.execute("CREATE INDEX tx_amount_idx ON tx (amount)")
    provisioner = postgres.provisioner.PostgresProvisioner(
        conn, spec_of("tx", app_role=app_role)
    )  # accounts left the spec
    result = await provisioner.teardown()
    assert result.removed == ("policy public.tx.payscope_tenant_isolation", "index public.payscope_tx_bank_id_idx")
    assert len(result.kept) == 1
    assert "left enabled" in result.kept[0]
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        policies = admin.execute("SELECT tablename, policyname FROM pg_policies ORDER BY 1, 2").fetchall()
        assert policies == [("accounts", "payscope_tenant_isolation"), ("tx", "audit_reader")]
        indexes = admin.execute("SELECT indexname FROM pg_indexes WHERE tablename IN ('tx', 'accounts')").fetchall()
        assert sorted(name for (name,) in indexes) == [
            "accounts_pkey", "payscope_accounts_bank_id_idx", "tx_amount_idx", "tx_pkey"
        ]  # fmt: skip
        flags = admin.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'tx'")
        assert flags.fetchone() == (True, True)
        assert admin.execute("SELECT count(*) FROM tx").fetchone() == (3,)  # data untouched
    assert as_app(pg_dsn, app_role, BANK_A, "SELECT count(*) FROM tx") == [(0,)]  # fails closed, never open
    again = await provisioner.teardown()
    assert again.removed == ()
