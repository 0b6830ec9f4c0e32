"""Benchmark (not a timed test): one full audit of a Postgres installation, for 1 and for 50 tables.

For each table count it creates a database on the test environment's Postgres
with that many tenant tables (tenant column, foreign key, idempotency key), an
app role, a migration table and a hash-chained audit log; provisions it once
with the operator's own pipeline (RLS, policies, tenant indexes); then runs the
audit alone five times and prints, per run count:

* the median wall time of one full audit (every check of the catalog that the
  spec configures: catalogs, migrations, audit-log chain, the cross-tenant probe),
* the statements the audit sent to Postgres, counted server-side from
  ``pg_stat_database.xact_commit`` (every statement here is its own transaction),

so you can see that the number of queries does not grow with the number of
tables (the isolation probe sends one statement set for every RLS table). With no
provisioning in the pass, the audit observes Postgres itself, through the same
provisioner (``reconcile.observations``): the figure includes that observation.

    PYTHONPATH=. .venv/bin/python benchmarks/audit.py [--runs 5]

Needs the test environment (``python -m tests.testenv up``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from payscope_operator import telemetry
from payscope_operator.api import spec as api_spec
from payscope_operator.audit import catalog, runner
from payscope_operator.reconcile import provision, reconciler, secrets, session, systems
from payscope_operator.standalone import LocalCluster
from tests.payscope_api import auditlog

ENV = Path(__file__).resolve().parents[1] / ".testenv" / "env.json"


def _build(admin_dsn: str, tables: int) -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    database, role = f"bench_{suffix}", f"bench_app_{suffix}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'bench-pass-1'").format(sql.Identifier(role)))
    dsn = make_conninfo(admin_dsn, dbname=database)
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE TABLE banks (id text PRIMARY KEY)")
        db.execute("INSERT INTO banks VALUES ('bank-a'), ('bank-b')")
        db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('0042')")
        for i in range(tables):
            db.execute(
                sql.SQL(
                    "CREATE TABLE {} (id bigserial PRIMARY KEY, bank_id text NOT NULL REFERENCES banks(id),"
                    " key text NOT NULL, UNIQUE (bank_id, key))"
                ).format(sql.Identifier(f"t{i:03d}"))
            )
            db.execute(
                sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(f"t{i:03d}"), sql.Identifier(role))
            )
        for statement, params in auditlog.seed("audit_log", role):
            db.execute(statement, params)
    return dsn, database, role


def _spec(role: str, tables: int) -> dict[str, Any]:
    return {
        "tenancy": {},
        "postgres": {
            "connection": {"secretRef": {"name": "pg", "key": "dsn"}},
            "appRole": role,
            "migrations": {"expected": "0042"},
            "tables": [
                {"name": f"t{i:03d}", "rowLevelSecurity": {"enabled": True, "force": True}, "tenantIndex": True,
                 "idempotencyKey": ["bank_id", "key"], "expectForeignKeys": True}
                for i in range(tables)
            ],
        },
        "audit": {"probeTenants": ["bank-a", "bank-b"], "probeTimeout": "30s", "interval": "60s"},
    }  # fmt: skip


def _commits(admin_dsn: str, database: str) -> int:
    time.sleep(1.1)  # backends flush their statistics at exit and at most once a second
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        row = admin.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (database,))
        found = row.fetchone()
    return int(found[0]) if found else 0


async def _measure(admin_dsn: str, tables: int, runs: int) -> tuple[float, int, int, list[str]]:
    dsn, database, role = _build(admin_dsn, tables)
    desired = _spec(role, tables)
    cluster = LocalCluster(secrets={"pg": {"dsn": SecretStr(dsn)}})
    deps = reconciler.Dependencies(cluster=cluster, observer=telemetry.Metrics(), provisioners=systems.PROVISIONERS)
    resource = reconciler.Resource("bench", "bench", "bench-uid", 1, None, {}, desired, None)
    await reconciler.reconcile(deps, resource)  # provision once (Full)
    model = api_spec.PayScopeSpec.model_validate(desired)
    resolved, missing = await secrets.resolve("bench", model, cluster.read_secret)
    seconds, statements = [], []
    report = None
    for _ in range(runs):
        run = session.PassSession(model, "bench", "bench", resolved, missing, cluster, session.ClientCache())
        run.observations = provision.ledger(systems.PROVISIONERS, run)
        before = _commits(admin_dsn, database)
        started = time.perf_counter()
        report = await runner.run(catalog.CATALOG, run, today=datetime.date.today())
        seconds.append(time.perf_counter() - started)
        statements.append(_commits(admin_dsn, database) - before)
    assert report is not None
    failing = [f"{r.id}={r.status.value}" for r in report.results if r.status.value not in ("Pass", "NotConfigured")]
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    configured = sum(1 for r in report.results if r.status.value != "NotConfigured")
    return statistics.median(seconds), int(statistics.median(statements)), configured, failing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    admin_dsn = json.loads(ENV.read_text())["PAYSCOPE_PG_DSN"]
    print(f"{'tables':>6}  {'audit (median)':>14}  {'statements to Postgres':>22}  {'checks run':>10}")
    for tables in (1, 50):
        seconds, statements, configured, failing = asyncio.run(_measure(admin_dsn, tables, args.runs))
        print(f"{tables:>6}  {seconds * 1000:>11.1f} ms  {statements:>22}  {configured:>10}")
        if failing:
            print(f"        not passing: {', '.join(failing)}")


if __name__ == "__main__":
    main()
