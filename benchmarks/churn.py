"""Benchmark (not a timed test): create and delete many resources, round after round; nothing may pile up.

One operator process watches a fresh namespace. Each round creates ``--count``
PayScopeDeployments (500; ObserveOnly, a Postgres section each, over 10
databases) at once, waits until every one has a complete status (so each had a
pass, clients and metric series), deletes them all, and waits until the operator
has forgotten every one (no ``payscope_condition`` series left). After a warm-up
round, once the number of tasks has settled (kopf ends a resource's worker 5 s after
its last event), it reads the operator's RSS and open file descriptors (``/proc``), its
asyncio tasks (the ``payscope_operator_asyncio_tasks`` gauge) and the number of
series on ``/metrics``, then runs ``--rounds`` rounds (5) and reads them again
after each: every figure must come back to its baseline within 10%.

    PYTHONPATH=. .venv/bin/python benchmarks/churn.py [--count 500] [--rounds 5]

Needs the test environment (``python -m tests.testenv up``). Exits 1 when a
figure stays more than 10% above its baseline.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import fleet
from tests.e2e import cluster

TASKS = re.compile(r"^payscope_operator_asyncio_tasks (\S+)$", re.MULTILINE)
TOLERANCE = 0.10


@dataclass(frozen=True)
class Figures:
    rss_mb: float
    fds: int
    tasks: int
    series: int

    def line(self, label: str) -> str:
        return (
            f"{label:<22} RSS {self.rss_mb:6.1f} MB  open fds {self.fds:4}  asyncio tasks {self.tasks:4}"
            f"  metric series {self.series:5}"
        )


def settled(operator: cluster.OperatorProcess, *, still: int = 5, timeout: float = 60.0) -> Figures:
    """The figures once the task count has not changed for ``still`` readings a second apart.

    kopf keeps a worker task per resource until no event came for it for 5 s; reading at once
    would count those workers of resources that are gone.
    """
    ends = time.monotonic() + timeout
    latest, unchanged = figures(operator), 0
    while unchanged < still and time.monotonic() < ends:
        time.sleep(1.0)
        current = figures(operator)
        unchanged = unchanged + 1 if current.tasks == latest.tasks else 0
        latest = current
    return latest


def figures(operator: cluster.OperatorProcess) -> Figures:
    text = operator.metrics()
    found = TASKS.search(text)
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    reading = fleet.read(operator.pid)
    return Figures(reading.rss_mb, reading.fds, int(float(found.group(1))) if found else -1, series)


def conditions_left(operator: cluster.OperatorProcess) -> int:
    return sum(1 for line in operator.metrics().splitlines() if line.startswith("payscope_condition{"))


def one_round(place: fleet.Place, operator: cluster.OperatorProcess, count: int, databases: int, n: int) -> float:
    """Create, wait for every status, delete, wait until forgotten; the round's seconds."""
    started = time.monotonic()
    specs = {f"churn-{n}-{i:04d}": fleet.spec_for(i, databases, "60s") for i in range(count)}
    watcher = fleet.Completion(place.api, place.namespace)
    try:
        fleet.create_many(place.api, place.namespace, specs)
        if not watcher.wait_done(specs, timeout=120 + 2.0 * count):
            raise SystemExit(f"round {n}: {len(set(specs) - set(watcher.done))} resources never got a status")
        fleet.delete_many(place.api, place.namespace, specs)
        if not watcher.wait_absent(specs, timeout=120):
            raise SystemExit(f"round {n}: resources still present after their deletion")
    finally:
        watcher.stop()
    cluster.wait_for(
        lambda: conditions_left(operator) == 0, what="every deleted resource forgotten", timeout=120, interval=0.5
    )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--databases", type=int, default=10)
    args = parser.parse_args()
    api = fleet.connect()
    dbs = fleet.Databases(os.environ["PAYSCOPE_PG_DSN"])
    dbs.create(args.databases)
    print(f"machine: {os.cpu_count()} cores (shared), Python {sys.version.split()[0]}; {args.count} resources"
          f" created and deleted per round", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        place = fleet.Place.create(api, "churn", folder)
        dbs.secrets(api, place.namespace)
        operator = cluster.start_operator(
            place.who.kubeconfig, folder / "operator.log", namespaces=(place.namespace,),
            extra_env=fleet.PRODUCTION_ENV,
            extra_args=("--log-level", "warning"),
        )  # fmt: skip
        try:
            print(figures(operator).line("started"), flush=True)
            took = one_round(place, operator, args.count, args.databases, 0)
            baseline = settled(operator)
            print(baseline.line(f"after warm-up ({took:.0f}s)"), flush=True)
            latest = baseline
            for n in range(1, args.rounds + 1):
                took = one_round(place, operator, args.count, args.databases, n)
                latest = settled(operator)
                print(latest.line(f"after round {n} ({took:.0f}s)"), flush=True)
        finally:
            operator.stop()
            place.delete()
            dbs.drop()
    growth = {
        "RSS": latest.rss_mb / baseline.rss_mb,
        "open fds": latest.fds / baseline.fds,
        "asyncio tasks": latest.tasks / baseline.tasks,
        "metric series": latest.series / baseline.series,
    }
    print(
        "after the last round, against the baseline: "
        + ", ".join(f"{k} {100 * (v - 1):+.1f}%" for k, v in growth.items())
    )
    grown = [name for name, ratio in growth.items() if ratio > 1 + TOLERANCE]
    print("within 10% of the baseline" if not grown else f"NOT back within 10%: {', '.join(grown)}")
    return 1 if grown else 0


if __name__ == "__main__":
    sys.exit(main())
