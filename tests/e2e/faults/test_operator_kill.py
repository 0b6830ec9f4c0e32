"""The operator is SIGKILLed in the middle of provisioning 50 tables, and restarted.

Nothing runs on kill: no cleanup, no status write. The restarted operator must
finish the job as if nothing happened, which the Postgres catalog shows: every
table has row-level security enabled and forced, exactly one policy and exactly
one valid tenant index (no duplicate, nothing half-built: no policy on a table
without RLS, no INVALID index left by an interrupted concurrent build), and the
status says Provisioned with every object Ready.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
from kubernetes import client as k8s
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.conftest import unique
from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.identity import Identity
from tests.testenv import process

TABLES = 50
PROGRESS = """
SELECT (SELECT count(*) FROM pg_policies WHERE schemaname = 'public')
     + (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
                                      AND relrowsecurity AND relforcerowsecurity)
     + (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE '%(bank_id)')
"""


def _database(admin_dsn: str) -> str:
    name = unique("kill_")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(admin_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as db:
        for index in range(TABLES):
            table = sql.Identifier(f"tx_{index:03d}")
            db.execute(sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, bank_id text NOT NULL)").format(table))
    return dsn


def _kill_mid_way(operator: cluster.OperatorProcess, dsn: str) -> int:
    """Watch the catalog; SIGKILL the operator once a sixth of the objects exist; return how many exist then."""
    with psycopg.connect(dsn, autocommit=True) as watcher:
        clock = status.Clock()
        while clock.seconds < 60:
            done = int(watcher.execute(PROGRESS).fetchone()[0])  # type: ignore[index]
            if done >= TABLES // 2:
                os.kill(operator.pid, signal.SIGKILL)
                process.wait_until(lambda: not process.is_alive(operator.pid), what="operator gone", timeout=10)
                return int(watcher.execute(PROGRESS).fetchone()[0])  # type: ignore[index]
    raise AssertionError("the operator never started provisioning")


def test_killed_mid_provisioning_converges_without_duplicates(
    fault_identity: Identity, fault_api: k8s.ApiClient, fault_namespace: str, fault_env: dict[str, str], tmp_path: Path
) -> None:
    dsn = _database(fault_env["PAYSCOPE_PG_DSN"])
    cluster.create_secret(fault_api, fault_namespace, "pg", {"dsn": dsn})
    tables = [
        {"name": f"tx_{i:03d}", "rowLevelSecurity": {"enabled": True, "force": True}, "tenantIndex": True}
        for i in range(TABLES)
    ]
    spec = {
        "tenancy": {"tenantKey": "bank_id", "sessionVariable": "app.current_bank_id"},
        "postgres": {"connection": {"secretRef": {"name": "pg", "key": "dsn"}}, "tables": tables},
        "audit": {"interval": "10s", "probeTimeout": "5s"},
    }
    first = cluster.start_operator(fault_identity.kubeconfig, tmp_path / "first.log", namespaces=(fault_namespace,))
    cluster.create_psd(fault_api, fault_namespace, "tables", spec)
    done = _kill_mid_way(first, dsn)
    print(f"killed with {done} of {3 * TABLES} objects in place")
    assert 0 < done < 3 * TABLES, "the kill must land in the middle of provisioning"

    second = cluster.start_operator(fault_identity.kubeconfig, tmp_path / "second.log", namespaces=(fault_namespace,))
    try:
        obj = cluster.wait_for(
            lambda: (
                (o := cluster.psd(fault_api, fault_namespace, "tables"))
                and status.reflects(o, 1)
                and status.conditions(o).get("Provisioned", {}).get("status") == "True"
                and o
            ),
            what="Provisioned after the restart",
            timeout=60,
        )
    finally:
        second.stop()
    provisioned = obj["status"]["provisioned"]["postgres"]
    assert len(provisioned) == 3 * TABLES
    assert all(item["state"] == "Ready" for item in provisioned)
    assert status.conditions(obj)["Provisioned"]["reason"] == "Provisioned"
    with psycopg.connect(dsn, autocommit=True) as db:
        rls = db.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            " AND relrowsecurity AND relforcerowsecurity"
        ).fetchone()
        policies = db.execute(
            "SELECT tablename, count(*) FROM pg_policies WHERE schemaname = 'public' GROUP BY tablename"
        ).fetchall()
        indexes = db.execute(
            "SELECT tablename, count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE '%(bank_id)'"
            " GROUP BY tablename"
        ).fetchall()
        invalid = db.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid OR NOT indisready").fetchone()
    assert rls == (TABLES,)
    assert sorted(policies) == [(f"tx_{i:03d}", 1) for i in range(TABLES)]
    assert sorted(indexes) == [(f"tx_{i:03d}", 1) for i in range(TABLES)]
    assert invalid == (0,)
