"""Benchmark (not a timed test): Postgres RLS + TimescaleDB provisioning of many tables.

Creates N tables (default 50) in a private schema on the TimescaleDB server, declares
each with forced row-level security, a tenant index, and a hypertable with a chunk
interval and a retention policy, then runs the reconcile pipeline's Postgres part
(``relational`` then ``timeseries``, on ONE connection) and prints:

* every statement of the first pass (the changes, and the catalog reads),
* every statement of an unchanged pass (no change at all; reads do not grow with N),
* the unchanged pass's wall time, median of 5 runs.

Compression is not declared: TimescaleDB 2.23 refuses compression on tables with
row-level security (the provisioner reports such tables Failed with
RowSecurityConflictsWithCompression). The schema is dropped at the end.

    .venv/bin/python benchmarks/provision_postgres.py [--dsn DSN] [--tables 50] [--quiet]

The DSN defaults to PAYSCOPE_TIMESCALE_DSN, then to the test environment's env.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from payscope_operator.api import postgres_spec, spec
from payscope_operator.backends import base, ownership
from payscope_operator.backends.postgres import client as postgres_client
from payscope_operator.backends.postgres import model as postgres_model
from payscope_operator.backends.postgres import provisioner as postgres_provisioner
from payscope_operator.backends.timescale import provisioner as timescale_provisioner

OWNER = ownership.Owner("1e1e1e1e-0000-4000-8000-000000000123", "bench", "payscope")


def default_dsn() -> str:
    if "PAYSCOPE_TIMESCALE_DSN" in os.environ:
        return os.environ["PAYSCOPE_TIMESCALE_DSN"]
    env = Path(__file__).resolve().parents[1] / ".testenv" / "env.json"
    return str(json.loads(env.read_text())["PAYSCOPE_TIMESCALE_DSN"])


def declared(schema: str, count: int) -> postgres_spec.Postgres:
    tables = [
        {
            "schema": schema,
            "name": f"tx_{index:03d}",
            "rowLevelSecurity": {"enabled": True, "force": True},
            "tenantIndex": True,
            "hypertable": {"timeColumn": "created_at", "chunkInterval": "7d", "retention": "400d"},
        }
        for index in range(count)
    ]
    return postgres_spec.Postgres.model_validate(
        {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "tables": tables}
    )


async def run_pass(
    conn: psycopg.AsyncConnection[Any], postgres: postgres_spec.Postgres
) -> tuple[postgres_client.StatementLog, int]:
    """One pass of the Postgres part of the pipeline; returns its statement log and unresolved blockers."""
    log = postgres_client.StatementLog()
    desired = postgres_model.Desired(postgres, spec.Tenancy(), OWNER)
    security = postgres_provisioner.PostgresProvisioner(conn, desired, log=log)
    plans: list[base.Plan] = [security.plan(await security.observe())]
    for action in plans[0].actions:
        await security.apply(action)
    hypertables = timescale_provisioner.TimescaleProvisioner(conn, postgres, log=log)
    plans.append(hypertables.plan(await hypertables.observe()))
    for action in plans[1].actions:
        await hypertables.apply(action)
    return log, sum(len(plan.blockers) for plan in plans)


def show(title: str, log: postgres_client.StatementLog, quiet: bool) -> None:
    counts = {kind: len(log.of_kind(kind)) for kind in ("change", "read", "session")}
    print(
        f"== {title}: {counts['change']} changes, {counts['read']} catalog reads, {counts['session']} session settings"
    )
    for kind, text in log.entries:
        if not quiet or kind != "change":
            print(f"  [{kind}] {text}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dsn", default=None, help="TimescaleDB DSN (default: PAYSCOPE_TIMESCALE_DSN)")
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--quiet", action="store_true", help="do not print each change of the first pass")
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    postgres = declared(schema, args.tables)
    conn = await postgres_client.connect(args.dsn or default_dsn())
    async with conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            for table in postgres.tables:
                name = sql.Identifier(schema, table.name)
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (created_at timestamptz NOT NULL, bank_id text NOT NULL, amount int)"
                    ).format(name)
                )
                await conn.execute(
                    sql.SQL(
                        "INSERT INTO {} SELECT now() - g * interval '1 day', 'bank-' || g % 3, g"
                        " FROM generate_series(1, 20) g"
                    ).format(name)
                )
            started = time.perf_counter()
            first, _ = await run_pass(conn, postgres)
            first_seconds = time.perf_counter() - started
            show(f"first pass over {args.tables} tables ({first_seconds:.2f}s)", first, args.quiet)
            durations = []
            unchanged = first
            for _ in range(5):
                started = time.perf_counter()
                unchanged, blockers = await run_pass(conn, postgres)
                durations.append(time.perf_counter() - started)
                if unchanged.change_count or blockers:
                    raise SystemExit(f"an unchanged pass sent {unchanged.change_count} changes ({blockers} blockers)")
            show("unchanged pass", unchanged, quiet=False)
            median = statistics.median(durations) * 1000
            runs = ", ".join(f"{duration * 1000:.1f}" for duration in durations)
            print(f"== unchanged pass wall time over {args.tables} tables: median {median:.1f} ms (runs: {runs} ms)")
        finally:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    asyncio.run(main())
