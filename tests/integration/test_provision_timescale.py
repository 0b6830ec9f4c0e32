"""The TimescaleDB provisioner against the real TimescaleDB 2.23 (PGlite) of the test environment.

The server serves ONE connection at a time: every test opens a single connection, runs
the provisioners on it (as the reconcile pipeline does), and closes it before anything
else connects; the ``timescale_schema`` fixture gives each test a schema of its own.
Idempotency is proven server-side: no other session can run while ours is open and
background jobs never start by themselves, so the server's next transaction id must
not move over an unchanged pass (any DDL or TimescaleDB API call that writes takes
one), and an event trigger reporting DDL commands must stay silent. (TimescaleDB runs
DDL on hypertables itself without firing event triggers, so a no-op ``IF NOT EXISTS``
on a hypertable escapes both; the provisioner's own statement log covers that.)
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from payscope_operator import errors
from payscope_operator.api import postgres_spec, spec, status
from payscope_operator.backends import base, ownership, postgres, timescale
from tests.integration import ddl_probe

OWNER = ownership.Owner("1e1e1e1e-0000-4000-8000-000000000123", "payscope", "prod")
READY = status.ProvisionState.READY
FAILED = status.ProvisionState.FAILED
COMPRESSED = {"after": "30d", "segmentBy": ["bank_id"], "orderBy": ["created_at DESC"]}


def section(schema: str, *tables: dict[str, Any]) -> postgres_spec.Postgres:
    return postgres_spec.Postgres.model_validate(
        {
            "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
            "tables": [{"schema": schema, **declared} for declared in tables],
        }
    )


def metrics(**overrides: Any) -> dict[str, Any]:
    hypertable = {"timeColumn": "created_at", "chunkInterval": "7d", "retention": "400d", "compression": COMPRESSED}
    return {"name": "metrics", "hypertable": {**hypertable, **overrides}}


SECURE_TX = {
    "name": "tx",
    "rowLevelSecurity": {"enabled": True, "force": True},
    "tenantIndex": True,
    "hypertable": {"timeColumn": "created_at", "chunkInterval": "1d", "retention": "90d"},
}


@pytest.fixture
async def conn(timescale_schema: tuple[str, str]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """The test's only connection, with its tables created; closed before the fixture drops the schema."""
    dsn, schema = timescale_schema
    connection = await postgres.client.connect(dsn)
    async with connection:
        for statement in [
            "CREATE TABLE {s}.metrics (created_at timestamptz NOT NULL, bank_id text NOT NULL, v int)",
            "INSERT INTO {s}.metrics SELECT now() - g * interval '1 day', 'bank-' || g % 3, g"
            " FROM generate_series(1, 60) g",
            "CREATE TABLE {s}.tx (created_at timestamptz NOT NULL, bank_id text NOT NULL, amount int)",
            "INSERT INTO {s}.tx VALUES (now(), 'bank-a', 1), (now(), 'bank-a', 2), (now(), 'bank-b', 3)",
            "CREATE TABLE {s}.keyed (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL)",
        ]:
            await connection.execute(sql.SQL(statement).format(s=sql.Identifier(schema)))
        for probe in ddl_probe.install(schema, schema):
            await connection.execute(probe)
        try:
            yield connection
        finally:
            if not connection.closed:
                await connection.execute(ddl_probe.remove(schema))


async def next_xid(conn: psycopg.AsyncConnection[Any]) -> int:
    cursor = await conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def run_pass(
    conn: psycopg.AsyncConnection[Any],
    desired: postgres_spec.Postgres,
    log: postgres.client.StatementLog,
    *,
    apply: bool = True,
) -> tuple[base.Plan, base.Plan]:
    """The pipeline's order on one connection: row-level security, then TimescaleDB."""
    rls = postgres.model.Desired(desired, spec.Tenancy(), OWNER)
    security = postgres.provisioner.PostgresProvisioner(conn, rls, log=log)
    security_plan = security.plan(await security.observe())
    for action in security_plan.actions if apply else ():
        await security.apply(action)
    hypertables = timescale.provisioner.TimescaleProvisioner(conn, desired, log=log)
    plan = hypertables.plan(await hypertables.observe())
    for action in plan.actions if apply else ():
        await hypertables.apply(action)
    return security_plan, plan


async def one(conn: psycopg.AsyncConnection[Any], query: str, *params: Any) -> Any:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return None if row is None else (row[0] if len(row) == 1 else row)


async def test_create_from_nothing_then_an_unchanged_pass_sends_nothing(
    conn: psycopg.AsyncConnection[Any], timescale_schema: tuple[str, str]
) -> None:
    _, schema = timescale_schema
    desired = section(schema, metrics(), SECURE_TX)
    # The environment's TimescaleDB starts without the extension; whichever test runs first
    # would otherwise see the CREATE EXTENSION here too (test_extension_* covers that action).
    await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    ddl = await ddl_probe.listen(conn, schema)
    first = postgres.client.StatementLog()
    _, plan = await run_pass(conn, desired, first)
    # The probe is live (TimescaleDB handles DDL on hypertables itself and fires no event
    # trigger for it, so it sees the statements sent while tables are still plain).
    assert sorted(set(ddl)) == ["ALTER TABLE", "COMMENT", "CREATE INDEX", "CREATE POLICY"]
    ddl.clear()
    assert [a.describe().split(" (")[0] for a in plan.actions] == [
        f"timescaledb: create Hypertable {schema}.metrics",
        f"timescaledb: create Compression {schema}.metrics",
        f"timescaledb: create CompressionPolicy {schema}.metrics",
        f"timescaledb: create RetentionPolicy {schema}.metrics",
        f"timescaledb: create Hypertable {schema}.tx",
        f"timescaledb: create RetentionPolicy {schema}.tx",
    ]
    assert first.change_count == 12  # + RLS of tx: policy, enable, force, index, and the owner comments of both
    assert await one(conn, f"SELECT count(*) FROM {schema}.metrics") == 60  # existing rows migrated
    assert await one(conn, f"SELECT count(*) FROM show_chunks('{schema}.metrics')") >= 8
    settings = await one(
        conn,
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings"
        f" WHERE hypertable = '{schema}.metrics'::regclass",
    )
    assert settings == ("bank_id", "created_at DESC")
    jobs = await conn.execute(
        "SELECT hypertable_name, proc_name, config->>'drop_after', config->>'compress_after'"
        " FROM timescaledb_information.jobs WHERE hypertable_schema = %s ORDER BY 1, 2",
        (schema,),
    )
    assert await jobs.fetchall() == [
        ("metrics", "policy_compression", None, "30 days"),
        ("metrics", "policy_retention", "400 days", None),
        ("tx", "policy_retention", "90 days", None),
    ]

    xid = await next_xid(conn)
    second = postgres.client.StatementLog()
    security, plan = await run_pass(conn, desired, second)
    assert await next_xid(conn) == xid  # nothing wrote anything
    assert ddl == []
    assert second.change_count == 0
    assert security.converged
    assert plan.converged
    assert [kind for kind, _ in second.entries] == ["session", "read", "read", "session", "read", "read"]


async def test_row_level_security_binds_on_a_hypertable(
    conn: psycopg.AsyncConnection[Any], timescale_schema: tuple[str, str]
) -> None:
    _, schema = timescale_schema
    await run_pass(conn, section(schema, SECURE_TX), postgres.client.StatementLog())
    role = f"{schema}_app"
    await conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        await conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role))
        )
        await conn.execute(
            sql.SQL("GRANT SELECT, INSERT ON {}.tx TO {}").format(sql.Identifier(schema), sql.Identifier(role))
        )
        async with conn.transaction(force_rollback=True):
            await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            await conn.execute("SELECT set_config('app.current_bank_id', 'bank-a', true)")
            assert await one(conn, f"SELECT sum(amount) FROM {schema}.tx") == 3
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {schema}.tx VALUES (now(), 'bank-b', 9)")
        index = await one(
            conn, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'payscope_tx_bank_id_idx'",
            schema,
        )  # fmt: skip
        assert index == f"CREATE INDEX payscope_tx_bank_id_idx ON {schema}.tx USING btree (bank_id)"
    finally:
        await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        await conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_out_of_band_drift_is_reported_then_corrected(
    conn: psycopg.AsyncConnection[Any], timescale_schema: tuple[str, str]
) -> None:
    _, schema = timescale_schema
    desired = section(schema, metrics())
    await run_pass(conn, desired, postgres.client.StatementLog())
    for statement in [
        f"SELECT set_chunk_time_interval('{schema}.metrics', interval '1 day')",
        f"SELECT remove_retention_policy('{schema}.metrics')",
        f"SELECT add_retention_policy('{schema}.metrics', drop_after => interval '10 days')",
        f"SELECT remove_compression_policy('{schema}.metrics')",
        f"ALTER TABLE {schema}.metrics SET (timescaledb.compress_segmentby = 'v')",
    ]:
        await conn.execute(statement)
    ddl = await ddl_probe.listen(conn, schema)
    xid = await next_xid(conn)
    _, preview = await run_pass(conn, desired, postgres.client.StatementLog(), apply=False)  # ObserveOnly
    assert await next_xid(conn) == xid
    assert ddl == []
    assert [(a.describe(), a.drift) for a in preview.actions] == [
        (f"timescaledb: update Hypertable {schema}.metrics (chunk interval was 1d, not 7d)", True),
        (f"timescaledb: update Compression {schema}.metrics (segmentby was v)", True),
        (f"timescaledb: create CompressionPolicy {schema}.metrics (after 30d)", False),
        (f"timescaledb: replace RetentionPolicy {schema}.metrics (was 10d, not 400d)", True),
    ]
    log = postgres.client.StatementLog()
    await run_pass(conn, desired, log)
    assert log.change_count == 5  # set interval, alter table, add, remove + add
    _, after = await run_pass(conn, desired, postgres.client.StatementLog())
    assert after.converged


async def test_bad_tables_fail_with_their_reason_while_the_others_proceed(
    conn: psycopg.AsyncConnection[Any], timescale_schema: tuple[str, str]
) -> None:
    _, schema = timescale_schema
    secure_compressed = {**SECURE_TX, "hypertable": {"timeColumn": "created_at", "compression": {"after": "7d"}}}
    desired = section(
        schema,
        {"name": "keyed", "hypertable": {"timeColumn": "created_at"}},
        {"name": "gone", "hypertable": {"timeColumn": "created_at"}},
        {"name": "metrics", "hypertable": {"timeColumn": "happened_at"}},
        secure_compressed,
    )
    security, plan = await run_pass(conn, desired, postgres.client.StatementLog())
    failed = {(o.kind, o.name.split(".")[1]): o.reason for o in plan.objects if o.state is FAILED}
    assert failed == {
        ("Hypertable", "keyed"): "HypertableConstraintIncompatible",
        ("Hypertable", "gone"): "TableNotFound",
        ("Hypertable", "metrics"): "TimeColumnNotFound",
        ("Compression", "tx"): "RowSecurityConflictsWithCompression",
        ("CompressionPolicy", "tx"): "RowSecurityConflictsWithCompression",
    }
    keyed = next(b for b in plan.blockers if b.reason == "HypertableConstraintIncompatible")
    assert f"{schema}.keyed" in keyed.message
    assert "keyed_pkey" in keyed.message
    assert [a.describe() for a in plan.actions] == [
        f"timescaledb: create Hypertable {schema}.tx (by_range(created_at, default interval), migrating existing rows)"
    ]
    assert {o.state for o in security.objects} == {status.ProvisionState.MISSING}  # RLS goes ahead
    assert await one(conn, "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", f"{schema}.tx") is True


async def test_without_timescaledb_hypertables_fail_and_rls_proceeds(pg_dsn: str) -> None:
    conn = await postgres.client.connect(pg_dsn)
    async with conn:
        await conn.execute("CREATE TABLE tx (created_at timestamptz NOT NULL, bank_id text NOT NULL)")
        desired = section("public", SECURE_TX)
        security, plan = await run_pass(conn, desired, postgres.client.StatementLog())
        assert plan.actions == ()
        assert {(o.kind, o.reason) for o in plan.objects} == {
            ("Extension", "TimescaleUnavailable"), ("Hypertable", "TimescaleUnavailable"),
            ("RetentionPolicy", "TimescaleUnavailable"),
        }  # fmt: skip
        assert [(b.reason, b.permanent) for b in plan.blockers] == [("TimescaleUnavailable", False)]
        assert len(security.actions) == 3
        again, _ = await run_pass(conn, desired, postgres.client.StatementLog())
        assert again.converged


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_or_lost_server_is_transient_then_recovers(timescale_schema: tuple[str, str]) -> None:
    dsn, schema = timescale_schema
    with pytest.raises(errors.DependencyUnavailable) as caught:
        await postgres.client.connect(make_conninfo(dsn, port=closed_port()), connect_timeout=2)
    assert "postgres@" not in caught.value.message
    assert "password" not in caught.value.message
    desired = section(schema, {"name": "events", "hypertable": {"timeColumn": "at", "retention": "30d"}})
    conn = await postgres.client.connect(dsn)
    async with conn:
        await conn.execute(sql.SQL("CREATE TABLE {}.events (at timestamptz NOT NULL)").format(sql.Identifier(schema)))
        provisioner = timescale.provisioner.TimescaleProvisioner(conn, desired)
        plan = provisioner.plan(await provisioner.observe())
    with pytest.raises(errors.DependencyUnavailable, match="lost the Postgres connection"):  # gone mid-pass
        await provisioner.apply(plan.actions[0])
    conn = await postgres.client.connect(dsn)
    async with conn:
        provisioner = timescale.provisioner.TimescaleProvisioner(conn, desired)
        for action in provisioner.plan(await provisioner.observe()).actions:
            await provisioner.apply(action)
        assert provisioner.plan(await provisioner.observe()).converged
        assert (await timescale.provisioner.TimescaleProvisioner(conn, desired).teardown()).removed == ()
        await provisioner.apply(timescale.model.ExtensionAction(system="timescaledb", verb=base.Verb.CREATE,
                                                           kind="Extension", target="timescaledb"))  # fmt: skip
        assert await one(conn, "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                         schema) == 1  # fmt: skip
