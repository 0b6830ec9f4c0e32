"""Benchmark (not a timed test): what one full pass costs on an empty installation and on a loaded one.

Why it exists: issue 10 asks that the audit's cost not grow with PayScope's data
(no statement reading tenant rows by the million, no node scan every interval),
and that is shown by loading the data and measuring on the servers. It builds the
complete installation of ``tests.metered_pass`` (live: PayScope's API appends its
audit-log rows, so the pass's audit-log look finds them at once), converges it,
measures it empty, then loads it (``benchmarks.volume``):

* ``transactions``: 10M rows over 100 banks (the probe tenants among them; RLS
  enabled and forced, the tenant index, the app role, as the operator provisioned);
* the audit log: 1M rows chained after its own;
* Neo4j: 1M nodes of each declared label (one indexed on the tenant key, whose
  untenanted nodes the server's statistics settle; one only a scan can answer);

and measures again. For each state it prints:

* the wall time of one full pass (provisioning and audit, every source gathered:
  ``metered_pass.Driver.measure``), median of ``--runs``, and of a pass with new
  clients, which also runs the Neo4j deep scan (at most every ``deepScanInterval``);
* per Postgres statement of one pass, the most rows one call read from the data
  tables and the buffers it touched, from the plans the server executed
  (``tests.testenv.plans``: auto_explain with ANALYZE and BUFFERS, the isolation
  probe's nested statements included), and the largest against the bound of 1,000;
* Neo4j db hits of the statements the audit sends (PROFILE), and the transactions
  one pass sends (``tests.testenv.meter``).

    PYTHONPATH=. .venv/bin/python benchmarks/audit_scale.py [--runs 5] [--scale 0.01]

``--scale`` multiplies every size (0.01 for a quick look). Needs the test
environment (``python -m tests.testenv up``) and nothing else using it; at scale 1
about 3 GB of disk and 4 minutes of loading. What it loads is dropped afterwards, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import neo4j
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from psycopg.conninfo import conninfo_to_dict

from benchmarks import volume
from payscope_operator.backends.neo4j import cypher as neo4j_cypher
from payscope_operator.backends.neo4j import evidence as neo4j_evidence
from tests import metered_pass
from tests.testenv import meter, plans

ROWS, LOG_ROWS, NODES = 10_000_000, 1_000_000, 1_000_000
BOUND = 1_000
"""The most rows of tenant data one statement may read."""
KEY = "bank_id"


@dataclass
class State:
    """One installation state, measured."""

    passes: list[float] = field(default_factory=list)
    first: float = 0.0  # a pass with new clients: connections, and the deep scan
    neo4j_transactions: int = 0
    statements: dict[str, plans.Statement] = field(default_factory=dict)
    db_hits: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.passes)


def _labels(setup: metered_pass.Setup) -> tuple[str, str]:
    """(the label indexed on the tenant key, the label only a scan answers), as ``tests.installation`` declares them."""
    return f"{setup.inst.label}Account", f"{setup.inst.label}Transaction"


async def _pass(api: k8s.ApiClient, env: dict[str, str], setup: metered_pass.Setup, counter: meter.Meter) -> float:
    """One pass with new clients (as a restarted operator: its scan memory is empty)."""
    driver = metered_pass.Driver(api, env)
    try:
        return (await driver.measure(counter, setup, metered_pass.MAIN)).seconds
    finally:
        await driver.close()


async def _measure(api: k8s.ApiClient, env: dict[str, str], setup: metered_pass.Setup, runs: int) -> State:
    state = State()
    counter = meter.Meter.from_env(env, systems=("neo4j",))
    driver = metered_pass.Driver(api, env)
    try:
        await driver.converge(setup.namespace, metered_pass.MAIN)  # the deep scan runs here; the passes reuse it
        measured = [await driver.measure(counter, setup, metered_pass.MAIN) for _ in range(runs)]
        state.passes = [m.seconds for m in measured]
        state.neo4j_transactions = sum(measured[-1].counts.get("neo4j", {}).values())
        state.notes = [
            f"{c.id}={c.status.value}"
            for c in measured[-1].result.status.checks
            if c.status.value not in ("Pass", "NotConfigured")
        ]
        state.first = await _pass(api, env, setup, counter)
        user = str(conninfo_to_dict(setup.inst.db_dsn)["user"])
        with plans.explained(env["PAYSCOPE_PG_DSN"], setup.inst.database, user) as window:
            await _pass(api, env, setup, counter)
        state.statements = window.statements()
    finally:
        await driver.close()
        counter.close()
    return state


def _profile(env: dict[str, str], database: str, setup: metered_pass.Setup) -> dict[str, int]:
    """Db hits of what the audit sends Neo4j about the data: statistics every pass, the scan when due."""
    labels = indexed, scanned = _labels(setup)
    auth = (env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        stats, _ = plans.profile(driver, database, neo4j_evidence.STATISTICS, {"labels": sorted(labels), "key": KEY})
        scan, _ = plans.profile(driver, database, neo4j_cypher.cypher_untenanted([scanned], KEY))
        every, _ = plans.profile(driver, database, neo4j_cypher.cypher_untenanted([indexed], KEY))
    return {
        "statistics, every pass": stats,
        f"scan of {scanned.replace(setup.inst.label, '*')}, at most every deepScanInterval": scan,
        f"scan of {indexed.replace(setup.inst.label, '*')} (not sent: the statistics settle it)": every,
    }


def _load(env: dict[str, str], setup: metered_pass.Setup, scale: float, database: str) -> tuple[dict[str, float], str]:
    """Load every store; seconds per step, and a note when the Neo4j indexes did not settle."""
    seconds: dict[str, float] = {}
    dsn = setup.inst.db_dsn
    auth = (env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"])
    started = time.perf_counter()
    volume.load_postgres(dsn, int(ROWS * scale))
    seconds["transactions"] = time.perf_counter() - started
    started = time.perf_counter()
    volume.append_audit_log(dsn, int(LOG_ROWS * scale))
    seconds["audit log"] = time.perf_counter() - started
    started = time.perf_counter()
    volume.vacuum(dsn, ("transactions", "accounts", "audit_log"))
    seconds["vacuum analyze"] = time.perf_counter() - started
    started = time.perf_counter()
    with neo4j.GraphDatabase.driver(env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        volume.load_neo4j(driver, database, _labels(setup), int(NODES * scale))
        note = volume.settle_indexes(driver, database, _labels(setup), KEY)
    seconds["neo4j"] = time.perf_counter() - started
    return seconds, note


def _drop_nodes(env: dict[str, str], database: str, labels: tuple[str, str]) -> None:
    auth = (env["PAYSCOPE_NEO4J_USER"], env["PAYSCOPE_NEO4J_PASSWORD"])
    with neo4j.GraphDatabase.driver(env["PAYSCOPE_NEO4J_URI"], auth=auth) as driver:
        volume.drop_neo4j(driver, database, labels)


def _spread(state: State) -> str:
    return f"{min(state.passes) * 1000:.0f}-{max(state.passes) * 1000:.0f}"


def _report(empty: State, loaded: State, tenant: frozenset[str], suffix: str, runs: int) -> list[str]:
    ratio = loaded.wall / empty.wall
    lines = [
        f"{'':<58}{'empty':>10}{'loaded':>10}",
        f"{f'one full pass, median of {runs}':<58}{empty.wall * 1000:>7.0f} ms{loaded.wall * 1000:>7.0f} ms"
        f"   {ratio:.2f}x (goal <= 2x: {'ok' if ratio <= 2 else 'OVER'})",
        f"{'  its passes (ms)':<58}{_spread(empty):>10}{_spread(loaded):>10}",
        f"{'a pass with new clients (connects; Neo4j deep scan)':<58}{empty.first * 1000:>7.0f} ms"
        f"{loaded.first * 1000:>7.0f} ms",
        f"{'Neo4j transactions of one pass':<58}{empty.neo4j_transactions:>10}{loaded.neo4j_transactions:>10}",
        "",
        "Postgres, per statement of one pass (server-side plans): most rows one call read from data tables,"
        " buffers (hit + read)",
        f"{'rows empty':>10}{'loaded':>8}{'buf empty':>10}{'loaded':>8}{'calls':>6}  statement",
    ]
    texts = sorted(
        set(empty.statements) | set(loaded.statements),
        key=lambda t: -(loaded.statements[t].rows_of(tenant) if t in loaded.statements else 0),
    )
    for text in texts:
        e, lo = empty.statements.get(text), loaded.statements.get(text)
        either = lo or e
        if either is None or not any(s.rows or s.buffers for s in (e, lo) if s is not None):
            continue
        cells = [f"{s.rows_of(tenant) if s else '-':>{w}}" for s, w in ((e, 10), (lo, 8))] + [
            f"{s.buffers if s else '-':>{w}}" for s, w in ((e, 10), (lo, 8))
        ]
        shown = text or f"(no text: a lookup inside a function, of {', '.join(sorted(either.rows))})"
        lines.append("".join(cells) + f"{either.calls:>6}  {shown.replace(suffix, '*')[:110]}")
    for label, state in (("empty", empty), ("loaded", loaded)):
        worst = max((s.rows_of(tenant) for s in state.statements.values()), default=0)
        over = [t for t, s in state.statements.items() if s.rows_of(tenant) > BOUND]
        lines.append(
            f"{label}: {len(state.statements)} statements explained; the most rows of tenant data one read: {worst}"
            f" (bound {BOUND:,}: {'ok' if not over else 'OVER: ' + '; '.join(t[:80] for t in over)})"
        )
    lines += ["", "Neo4j db hits (PROFILE of the statements the audit sends)", f"{'empty':>10}{'loaded':>10}"]
    for what in loaded.db_hits:
        lines.append(f"{empty.db_hits.get(what, 0):>10}{loaded.db_hits[what]:>10}  {what}")
    for label, state in (("empty", empty), ("loaded", loaded)):
        if state.notes:
            lines.append(f"{label}: checks not passing: {', '.join(state.notes)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size (0.01: a quick look)")
    args = parser.parse_args()
    env = meter.environment()
    os.environ.update(env)  # helm, kubectl and the API fixture find the environment
    api = k8s_config.new_client_from_config(config_file=env["KUBECONFIG"])
    core = k8s.CoreV1Api(api)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    workdir = Path(tempfile.mkdtemp(prefix="audit-scale-"))
    setup = metered_pass.build(api, namespace, env, workdir, 2, metered=False)
    database = str(setup.inst.spec["neo4j"].get("database", "neo4j"))
    tenant = frozenset(("transactions", "accounts", "audit_log"))
    try:
        empty = asyncio.run(_measure(api, env, setup, args.runs))
        empty.db_hits = _profile(env, database, setup)
        seconds, note = _load(env, setup, args.scale, database)
        loaded = asyncio.run(_measure(api, env, setup, args.runs))
        loaded.db_hits = _profile(env, database, setup)
    finally:
        _drop_nodes(env, database, _labels(setup))
        metered_pass.teardown(api, env, setup)
        core.delete_namespace(namespace)
        api.close()
    print(
        f"Audit cost at volume, scale {args.scale}: transactions {int(ROWS * args.scale):,} rows over"
        f" {len(volume.BANKS)} banks, audit log {int(LOG_ROWS * args.scale):,} chained rows, Neo4j"
        f" {int(NODES * args.scale):,} nodes of each of 2 declared labels"
    )
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    print(f"load: {steps} (total {sum(seconds.values()):.0f} s)")
    if note:
        print(f"load: {note}")
    print("\n".join(_report(empty, loaded, tenant, setup.inst.suffix, args.runs)))


if __name__ == "__main__":
    main()
