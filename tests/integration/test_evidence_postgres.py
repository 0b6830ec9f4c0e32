"""The audit's own Postgres evidence against the real Postgres 15: what no plan needs, in a fixed number of statements.

The provisioner's observation gives the tables' existence, RLS flags, owner and the
app role; ``backends.postgres.evidence`` adds the rest. Each test has a database of its
own (``pg_dsn``) with two tenants' rows in three tables: ``guarded`` (RLS forced, the
tenant policy), ``open_tx`` (no RLS: every tenant's rows are visible, a foreign write is
accepted) and ``secret`` (RLS on, the app role may not read it). The isolation probe
(``backends.postgres.isolation``) must tell each apart, in one statement set for all
tables, and leave no row behind. Three more tables hold no row of the second tenant:
``fresh`` (RLS forced, NOT NULL columns of many types without defaults), ``fresh_open``
(no RLS) and ``linked`` (RLS forced, a NOT NULL foreign key): the probe plants its own
row of that tenant where it can, and says why where it cannot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from payscope_operator import errors
from payscope_operator.api import postgres_spec, spec
from payscope_operator.backends import ownership, postgres
from tests.payscope_api import auditlog
from tests.testenv import plans

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
INSERT INTO alembic_version VALUES ('0042');
CREATE TYPE payment_kind AS ENUM ('card', 'wire');
CREATE TABLE fresh (id bigserial PRIMARY KEY, bank_id text NOT NULL, kind payment_kind NOT NULL,
    amount numeric(12, 2) NOT NULL, booked_at timestamptz NOT NULL, on_day date NOT NULL, settled boolean NOT NULL,
    ref uuid NOT NULL UNIQUE, meta jsonb NOT NULL, tags text[] NOT NULL, code varchar(3) NOT NULL);
INSERT INTO fresh (bank_id, kind, amount, booked_at, on_day, settled, ref, meta, tags, code)
    VALUES ('bank-a', 'wire', 1, now(), now(), true, gen_random_uuid(), '{}', '{}', 'EUR');
ALTER TABLE fresh ENABLE ROW LEVEL SECURITY;
ALTER TABLE fresh FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON fresh USING (bank_id = current_setting('app.current_bank_id', true))
    WITH CHECK (bank_id = current_setting('app.current_bank_id', true));
CREATE TABLE fresh_open (id serial PRIMARY KEY, bank_id text NOT NULL, booked_at timestamptz NOT NULL);
INSERT INTO fresh_open (bank_id, booked_at) VALUES ('bank-a', now());
CREATE TABLE banks (id text PRIMARY KEY);
INSERT INTO banks VALUES ('bank-a');
CREATE TABLE linked (id serial PRIMARY KEY, bank_id text NOT NULL, bank_ref text NOT NULL REFERENCES banks(id));
ALTER TABLE linked ENABLE ROW LEVEL SECURITY;
ALTER TABLE linked FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON linked USING (bank_id = current_setting('app.current_bank_id', true))
    WITH CHECK (bank_id = current_setting('app.current_bank_id', true))
"""
PROBED = ("guarded", "open_tx", "fresh", "fresh_open", "linked")


@pytest.fixture
def app_role(pg_dsn: str) -> Iterator[str]:
    """The tables above and a role of this test's own with SELECT/INSERT on guarded and open_tx only."""
    name = "app_" + str(conninfo_to_dict(pg_dsn)["dbname"]).removeprefix("t_")
    role = sql.Identifier(name)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        for statement in SCHEMA.split(";\n"):
            admin.execute(statement.encode())  # test-authored statements
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
        admin.execute(sql.SQL("GRANT SELECT, INSERT ON guarded, open_tx, fresh, fresh_open, linked TO {}").format(role))
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


def rows(dsn: str) -> list[tuple[str, int, int]]:
    """Rows and the next sequence value of every probed table (a probe that writes uses sequence values)."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        return [
            (
                name,
                *admin.execute(sql.SQL("SELECT count(*), max(id) FROM {}").format(sql.Identifier(name))).fetchall()[0],
            )
            for name in PROBED
        ]


def sequences(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as admin:
        found = admin.execute("SELECT sequencename, coalesce(last_value, 0) FROM pg_sequences").fetchall()
    return {str(name): int(value) for name, value in found}


async def probe(
    conn: psycopg.AsyncConnection[Any], role: str | None, *tables: str, write: bool = True
) -> tuple[postgres.isolation.IsolationFacts, ...]:
    found = postgres.isolation.Probe("bank_id", "app.current_bank_id", role, TENANTS, write)
    return await postgres.isolation.probe_isolation(conn, found, [("public", t) for t in tables])


async def test_the_isolation_probe_tells_an_isolated_table_from_a_leaking_one(
    conn: psycopg.AsyncConnection[Any], app_role: str, pg_dsn: str
) -> None:
    before = rows(pg_dsn)
    guarded, leaking = await probe(conn, app_role, "guarded", "open_tx")
    assert (guarded.table, guarded.visible_foreign_rows, guarded.role) == ("public.guarded", 0, app_role)
    assert guarded.foreign_write.startswith("refused: new row violates row-level security policy")
    assert (leaking.table, leaking.visible_foreign_rows, leaking.foreign_write) == ("public.open_tx", 1, "accepted")
    assert (guarded.planted, guarded.unproven) == ("the connecting role", "")
    assert rows(pg_dsn) == before  # rolled back: the planted rows and the accepted write left nothing


async def test_a_planted_row_proves_isolation_where_the_other_tenant_has_no_data(
    conn: psycopg.AsyncConnection[Any], app_role: str, pg_dsn: str
) -> None:
    before = rows(pg_dsn)
    fresh, fresh_open = await probe(conn, app_role, "fresh", "fresh_open")
    # Every NOT NULL column without a default was filled (enum, numeric, timestamptz, date, boolean, uuid, jsonb,
    # array, varchar(3)): the row was planted, stayed invisible to bank-a, and bank-a could not write one.
    assert (fresh.visible_foreign_rows, fresh.planted, fresh.unproven) == (0, "the connecting role", "")
    assert fresh.foreign_write.startswith("refused: new row violates row-level security policy")
    # Without RLS, bank-b's planted row is what bank-a sees: a leak found although bank-b has no data at all.
    assert (fresh_open.visible_foreign_rows, fresh_open.foreign_write) == (1, "accepted")
    assert rows(pg_dsn) == before


async def test_a_row_that_cannot_be_planted_leaves_the_table_unproven_saying_why(
    conn: psycopg.AsyncConnection[Any], app_role: str
) -> None:
    (linked,) = await probe(conn, app_role, "linked")
    assert (linked.visible_foreign_rows, linked.planted) == (0, "")
    assert linked.unproven == (
        "bank-b has no row here to hide, and no row of bank-b could be planted"
        " (column bank_ref is NOT NULL without a default and references another table)"
    )
    assert linked.foreign_write.startswith("refused")  # the write side needs no valid row: RLS refuses it first


async def test_without_write_probes_nothing_is_inserted_and_existing_rows_are_the_proof(
    conn: psycopg.AsyncConnection[Any], app_role: str, pg_dsn: str
) -> None:
    before = sequences(pg_dsn)
    guarded, fresh = await probe(conn, app_role, "guarded", "fresh", write=False)
    assert (guarded.visible_foreign_rows, guarded.foreign_write, guarded.planted, guarded.unproven) == (
        0, postgres.isolation.NOT_WRITTEN, "", ""
    )  # fmt: skip
    assert (fresh.visible_foreign_rows, fresh.unproven) == (
        0,
        "bank-b has no row here to hide, and writeProbes is false",
    )
    assert sequences(pg_dsn) == before  # not even a sequence value was used
    _, fresh = await probe(conn, app_role, "guarded", "fresh")
    assert sequences(pg_dsn) != before  # with write probes, inserts use sequence values (documented)


async def test_the_probe_reads_one_row_of_the_other_tenant_however_late_its_rows_come(
    app_role: str, pg_dsn: str
) -> None:
    """bank-b's rows are the newest 5% of the table: a sequential scan stopping at the first one reads every row of
    bank-a first, which the planner prefers for ``LIMIT 1`` over so many matches; the probe goes by the tenant index."""
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(  # bank-a and bank-c interleaved, as banks' rows arrive: no order the planner could count on
            "INSERT INTO guarded (bank_id, ref) SELECT (ARRAY['bank-a', 'bank-c'])[g % 2 + 1], 'r' || g"
            " FROM generate_series(1, 19000) g"
        )
        admin.execute("INSERT INTO guarded (bank_id, ref) SELECT 'bank-b', 'b' || g FROM generate_series(2, 1000) g")
        admin.execute("DELETE FROM guarded WHERE ref = 'b1'")  # the first row of bank-b, early in the table
        admin.execute("VACUUM (ANALYZE) guarded")
    where = conninfo_to_dict(pg_dsn)
    with plans.explained(pg_dsn, str(where["dbname"]), str(where["user"])) as window:
        async with await postgres.client.connect(pg_dsn) as fresh:  # a session started with auto_explain on
            (guarded,) = await probe(fresh, app_role, "guarded", write=False)
    assert (guarded.visible_foreign_rows, guarded.unproven) == (0, "")  # bank-b has rows to hide, and they are hidden
    looks = {text: s for text, s in window.statements().items() if 'FROM "public"."guarded"' in text}
    assert looks
    assert all(s.rows_of(frozenset({"guarded"})) <= 1 for s in looks.values()), {t: s.rows for t, s in looks.items()}


async def test_forced_rls_without_a_policy_for_the_owner_plants_as_the_app_role(pg_dsn: str, app_role: str) -> None:
    owner = app_role.replace("app_", "owner_")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        # NOINHERIT: a member of the app role that does not act with its privileges, so the policy TO the app
        # role does not cover the owner, and FORCEd RLS refuses the owner's insert.
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT PASSWORD 'owner-pass-1'").format(sql.Identifier(owner)))
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(app_role), sql.Identifier(owner)))
        admin.execute(sql.SQL("ALTER TABLE fresh OWNER TO {}").format(sql.Identifier(owner)))
        admin.execute("DROP POLICY tenant ON fresh")
        admin.execute(
            sql.SQL(
                "CREATE POLICY tenant ON fresh TO {} USING (bank_id = current_setting('app.current_bank_id', true))"
                " WITH CHECK (bank_id = current_setting('app.current_bank_id', true))"
            ).format(sql.Identifier(app_role))
        )
    try:
        conn = await postgres.client.connect(make_conninfo(pg_dsn, user=owner, password="owner-pass-1"))
        async with conn:
            (fresh,) = await probe(conn, app_role, "fresh")
        assert (fresh.visible_foreign_rows, fresh.planted, fresh.unproven) == (0, "the app role", "")
        assert fresh.foreign_write.startswith("refused")
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(owner)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


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
    assert [(p.name, p.command, p.permissive, p.roles, p.applies_to_app_role) for p in guarded.policies] == [
        ("tenant", "ALL", True, ("PUBLIC",), True)
    ]
    assert guarded.app_role_is_owner is False
    assert guarded.unique_keys == (("bank_id", "ref"), ("id",))
    assert guarded.columns == ("id", "bank_id", "ref")
    assert (open_tx.rls_enabled, open_tx.foreign_keys, open_tx.tenant_indexed) == (False, 1, False)
    assert not missing.exists
    assert catalog.role is not None
    assert (catalog.role.exists, catalog.role.superuser, catalog.role.privileged_memberships) == (True, False, ())
    assert catalog.queries == 1  # the role and the RLS flags came with the observation, its memberships with the tables


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
