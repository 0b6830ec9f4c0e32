"""The audit's own Postgres evidence against the real Postgres 15: what no plan needs, in a fixed number of statements.

The provisioner's observation gives the tables' existence, RLS flags, owner and the
app role; ``backends.postgres.evidence`` adds the rest. Each test has a database of its
own (``pg_dsn``) with two tenants' rows in three tables: ``guarded`` (RLS forced, the
tenant policy), ``open_tx`` (no RLS: every tenant's rows are visible, a foreign write is
accepted) and ``secret`` (RLS on, the app role may not read it). The isolation probe
must tell each apart, in one statement set for all tables, and leave no row behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from payscope_operator import errors
from payscope_operator.api import postgres_spec, spec
from payscope_operator.backends import ownership, postgres
from tests.payscope_api import auditlog

TENANTS = ("bank-a", "bank-b")
OWNER = ownership.Owner("7c7c7c7c-0000-4000-8000-000000000321", "payscope", "prod")
SCHEMA = """
CREATE TABLE guarded (id serial PRIMARY KEY, bank_id text NOT NULL, ref text NOT NULL, UNIQUE (bank_id, ref));
CREATE TABLE open_tx (id serial PRIMARY KEY, bank_id text NOT NULL, guarded_id int REFERENCES guarded(id));
CREATE TABLE secret (id serial PRIMARY KEY, bank_id text NOT NULL);
CREATE INDEX guarded_bank ON guarded (bank_id);
INSERT INTO guarded (bank_id, ref) VALUES ('bank-a', 'a1'), ('bank-b', 'b1');
INSERT INTO open_tx (bank_id) VALUES ('bank-a'), ('bank-b');
INSERT INTO secret (bank_id) VALUES ('bank-b');
ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
ALTER TABLE guarded FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON guarded USING (bank_id = current_setting('app.current_bank_id', true))
    WITH CHECK (bank_id = current_setting('app.current_bank_id', true));
ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0042')
"""


@pytest.fixture
def app_role(pg_dsn: str) -> Iterator[str]:
    """The tables above and a role of this test's own with SELECT/INSERT on guarded and open_tx only."""
    name = "app_" + str(conninfo_to_dict(pg_dsn)["dbname"]).removeprefix("t_")
    role = sql.Identifier(name)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for statement in SCHEMA.split(";\n"):
            admin.execute(statement.encode())  # test-authored statements
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
        admin.execute(sql.SQL("GRANT SELECT, INSERT ON guarded, open_tx TO {}").format(role))
        admin.execute(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
        for ddl in auditlog.ddl("audit_log", name):
            admin.execute(ddl)
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(role))
        admin.execute(sql.SQL("DROP ROLE {}").format(role))


@pytest.fixture
async def conn(pg_dsn: str, app_role: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    connection = await postgres.client.connect(pg_dsn)
    async with connection:
        yield connection


def rows(dsn: str) -> list[tuple[str, int]]:
    with psycopg.connect(dsn, autocommit=True) as admin:
        query = "SELECT 'guarded', count(*) FROM guarded UNION ALL SELECT 'open_tx', count(*) FROM open_tx"
        return [(str(name), int(count)) for name, count in admin.execute(query).fetchall()]


async def probe(conn: psycopg.AsyncConnection[Any], role: str, *tables: str) -> tuple[Any, ...]:
    return await postgres.evidence.probe_isolation(
        conn,
        tables=[("public", t) for t in tables],
        tenant_key="bank_id",
        session_variable="app.current_bank_id",
        app_role=role,
        tenants=TENANTS,
    )


async def test_the_isolation_probe_tells_an_isolated_table_from_a_leaking_one(
    conn: psycopg.AsyncConnection[Any], app_role: str, pg_dsn: str
) -> None:
    before = rows(pg_dsn)
    guarded, leaking = await probe(conn, app_role, "guarded", "open_tx")
    assert (guarded.table, guarded.visible_foreign_rows, guarded.role) == ("public.guarded", 0, app_role)
    assert guarded.foreign_write.startswith("refused: new row violates row-level security policy")
    assert (leaking.table, leaking.visible_foreign_rows, leaking.foreign_write) == ("public.open_tx", 1, "accepted")
    assert rows(pg_dsn) == before  # rolled back: the accepted write left nothing


async def test_a_table_the_app_role_cannot_read_makes_the_probe_fail_naming_it(
    conn: psycopg.AsyncConnection[Any], app_role: str
) -> None:
    with pytest.raises(
        errors.DependencyUnavailable, match=r"could not read public\.secret as app_.* \(SQLSTATE 42501\)"
    ):
        await probe(conn, app_role, "guarded", "secret")
    assert (await (await conn.execute("SELECT current_user = session_user")).fetchone()) == (True,)  # rolled back


async def test_the_catalog_adds_to_the_observation_only_what_no_plan_needs(
    conn: psycopg.AsyncConnection[Any], app_role: str
) -> None:
    section = postgres_spec.Postgres.model_validate(
        {
            "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
            "appRole": app_role,
            "tables": [{"name": "guarded", "rowLevelSecurity": {"enabled": True}}, {"name": "open_tx"}, {"name": "x"}],
        }
    )
    observed = await postgres.provisioner.PostgresProvisioner(
        conn, postgres.model.Desired(section, spec.Tenancy(), OWNER)
    ).observe()
    wanted = [("public", "guarded"), ("public", "open_tx"), ("public", "x")]

    catalog = await postgres.evidence.read_catalog(conn, wanted, observed, tenant_key="bank_id", app_role=app_role)

    guarded, open_tx, missing = (catalog.tables[key] for key in wanted)
    assert (guarded.exists, guarded.rls_enabled, guarded.rls_forced, guarded.tenant_indexed) == (True, True, True, True)
    assert [name for name, _, _ in guarded.policies] == ["tenant"]
    assert guarded.unique_keys == (("bank_id", "ref"), ("id",))
    assert guarded.columns == ("id", "bank_id", "ref")
    assert (open_tx.rls_enabled, open_tx.foreign_keys, open_tx.tenant_indexed) == (False, 1, False)
    assert not missing.exists
    assert catalog.role is not None
    assert (catalog.role.exists, catalog.role.superuser) == (True, False)
    assert catalog.queries == 1  # the role and the RLS flags came with the observation


async def test_migrations_and_the_audit_log_in_one_statement_each_and_two(
    conn: psycopg.AsyncConnection[Any], app_role: str
) -> None:
    read = postgres.evidence.read_migration_versions
    assert await read(conn, "public", "alembic_version", "version_num") == ("0042",)
    assert await read(conn, "public", "no_such_table", "version_num") is None
    with pytest.raises(errors.SpecInvalid, match="no column nope"):
        await read(conn, "public", "alembic_version", "nope")
    log = await postgres.evidence.read_audit_log(conn, "public", "audit_log", "id", app_role)
    assert (log.exists, log.app_role_writes, log.app_role_owns, log.first_break) == (True, (), False, None)
    assert not (await postgres.evidence.read_audit_log(conn, "public", "no_log", "id", app_role)).exists
