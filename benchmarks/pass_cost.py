"""Benchmark (not a timed test): what one unchanged reconcile pass costs each external system, 1 vs 50 tables.

For each table count it builds the complete installation of
``tests/integration/test_pass_cost.py`` (``tests.metered_pass``: Postgres 15 with
RLS and tenant indexes, TimescaleDB hypertables on PGlite, Neo4j, Pinecone, S3,
Redis, the reference PayScope API, Deployments, Secrets), converges it with real
passes, then runs five more passes over the unchanged installation and prints,
per system:

* the statements or requests one pass sent, counted server-side
  (``tests.testenv.meter``: pg_stat_statements, the PGlite wire counter, Neo4j's
  transaction ids, Redis commandstats, SeaweedFS metrics, the Pinecone
  emulator's counter, the reference API's http_requests_total, the
  kube-apiserver's audit log), for a pass that gathers every source;
* the median wall time of those five passes, of the main resource (``wall main``)
  and of the TimescaleDB one (``wall ts``);

then the same figures for a pass in between (the agent probes' answers reused,
as every pass within ``spec.audit.agentProbeInterval``), and for provisioning
alone (observe and plan of every declared system, nothing to apply), so the
audit's share is the difference. The first table sets the figures beside
:data:`BEFORE`, what the same pass cost before issue 9 made the audit share
provisioning's observations.

    PYTHONPATH=. .venv/bin/python benchmarks/pass_cost.py [--runs 5] [--tables 1 50]

Needs the test environment (``python -m tests.testenv up``) and nothing else using it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from collections import Counter
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from payscope_operator.reconcile import provision, reconciler, report, secrets, session
from tests import metered_pass
from tests.testenv import meter

BEFORE: dict[int, dict[str, int]] = {
    n: {"postgres": pg, "timescale": 21, "neo4j": 7, "redis": 3, "s3": 17, "pinecone": 3, "payscope_api": 49,
        "kubernetes": 9}
    for n, pg in ((1, 23), (50, 41))
}  # fmt: skip
"""One unchanged pass gathering every source on main at c85bef4, before provisioning and the audit
shared their observations (provisioning and the audit each read Postgres, TimescaleDB, Neo4j, S3 and
Pinecone; the isolation probe sent 9 statements for each of min(tables, 3) RLS tables)."""


async def _provisioning(
    driver: metered_pass.Driver, counter: meter.Meter, setup: metered_pass.Setup, name: str
) -> dict[str, meter.Reading]:
    """Provisioning of one pass alone, wired as ``reconciler.reconcile`` wires it (Secrets read beforehand)."""
    resource = driver.resource(setup.namespace, name)
    desired = reconciler.validate(resource, frozenset(c.id for c in driver.deps.catalog))
    resolved, missing = await secrets.resolve(resource.namespace, desired, driver.deps.cluster.read_secret)
    run = session.PassSession(
        spec=desired,
        namespace=resource.namespace,
        name=resource.name,
        secrets=resolved,
        missing=missing,
        cluster=driver.deps.cluster,
        clients=driver.deps.clients_of(resource),
    )
    run.observations = provision.ledger(driver.deps.provisioners, run, report.parse(resource.status))
    before = counter.snapshot()
    outcome = await provision.run(driver.deps.provisioners, run, apply=True)
    counts = setup.normalise(counter.delta(before))
    if outcome.applied:
        raise SystemExit(f"{name}: provisioning changed an unchanged installation: {outcome.applied}")
    return counts


def _merge(main: dict[str, meter.Reading], timescale: dict[str, meter.Reading]) -> dict[str, int]:
    return meter.totals({**main, "timescale": timescale.get("timescale", Counter())})


async def _measure(
    api: k8s.ApiClient, env: dict[str, str], setup: metered_pass.Setup, runs: int
) -> tuple[dict[str, int], tuple[float, float], dict[str, int], dict[str, int], list[str]]:
    driver = metered_pass.Driver(api, env)
    main_meter, ts_meter = metered_pass.meters(env, setup)
    notes: list[str] = []
    try:
        await driver.converge(setup.namespace, metered_pass.MAIN)
        await driver.converge(setup.namespace, metered_pass.TIMESCALE)
        mains = [await driver.measure(main_meter, setup, metered_pass.MAIN) for _ in range(runs)]
        tss = [await driver.measure(ts_meter, setup, metered_pass.TIMESCALE) for _ in range(runs)]
        full = [_merge(m.counts, t.counts) for m, t in zip(mains, tss, strict=True)]
        if any(f != full[0] for f in full):
            notes.append(f"passes differ: {full}")
        steady_main = await driver.measure(main_meter, setup, metered_pass.MAIN, gather_all=False)
        steady_ts = await driver.measure(ts_meter, setup, metered_pass.TIMESCALE, gather_all=False)
        steady = _merge(steady_main.counts, steady_ts.counts)
        provisioning = _merge(
            await _provisioning(driver, main_meter, setup, metered_pass.MAIN),
            await _provisioning(driver, ts_meter, setup, metered_pass.TIMESCALE),
        )
        failing = [
            f"{c.id}={c.status.value}"
            for c in mains[-1].result.status.checks
            if c.status.value not in ("Pass", "NotConfigured")
        ]
        if failing:
            notes.append(f"checks not passing: {', '.join(failing)}")
    finally:
        await driver.close()
        main_meter.close()
        ts_meter.close()
    wall = statistics.median(m.seconds for m in mains), statistics.median(t.seconds for t in tss)
    return full[0], wall, steady, provisioning, notes


def _before_after(after: dict[int, dict[str, int]]) -> str:
    """Per system, for each table count measured that :data:`BEFORE` has: before -> after."""
    sizes = [n for n in sorted(after) if n in BEFORE]
    rows = [f"{'system':<14}" + "".join(f"{f'{n} table' + ('s' if n > 1 else ''):>16}" for n in sizes)]
    for system in meter.SYSTEMS:
        cells = "".join(f"{f'{BEFORE[n][system]} -> {after[n].get(system, 0)}':>16}" for n in sizes)
        rows.append(f"{system:<14}{cells}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    env = meter.environment()
    os.environ.update(env)  # helm, kubectl and the API fixture find the environment
    api = k8s_config.new_client_from_config(config_file=env["KUBECONFIG"])
    core = k8s.CoreV1Api(api)
    full: dict[int, dict[str, int]] = {}
    seconds: dict[str, dict[int, float]] = {"wall main": {}, "wall ts": {}}
    steady: dict[int, dict[str, int]] = {}
    provisioning: dict[int, dict[str, int]] = {}
    for tables in args.tables:
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        setup = metered_pass.build(api, namespace, env, Path(tempfile.mkdtemp(prefix="pass-cost-")), tables)
        try:
            full[tables], wall, steady[tables], provisioning[tables], notes = asyncio.run(
                _measure(api, env, setup, args.runs)
            )
            seconds["wall main"][tables], seconds["wall ts"][tables] = wall
        finally:
            metered_pass.teardown(api, env, setup)
            core.delete_namespace(namespace)
        for note in notes:
            print(f"{tables} tables: {note}")
    print(f"One unchanged pass gathering every source (statements/requests; wall time median of {args.runs}):")
    print(metered_pass.table(full, seconds))
    print("\nBefore and after issue 9 (one observation of each system per pass):")
    print(_before_after(full))
    print(f"\nA pass in between (agent probes reused within agentProbeInterval {metered_pass.AGENT_PROBE_INTERVAL}):")
    print(metered_pass.table(steady))
    print("\nOf which provisioning alone (observe and plan; the rest is the audit, Secrets and status):")
    print(metered_pass.table(provisioning))
    api.close()


if __name__ == "__main__":
    main()
