"""One reconcile pass over a complete, unchanged installation, counted server-side per system.

Why it exists: ``tests/integration/test_pass_cost.py`` and ``benchmarks/pass_cost.py``
measure the same thing, so they share how the installation is built, how a pass
is driven and what a measured pass is.

- ``build`` lays out ``tests.installation``'s complete installation (Postgres 15
  with RLS, tenant indexes, foreign keys, migrations and the audit log; Neo4j;
  Pinecone; S3; Redis; the reference PayScope API; three Deployments; Secrets)
  with ``tables`` tenant tables, and beside it a second resource whose
  ``spec.postgres`` points at TimescaleDB (PGlite) with ``tables`` hypertables
  (retention, compression, RLS, tenant index), because one resource has one
  Postgres connection. Both PayScopeDeployments exist on the API server.
- ``Driver`` runs ``reconciler.reconcile`` with the production wiring (the
  provisioner registry, the whole catalog, the Kubernetes gateway) as the
  metered API user, re-reading the resource between passes as the watch would
  deliver it, and keeping clients between passes as the scheduler does.
- ``Driver.measure`` runs one pass and returns its counts. By default it gathers
  every source (the agent probes' reuse memory is cleared first: the pass that
  runs every ``agentProbeInterval``, the costliest unchanged one); with
  ``gather_all=False`` it is a pass in between, which reuses the agent probes.

What it must not do: assert (callers do), or change the installation between
the converging passes and the measured one.
"""

from __future__ import annotations

import datetime
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import kopf
import psycopg
from kubernetes import client as k8s
from psycopg import sql

from payscope_operator import main, telemetry
from payscope_operator.kube import gateway
from payscope_operator.reconcile import reconciler, systems
from tests import installation
from tests.e2e import cluster
from tests.payscope_api import auditlog
from tests.testenv import meter

MAIN, TIMESCALE = "payscope", "payscope-ts"
CONVERGE_PASSES = 6
AGENT_PROBE_INTERVAL = "10m"  # the default: passes in between reuse the agent probes' answers
MAIN_SYSTEMS = ("postgres", "neo4j", "redis", "s3", "pinecone", "payscope_api", "kubernetes")
TIMESCALE_SYSTEMS = ("timescale", "kubernetes")


@dataclass
class Setup:
    """The two resources of one measurement and what a meter needs to know of them."""

    namespace: str
    tables: int
    inst: installation.Installation
    timescale_schema: str
    timescale_role: str

    def normalise(self, counts: dict[str, meter.Reading]) -> dict[str, meter.Reading]:
        """Counts with this installation's generated names masked, so installations compare detail by detail."""
        suffixes = (self.inst.suffix, self.timescale_schema.removeprefix("ts_"))

        def mask(key: str) -> str:
            for suffix in suffixes:
                key = key.replace(suffix, "*")
            return _PINECONE_HOST.sub(r"\1", key)

        masked: dict[str, meter.Reading] = {}
        for system, reading in counts.items():
            masked[system] = Counter()
            for key, value in reading.items():
                masked[system][mask(key)] += value
        return masked


_PINECONE_HOST = re.compile(r"(/_data/[a-z0-9-]*\*)-[0-9a-f]+")


def _postgres_tables(inst: installation.Installation, tables: int) -> list[dict[str, Any]]:
    """``tables`` declared tables: transactions, then accounts, then ledgers created here."""
    declared: list[dict[str, Any]] = list(inst.spec["postgres"]["tables"])[:tables]
    for i in range(tables - len(declared)):
        name = f"ledger_{i:03d}"
        inst.sql(
            f"CREATE TABLE {name} (id bigserial PRIMARY KEY, bank_id text NOT NULL,"  # test-made names
            " account_id bigint NOT NULL REFERENCES accounts(id), key text NOT NULL, UNIQUE (bank_id, key))"
        )
        inst.sql(f"GRANT SELECT, INSERT ON {name} TO {inst.app_role}")
        declared.append(
            {"name": name, "rowLevelSecurity": {"enabled": True, "force": True}, "tenantIndex": True,
             "idempotencyKey": ["bank_id", "key"], "expectForeignKeys": True}
        )  # fmt: skip
    return declared


def _timescale(dsn: str, schema: str, role: str, tables: int) -> None:
    """A schema of hypertable candidates, migrations and a hash-chained audit log on PGlite."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=30) as db:
        db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        db.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), sql.Identifier(role)))
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('0042')")
        for i in range(tables):
            name = sql.Identifier(f"events_{i:03d}")
            db.execute(
                sql.SQL("CREATE TABLE {} (created_at timestamptz NOT NULL, bank_id text NOT NULL, amount int)").format(
                    name
                )
            )
            db.execute(sql.SQL("INSERT INTO {} VALUES (now(), 'bank-a', 1), (now(), 'bank-b', 2)").format(name))
            db.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(name, sql.Identifier(role)))
        for statement, params in auditlog.seed("audit_log", role):
            db.execute(statement, params)


def _timescale_spec(inst: installation.Installation, schema: str, role: str, tables: int) -> dict[str, Any]:
    hypertable = {"timeColumn": "created_at", "chunkInterval": "7d", "retention": "400d",
                  "compression": {"after": "30d", "segmentBy": ["bank_id"]}, "migrateData": True}  # fmt: skip
    return {
        "tenancy": inst.spec["tenancy"],
        "postgres": {
            "connection": {"secretRef": {"name": "pg-ts", "key": "dsn"}},
            "appRole": role,
            "migrations": {"table": "alembic_version", "schema": schema, "expected": "0042"},
            "auditLog": {"table": "audit_log", "schema": schema},
            "tables": [
                {"name": f"events_{i:03d}", "schema": schema, "tenantIndex": True, "hypertable": hypertable}
                for i in range(tables)
            ],
        },
        "audit": inst.spec["audit"],
    }  # fmt: skip


def build(
    api: k8s.ApiClient, namespace: str, env: dict[str, str], workdir: Path, tables: int, *, metered: bool = True
) -> Setup:
    """Both resources of a ``tables``-table installation, created on the API server (not yet reconciled).

    ``metered``: PayScope's own side writes no audit-log row and runs no Celery worker, whose traffic
    (Redis polls, audit-log rows) would be counted as the operator's; without it the installation is
    live, and the pass's audit-log look finds the operator's rows at once instead of waiting for them.
    """
    cluster.install_crd(api)
    inst = installation.build(api, namespace, env, workdir, metered=metered)
    inst.spec["postgres"]["tables"] = _postgres_tables(inst, tables)
    suffix = uuid.uuid4().hex[:8]
    schema, role = f"ts_{suffix}", f"payscope_ts_{suffix}"
    _timescale(env["PAYSCOPE_TIMESCALE_DSN"], schema, role, tables)
    cluster.create_secret(api, namespace, "pg-ts", {"dsn": env["PAYSCOPE_TIMESCALE_DSN"]})
    inst.spec["audit"]["agentProbeInterval"] = AGENT_PROBE_INTERVAL
    cluster.create_psd(api, namespace, MAIN, inst.spec)
    cluster.create_psd(api, namespace, TIMESCALE, _timescale_spec(inst, schema, role, tables))
    return Setup(namespace, tables, inst, schema, role)


@dataclass(frozen=True)
class Pass:
    """One measured pass: what it computed, what each system received, how long it took."""

    result: reconciler.Result
    counts: dict[str, meter.Reading]
    seconds: float


@dataclass
class Driver:
    """Passes over the resources of one namespace, wired as the operator wires them."""

    admin: k8s.ApiClient
    env: dict[str, str]
    deps: reconciler.Dependencies = field(init=False)
    metered: k8s.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.metered = gateway.load_api_client(self.env["PAYSCOPE_KUBE_METERED_KUBECONFIG"])
        self.deps = reconciler.Dependencies(
            cluster=gateway.Gateway(self.metered), observer=telemetry.Metrics(), provisioners=systems.PROVISIONERS
        )

    def resource(self, namespace: str, name: str) -> reconciler.Resource:
        """The resource as the API server holds it now (read as admin: not part of any pass)."""
        return main.resource_of(cast(kopf.Body, cluster.psd(self.admin, namespace, name)))  # as the watch delivers it

    async def reconcile(self, namespace: str, name: str) -> reconciler.Result:
        return await reconciler.reconcile(self.deps, self.resource(namespace, name))

    async def converge(self, namespace: str, name: str) -> reconciler.Result:
        """Pass until one writes no status (nothing changed); fail after ``CONVERGE_PASSES``."""
        for _ in range(CONVERGE_PASSES):
            result = await self.reconcile(namespace, name)
            if not result.written:
                return result
        raise AssertionError(f"{namespace}/{name} still changes its status after {CONVERGE_PASSES} passes")

    async def measure(self, counter: meter.Meter, setup: Setup, name: str, *, gather_all: bool = True) -> Pass:
        """One pass over ``name``, counted by ``counter``; ``gather_all``: no source reuses an earlier gathering."""
        resource = self.resource(setup.namespace, name)
        if gather_all:
            self.deps.memory.pop(resource.uid, None)
        before = counter.snapshot()
        started = time.perf_counter()
        result = await reconciler.reconcile(self.deps, resource, now=datetime.datetime.now(datetime.UTC))
        seconds = time.perf_counter() - started
        return Pass(result, setup.normalise(counter.delta(before)), seconds)

    async def close(self) -> None:
        for cache in self.deps.clients.values():
            await cache.close()
        self.metered.close()


def meters(env: dict[str, str], setup: Setup) -> tuple[meter.Meter, meter.Meter]:
    """(the meter of the main resource's systems, the meter of the TimescaleDB resource's)."""
    main_meter = meter.Meter.from_env(
        env, postgres_database=setup.inst.database, api_url=setup.inst.api_url, systems=MAIN_SYSTEMS
    )
    return main_meter, meter.Meter.from_env(env, systems=TIMESCALE_SYSTEMS)


def teardown(api: k8s.ApiClient, env: dict[str, str], setup: Setup) -> None:
    """Delete both resources, stop the installation's API process, drop what lives outside the namespace.

    The resources go first and explicitly: without a controller-manager a deleted
    namespace keeps its objects, and a cluster-wide operator of a later test would
    keep reconciling resources whose servers are gone.
    """
    custom = k8s.CustomObjectsApi(api)
    for name in (MAIN, TIMESCALE):
        custom.delete_namespaced_custom_object(gateway.GROUP, gateway.VERSION, setup.namespace, gateway.PLURAL, name)
    setup.inst.stop()
    with psycopg.connect(env["PAYSCOPE_PG_DSN"], autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(setup.inst.database)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(setup.inst.app_role)))
    with psycopg.connect(env["PAYSCOPE_TIMESCALE_DSN"], autocommit=True, connect_timeout=30) as ts:
        ts.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(setup.timescale_schema)))
        ts.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(setup.timescale_role)))


def table(figures: Mapping[int, Mapping[str, int]], seconds: Mapping[str, Mapping[int, float]] | None = None) -> str:
    """Per system (rows) and table count (columns): statements or requests of one unchanged pass.

    ``seconds`` adds one row of wall times per label (e.g. each resource's pass).
    """
    sizes = sorted(figures)
    header = f"{'system':<14}" + "".join(f"{f'{n} table' + ('s' if n > 1 else ''):>12}" for n in sizes)
    rows = [header]
    for system in meter.SYSTEMS:
        if any(system in figures[n] for n in sizes):
            rows.append(f"{system:<14}" + "".join(f"{figures[n].get(system, 0):>12}" for n in sizes))
    for label, times in (seconds or {}).items():
        rows.append(f"{label:<14}" + "".join(f"{times[n] * 1000:>9.0f} ms" for n in sizes))
    return "\n".join(rows)
