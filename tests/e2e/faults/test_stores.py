"""Each store frozen in turn under a whole installation: only its checks go Unknown, and all comes back.

One installation declares every system (``tests.installation``: Postgres, Neo4j,
Pinecone, S3, Redis, the reference PayScope API, three Deployments), and a second
resource keeps hypertables on the TimescaleDB server. Both audit every 10 s with a
3 s probe timeout. Each store's process group is frozen (SIGSTOP: its port still
accepts connections, nothing answers), one at a time. Then:

- within one interval plus the probe timeout, every check sourced from that store
  (and every check that depends on one) is Unknown, or Fail for its reachability
  check: every phase of a pass, provisioning included, honours the probe timeout;
- every other check keeps its result, and every other dimension keeps its condition,
  except the checks of a server that itself waits on the frozen store: the reference
  PayScope API appends every admin read and chat answer to the audit log in Postgres,
  so with Postgres frozen its answers hang too. Those may turn Unknown, and the pass
  then spends one more probe timeout waiting for the API (a bound of its own);
- no pass overruns the interval, and none hits its deadline;
- once the store is thawed, every check is back to its result before the freeze
  within one interval (plus the pass that notices).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from kubernetes import client as k8s
from psycopg import sql

from payscope_operator.audit import catalog
from tests import installation
from tests.conftest import unique
from tests.e2e import cluster
from tests.e2e.faults import status
from tests.e2e.faults.identity import Identity
from tests.testenv import faults

INTERVAL, PROBE = 10.0, 3.0
SLACK = 2.0  # the status write and the test's own polling
AUDIT = {"interval": f"{INTERVAL:g}s", "probeTimeout": f"{PROBE:g}s", "agentProbeInterval": f"{INTERVAL:g}s"}


@dataclass(frozen=True)
class Store:
    component: str  # the testenv component, or "api" for the installation's reference PayScope API
    resource: str  # the PayScopeDeployment whose checks it sources
    sources: str  # a pattern of the names of the audit sources that read it
    dependents: str | None = None  # sources of servers that wait on this store: they may turn Unknown too


STORES = {
    # The trail reads the audit log; the reference API writes it, so its answers wait on Postgres too.
    "postgres": Store("postgres", "payscope", r"postgres\.|payscope\.trail$", dependents=r"payscope\."),
    "timescale": Store("timescale", "ts", r"postgres\."),
    "neo4j": Store("neo4j", "payscope", r"neo4j\."),
    "redis": Store("redis", "payscope", r"redis\.|celery\."),  # Celery's remote control goes over the broker
    "s3": Store("s3", "payscope", r"s3\."),
    "pinecone": Store("pinecone", "payscope", r"pinecone\."),
    "api": Store("api", "payscope", r"payscope\."),
}


def affected(pattern: str) -> dict[str, str]:
    """Check id -> the status it must take while its store is frozen (its dependents' included)."""
    found: dict[str, str] = {}
    for check in catalog.CATALOG:  # dependencies come first in the catalog's order
        sourced = re.match(pattern, check.source.name) is not None
        if sourced or any(d in found for d in check.depends_on):
            found[check.id] = "Fail" if sourced and check.fails_when_unreachable else "Unknown"
    return found


@dataclass
class Stack:
    api: k8s.ApiClient
    namespace: str
    inst: installation.Installation
    operator: cluster.OperatorProcess

    def checks(self, resource: str) -> dict[str, str]:
        return {i: c["status"] for i, c in status.checks(cluster.psd(self.api, self.namespace, resource)).items()}

    def dimensions(self, resource: str) -> dict[str, str]:
        found = status.conditions(cluster.psd(self.api, self.namespace, resource))
        return {t: c["status"] for t, c in found.items() if t.endswith("Ready") and t != "Ready"}

    def pass_seconds(self) -> dict[str, tuple[float, float]]:
        """Per resource: (passes within the interval, all passes) so far, from the duration histogram."""
        counts: dict[str, list[float]] = {}
        for line in self.operator.metrics().splitlines():
            bucket = re.match(r'payscope_reconcile_duration_seconds_bucket\{le="([^"]+)",name="([^"]+)"', line)
            if bucket and bucket.group(1) in (f"{INTERVAL:.1f}", "+Inf"):
                counts.setdefault(bucket.group(2), []).append(float(line.rsplit(" ", 1)[1]))
        return {name: (values[0], values[-1]) for name, values in counts.items()}


def _timescale_resource(api: k8s.ApiClient, namespace: str, env: dict[str, str]) -> None:
    schema = f"ts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(env["PAYSCOPE_TIMESCALE_DSN"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {}.metrics (bank_id text NOT NULL, created_at timestamptz NOT NULL)").format(
                sql.Identifier(schema)
            )
        )
    cluster.create_secret(api, namespace, "ts", {"dsn": env["PAYSCOPE_TIMESCALE_DSN"]})
    table = {"schema": schema, "name": "metrics", "rowLevelSecurity": {"enabled": True, "force": True},
             "tenantIndex": True, "hypertable": {"timeColumn": "created_at", "chunkInterval": "7d"}}  # fmt: skip
    spec = {
        "tenancy": {"tenantKey": "bank_id", "sessionVariable": "app.current_bank_id"},
        "postgres": {"connection": {"secretRef": {"name": "ts", "key": "dsn"}}, "tables": [table]},
        "audit": AUDIT,
    }
    cluster.create_psd(api, namespace, "ts", spec)


@pytest.fixture(scope="module")
def stack(
    fault_api: k8s.ApiClient,
    fault_env: dict[str, str],
    fault_identity: Identity,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    ns = unique("f-")
    k8s.CoreV1Api(fault_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    folder = tmp_path_factory.mktemp("stores")
    inst = installation.build(fault_api, ns, fault_env, folder)
    operator = cluster.start_operator(fault_identity.kubeconfig, folder / "operator.log", namespaces=(ns,))
    try:
        api = {**inst.spec["api"], "timeouts": {"request": f"{PROBE:g}s", "query": f"{PROBE:g}s"}}
        cluster.create_psd(
            fault_api, ns, inst.name, {**inst.spec, "api": api, "audit": {**inst.spec["audit"], **AUDIT}}
        )
        _timescale_resource(fault_api, ns, fault_env)
        cluster.wait_for(
            lambda: status.current(cluster.psd(fault_api, ns, inst.name)),
            what="the installation Ready",
            timeout=90,
            show=lambda: {i: c["message"] for i, c in status.checks(cluster.psd(fault_api, ns, inst.name)).items()
                          if c["status"] not in ("Pass", "NotConfigured")},
        )  # fmt: skip
        cluster.wait_for(
            lambda: status.conditions(cluster.psd(fault_api, ns, "ts")).get("Provisioned", {}).get("status") == "True",
            what="the hypertables provisioned",
            timeout=60,
        )
        yield Stack(fault_api, ns, inst, operator)
    finally:
        operator.stop()
        inst.stop()


def _pids(stack: Stack, store: Store) -> tuple[int, ...]:
    return (stack.inst.api_pid,) if store.component == "api" else faults.pids(store.component)


@pytest.mark.parametrize("name", list(STORES))
def test_a_frozen_store(stack: Stack, name: str) -> None:
    store = STORES[name]
    expected = affected(store.sources)
    bystanders = affected(store.dependents) if store.dependents else {}
    bound = INTERVAL + PROBE + SLACK + (PROBE if bystanders else 0.0)
    passes_before = stack.pass_seconds()
    resources = ("payscope", "ts")
    before = {r: stack.checks(r) for r in resources}
    dimensions_before = {r: stack.dimensions(r) for r in resources}
    configured = {i for i, s in before[store.resource].items() if s != "NotConfigured"}
    in_scope = {i: s for i, s in expected.items() if i in configured}
    assert in_scope, f"no check of {store.resource} reads {name}"

    def unlike_frozen() -> dict[str, Any]:
        now = stack.checks(store.resource)
        return {i: now.get(i) for i, s in in_scope.items() if now.get(i) != s}

    with faults.frozen(*_pids(stack, store)):
        clock = status.Clock()
        cluster.wait_for(
            lambda: not unlike_frozen(), what=f"{name}'s checks Unknown", timeout=30, interval=0.2, show=unlike_frozen
        )
        to_unknown = clock.seconds
        during = {r: stack.checks(r) for r in resources}
        dimensions_during = {r: stack.dimensions(r) for r in resources}
    thawed = status.Clock()

    def unlike_before() -> dict[str, Any]:
        return {f"{r}/{i}": s for r in resources for i, s in stack.checks(r).items() if before[r].get(i) != s}

    cluster.wait_for(lambda: not unlike_before(), what="every check back", timeout=30, interval=0.2, show=unlike_before)
    to_back = thawed.seconds
    print(f"{name}: its {len(in_scope)} checks Unknown after {to_unknown:.1f}s, all back {to_back:.1f}s after the thaw")

    assert to_unknown <= bound
    for resource in resources:
        others = {i: s for i, s in during[resource].items() if not (resource == store.resource and i in expected)}
        if resource == store.resource:
            moved = {i: (before[resource][i], others[i]) for i in bystanders if i in others}
            assert all(now in (was, "Unknown") for was, now in moved.values()), f"bystanders (before, during): {moved}"
            others = {i: s for i, s in others.items() if i not in bystanders}
        assert others == {i: before[resource][i] for i in others}, f"{resource}: other checks changed"
    touched = {status.DIMENSIONS[i[0]] for i in (*in_scope, *bystanders)}
    for resource in resources:
        for dimension, state in dimensions_during[resource].items():
            if resource != store.resource or dimension not in touched:
                assert state == dimensions_before[resource][dimension], f"{resource}: {dimension} changed"
    assert to_back <= bound
    for resource, (within, total) in stack.pass_seconds().items():
        within_before, total_before = passes_before.get(resource, (0.0, 0.0))
        longer = (total - total_before) - (within - within_before)
        assert longer == 0, f"{resource}: {longer:g} pass(es) longer than the {INTERVAL:g}s interval"
    assert 'stage="deadline"' not in stack.operator.metrics()
