"""Checks that the test TimescaleDB is real enough: hypertables, policies as jobs, one client at a time.

PGlite serves one connection at a time and runs no background job: the checks prove
that a policy is a job run only when called, that a client that vanishes mid
transaction leaves nothing behind, that a second client queues (and one that gave up
does not block the next), and that the server and its meter listen on loopback only.
Run by ``python -m tests.testenv check`` (``check``).

What it must not do: leave a schema behind.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tests.testenv import check, environment, sockets


@dataclass(frozen=True)
class Hypertable:
    schema: str

    @property
    def table(self) -> sql.Composable:
        return sql.Identifier(self.schema, "m")

    @property
    def regclass(self) -> sql.Composable:
        return sql.Literal(f"{self.schema}.m")  # the schema name is t_ and hex digits


def _hypertable(ctx: check.Context) -> tuple[str, Hypertable]:
    """The DSN, and a fresh hypertable ``m`` partitioned by day in a schema of the check's own."""
    dsn = ctx.env["PAYSCOPE_TIMESCALE_DSN"]
    made = Hypertable(schema=ctx.unique("t_"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(made.schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (time timestamptz NOT NULL, tenant text NOT NULL, v double precision)").format(
                made.table
            )
        )
        conn.execute(sql.SQL("SELECT create_hypertable({}, by_range('time', INTERVAL '1 day'))").format(made.regclass))

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(made.schema)))

    ctx.later(drop)
    return dsn, made


Conn = psycopg.Connection[tuple[Any, ...]]


def _jobs(conn: Conn, hyper: Hypertable) -> dict[str, tuple[int, dict[str, Any]]]:
    rows = conn.execute(
        "SELECT proc_name, job_id, config FROM timescaledb_information.jobs"
        " WHERE hypertable_schema = %s AND hypertable_name = 'm'",
        (hyper.schema,),
    ).fetchall()
    return {proc: (job, config) for proc, job, config in rows}


def _row_count(conn: Conn, hyper: Hypertable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(hyper.table)).fetchone()
    assert row is not None
    return int(row[0])


def _insert_days(conn: Conn, hyper: Hypertable, days: int) -> None:
    """One row a day, from today back to ``days - 1`` days ago."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} SELECT now() - make_interval(days => d), 'bank-a', d FROM generate_series(0, %s) d"
        ).format(hyper.table),
        (days - 1,),
    )


def timescaledb_is_available_to_create(ctx: check.Context) -> None:
    with psycopg.connect(ctx.env["PAYSCOPE_TIMESCALE_DSN"], autocommit=True) as conn:
        row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    assert row is not None
    assert row[0].startswith("2.23")


def retention_policy_is_a_job_that_runs_only_when_called(ctx: check.Context) -> None:
    dsn, hypertable = _hypertable(ctx)
    with psycopg.connect(dsn, autocommit=True) as conn:
        _insert_days(conn, hypertable, 60)
        conn.execute(
            sql.SQL("SELECT add_retention_policy({}, drop_after => INTERVAL '30 days')").format(hypertable.regclass)
        )
        jobs = _jobs(conn, hypertable)
        assert set(jobs) == {"policy_retention"}
        job_id, config = jobs["policy_retention"]
        assert config["drop_after"] == "30 days"
        assert _row_count(conn, hypertable) == 60  # scheduled, never started by itself
        conn.execute("CALL run_job(%s)", (job_id,))
        assert _row_count(conn, hypertable) == 31  # chunks older than 30 days dropped


def compression_settings_and_policy(ctx: check.Context) -> None:
    dsn, hypertable = _hypertable(ctx)
    with psycopg.connect(dsn, autocommit=True) as conn:
        _insert_days(conn, hypertable, 20)
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = 'tenant',"
                " timescaledb.compress_orderby = 'time DESC')"
            ).format(hypertable.table)
        )
        conn.execute(
            sql.SQL("SELECT add_compression_policy({}, compress_after => INTERVAL '7 days')").format(
                hypertable.regclass
            )
        )
        settings = conn.execute(
            "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc"
            " FROM timescaledb_information.compression_settings WHERE hypertable_schema = %s ORDER BY attname",
            (hypertable.schema,),
        ).fetchall()
        assert settings == [("tenant", 1, None, None), ("time", None, 1, False)]
        job_id, config = _jobs(conn, hypertable)["policy_compression"]
        assert config["compress_after"] == "7 days"
        conn.execute("CALL run_job(%s)", (job_id,))
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks"
            " WHERE hypertable_schema = %s",
            (hypertable.schema,),
        ).fetchone()
        assert row is not None
        assert row[0] >= 12  # the chunks of days 8 to 19 at least
        assert _row_count(conn, hypertable) == 20
        for remove in ("remove_compression_policy", "remove_retention_policy"):
            conn.execute(
                sql.SQL("SELECT {}({}, if_exists => true)").format(sql.Identifier(remove), hypertable.regclass)
            )
        assert _jobs(conn, hypertable) == {}


def a_client_that_vanishes_mid_transaction_leaves_nothing_behind(ctx: check.Context) -> None:
    dsn, hypertable = _hypertable(ctx)
    leaver = psycopg.connect(dsn)
    leaver.execute(sql.SQL("INSERT INTO {} VALUES (now(), 'bank-a', 1)").format(hypertable.table))
    leaver.execute("SET application_name = 'leaver'")
    for _ in range(6):  # psycopg prepares a statement server-side from the 5th run on
        leaver.execute("SELECT %s::int", (1,))
    # Reset the TCP connection under psycopg's feet, as a killed process would.
    raw = socket.socket(fileno=leaver.fileno())
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    check.raises(psycopg.OperationalError, lambda: leaver.execute("SELECT 1"))
    leaver.close()

    with psycopg.connect(dsn, connect_timeout=10) as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert _row_count(conn, hypertable) == 0
        assert conn.execute("SHOW application_name").fetchone() != ("leaver",)
        for _ in range(6):  # same prepared-statement names as the leaver's session
            conn.execute("SELECT %s::int", (1,))


def a_second_client_waits_until_the_first_leaves(ctx: check.Context) -> None:
    dsn = ctx.env["PAYSCOPE_TIMESCALE_DSN"]
    served_after: list[float] = []

    def second_client() -> None:
        started = time.monotonic()
        with psycopg.connect(dsn, connect_timeout=20) as conn:
            conn.execute("SELECT 1")
            served_after.append(time.monotonic() - started)

    with psycopg.connect(dsn) as first:
        first.execute("SELECT 1")
        waiter = threading.Thread(target=second_client)
        waiter.start()
        time.sleep(1.5)
        assert served_after == []  # queued, not refused
    waiter.join(timeout=20)
    assert served_after
    assert served_after[0] >= 1.5


def a_client_that_gave_up_while_queued_does_not_block_the_next(ctx: check.Context) -> None:
    dsn = ctx.env["PAYSCOPE_TIMESCALE_DSN"]
    with psycopg.connect(dsn) as first:
        first.execute("SELECT 1")
        # psycopg keeps this attempt's socket open until garbage collection: the
        # server gets a client that never answers, and drops it after 5 s.
        check.raises(psycopg.OperationalError, lambda: psycopg.connect(dsn, connect_timeout=1))
    with psycopg.connect(dsn, connect_timeout=15) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def the_server_and_its_meter_listen_on_loopback_only(ctx: check.Context) -> None:
    timescale_server = environment.running("timescale")
    meter = timescale_server.env["PAYSCOPE_TIMESCALE_METER_URL"].removeprefix("http://")
    assert sorted(sockets.listening(timescale_server.pids[0])) == sorted([timescale_server.address, meter])


CHECKS = (
    timescaledb_is_available_to_create,
    retention_policy_is_a_job_that_runs_only_when_called,
    compression_settings_and_policy,
    a_client_that_vanishes_mid_transaction_leaves_nothing_behind,
    a_second_client_waits_until_the_first_leaves,
    a_client_that_gave_up_while_queued_does_not_block_the_next,
    the_server_and_its_meter_listen_on_loopback_only,
)
